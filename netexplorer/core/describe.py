"""The JSON description and the text summary of a tree (the CLI contract of DESIGN.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .handles import TorchHandle
from .json_fields import (
    identical_groups,
    kind_fields,
    listed_as_parameters,
    optimizer_fields,
    tie_entry,
    totals,
)
from .text import printable
from .tree import ModuleNode, ModuleTree, TensorNode

FORMAT = "netexplorer/1"


def describe(
    tree: ModuleTree,
    *,
    stats: bool = True,
    contributions: Mapping[str, Sequence[Any]] | None = None,
    graph: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `netexplorer/1` description. `stats` reads every tensor's values; `contributions`
    maps a parameter path to its per-use gradients (objects with site, call, values)."""
    contributions = contributions or {}
    known: dict[int, dict[str, Any] | None] = {}  # tie group -> stats: one tensor, read once
    out: dict[str, Any] = {
        "format": FORMAT,
        "source": tree.source,
        "metadata": {"reader": tree.reader, **tree.metadata},
        "modules": [_module_entry(m) for m in tree.root.walk()],
        "parameters": [
            {
                **_tensor_entry(t, stats, contributions, known),
                **optimizer_fields(tree, t.path, stats),
            }
            for t in listed_as_parameters(tree)
        ],
        "buffers": [_tensor_entry(t, stats, None, known) for t in tree.buffers],
        "ties": [tie_entry(g) for g in tree.tie_groups],
        "total_parameters": tree.total_parameters,
        **totals(tree),
    }
    if stats:  # the values are read anyway: byte-identical tensors
        out["identical"] = identical_groups(tree)
    if tree.default_input is not None:
        out["metadata"]["input"] = tree.default_input.as_dict()
    if graph is not None:
        out["graph"] = graph
    return out


def to_json(description: dict[str, Any]) -> str:
    """The description as strict JSON: a float that is not finite (a loss of NaN, say)
    becomes the string "nan", "inf" or "-inf", never the bare NaN that JSON parsers refuse."""
    try:
        return json.dumps(description, indent=1, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(description), indent=1, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _module_entry(m: ModuleNode) -> dict[str, Any]:
    return {
        "path": m.path,
        "type": m.type_name,
        "access": m.access,
        "shared_with": list(m.shared_with),
        "parameters": m.parameter_count,
    }


def _tensor_entry(
    t: TensorNode,
    stats: bool,
    contributions: Mapping[str, Sequence[Any]] | None,
    known: dict[int, dict[str, Any] | None],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": t.path,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "numel": t.numel,
        **kind_fields(t),
        "access": t.access,
        "tie": t.tie,
    }
    if t.handle.chunks is not None:  # a tensor of a distributed checkpoint: its pieces
        entry["shards"] = [c.as_dict() for c in t.handle.chunks]
    if stats:
        reason = t.handle.no_values_reason
        if reason is None and t.tie is not None and t.tie in known:
            entry["stats"] = known[t.tie]
        elif reason is None:
            entry["stats"], reason = _stats(t)
            if t.tie is not None:
                known[t.tie] = entry["stats"]
        else:
            entry["stats"] = None
        if reason is not None:
            entry["no_values"] = reason
    if contributions is not None:  # parameters: "grad" is null until a backward pass
        entry["grad"] = _grad_entry(t, contributions.get(t.path))
    return entry


def _stats(t: TensorNode) -> tuple[dict[str, Any] | None, str | None]:
    """The statistics of a tensor's values, or None and why they cannot be read."""
    from .display import tensor_stats  # numpy: only when values are asked for

    try:
        return tensor_stats(t.handle.array()).as_dict(), None
    except ValueError as exc:  # values the handle found it cannot give (a damaged tensor)
        return None, str(exc).removeprefix("no values: ")


def _grad_entry(t: TensorNode, uses: Sequence[Any] | None) -> dict[str, Any] | None:
    from .display import tensor_stats

    handle = t.handle
    grad = handle.grad_array() if isinstance(handle, TorchHandle) else None
    if grad is None:
        return None
    return {
        "stats": tensor_stats(grad).as_dict(),
        "contributions": None
        if not uses or len(uses) < 2
        else [
            {"site": u.site, "call": u.call, "stats": tensor_stats(u.values).as_dict()}
            for u in uses
        ],
    }


# -- text summary ---------------------------------------------------------------------------


def format_count(n: int) -> str:
    if n < 10_000:
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.{max(0, 2 - int(math.log10(n / size)))}f}{unit}"
    return str(n)


def module_label(m: ModuleNode) -> str:
    """`Linear(in_features=4, out_features=8, bias=True)`, as print(net) writes it."""
    if not m.type_name:
        return ""
    return f"{m.type_name}({m.extra_repr})" if m.extra_repr else f"{m.type_name}()"


def summary_text(tree: ModuleTree) -> str:
    """The tree as `print(net)` writes it, with shapes, dtypes, parameter counts (a tied
    tensor once) and tie marks."""
    rows: list[tuple[str, str, str]] = []  # (left text, count, mark)
    for depth, line, count, mark in _summary_lines(tree, tree.root, 0):
        # names come from the file: printed escaped, never as terminal control sequences
        rows.append((printable("  " * depth + line), count, printable(mark)))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'params':>8}"]
    for text, count, mark in rows:
        lines.append(f"{text:<{width}}  {count:>8}{'  ' + mark if mark else ''}".rstrip())
    n_tied = sum(len(g.paths) for g in tree.tie_groups)
    tail = f"Total parameters: {tree.total_parameters:,}"
    if tree.tie_groups:
        tail += " (a tied tensor counted once)"
    unknown = tree.unknown_kind
    if unknown:
        tail += (
            f"; {tree.total_tensor_elements:,} elements in {len(unknown)} tensors the file "
            "does not call parameters or buffers"
        )
    if tree.tie_groups:
        tail += f"; {len(tree.tie_groups)} tie groups over {n_tied} paths"
    lines.append(tail)
    architecture = tree.metadata.get("architecture")
    if isinstance(architecture, dict) and architecture.get("note"):
        lines.append(f"Architecture: {architecture['note']}")
    report = tree.metadata.get("weights_report")
    if report:
        lines.extend(weights_report_lines(report, tree.metadata.get("weights", "")))
    return "\n".join(lines)


def weights_report_lines(report: dict[str, Any], weights: str) -> list[str]:
    """What loading a checkpoint into a model left out, one finding per line."""
    lines = [f"Weights from {weights}: {report['loaded']} tensors loaded"]
    if report.get("prefix"):
        lines[0] += f" (from the keys under {report['prefix']!r})"
    mismatched = {item["key"] for item in report.get("shape_mismatched", [])}
    for key in report.get("missing", []):
        if key not in mismatched:  # those are told below, with both shapes
            lines.append(f"  missing in the checkpoint (model keeps its init): {key}")
    for item in report.get("tied", []):
        lines.append(f"  {item['key']}: tied to {item['to']}, loaded through it")
    for key in report.get("unexpected", []):
        lines.append(f"  unexpected (not in the model, ignored): {key}")
    for item in report.get("shape_mismatched", []):
        lines.append(
            f"  shape mismatch (not loaded): {item['key']}: model {item['model']}, "
            f"checkpoint {item['checkpoint']}"
        )
    for item in report.get("dtype_changed", []):
        lines.append(
            f"  dtype converted: {item['key']}: checkpoint {item['checkpoint']} -> "
            f"model {item['model']}"
        )
    if len(lines) == 1:
        lines[0] += "; every model key matched"
    return lines


MAX_TIE_PATHS = 4  # paths named in a tie mark; a group of 10,000 paths is counted, not listed


def _tie_paths(paths: Sequence[str]) -> str:
    if len(paths) <= MAX_TIE_PATHS:
        return " = ".join(paths)
    shown = " = ".join(paths[: MAX_TIE_PATHS - 1])
    return f"{shown} = ... ({len(paths):,} paths)"


def _summary_lines(
    tree: ModuleTree, m: ModuleNode, depth: int
) -> Iterator[tuple[int, str, str, str]]:
    name = "" if m is tree.root else f"({m.name}): "
    mark = ""
    if m.shared_with:
        kind = "same module as" if m.has_parameters else "same module (no parameters) as"
        mark = f"[{kind} {', '.join(m.shared_with)}]"
    shown = m.parameter_count or m.tensor_elements  # elements of unknown kind where no params
    count = format_count(shown) if shown else ""
    opens = bool(m.children) and bool(m.type_name)  # untyped checkpoint branches need no ")"
    if opens:
        head = f"{name}{m.type_name}("
    elif m.type_name:
        head = name + module_label(m)
    else:
        head = name.rstrip() or "(checkpoint)"
    yield depth, head, count, mark
    name_width = max((len(t.name) for t in m.tensors), default=0)
    shape_width = max((len(str(list(t.shape))) for t in m.tensors), default=0)
    for t in m.tensors:
        tie = ""
        if t.tie is not None:
            group = tree.tie_groups[t.tie]
            origin = ", by config.json" if group.tie_from == "config" else ""
            tie = f"<tie {t.tie}{origin}: {_tie_paths(group.paths)}>"
        kind = "" if t.kind == "parameter" else " buffer"
        shape = str(list(t.shape))
        line = f".{t.name:<{name_width}}  {shape:<{shape_width}}  {t.dtype}{kind}"
        yield depth + 2, line, "", tie
    for child in m.children:
        yield from _summary_lines(tree, child, depth + 1)
    if opens:
        yield depth, ")", "", ""
