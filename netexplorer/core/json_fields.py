"""The fields of the JSON description that say what a source does and does not tell
(describe.py assembles them): a tensor's `kind` ("tensor" where a file cannot tell a
parameter from a buffer, with `requires_grad` null then), where a tie comes from
(`tie_from`), the tensors of unknown kind counted apart (`total_tensors`), byte-identical
tensors (`identical`) and the optimizer state matched to each parameter of a training
checkpoint (`optimizer_state`)."""

from __future__ import annotations

from typing import Any

from .sharing import TieGroup
from .tree import ModuleTree, TensorNode


def kind_fields(t: TensorNode) -> dict[str, Any]:
    """`kind`, and `requires_grad` as known (null for a tensor of unknown kind)."""
    return {"kind": t.kind, "requires_grad": None if t.kind == "tensor" else t.requires_grad}


def tie_entry(group: TieGroup) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": group.id, "paths": list(group.paths)}
    if group.tie_from:
        entry["tie_from"] = group.tie_from
    return entry


def listed_as_parameters(tree: ModuleTree) -> list[TensorNode]:
    """The entries of the JSON's "parameters": parameters, and tensors of unknown kind
    (marked so), in state_dict order."""
    return [t for t in tree.tensors.values() if t.kind in ("parameter", "tensor")]


def totals(tree: ModuleTree) -> dict[str, Any]:
    """Tensors of unknown kind, counted apart from `total_parameters`."""
    unknown = tree.unknown_kind
    if not unknown:
        return {}
    return {
        "total_tensors": {
            "tensors": len(unknown),
            "elements": tree.total_tensor_elements,
            "note": "the file does not say whether these are parameters or buffers",
        }
    }


def optimizer_fields(tree: ModuleTree, path: str, stats: bool) -> dict[str, Any]:
    """`optimizer_state` of a parameter of a training checkpoint: per state name (Adam's
    exp_avg, exp_avg_sq, step) its shape, dtype and statistics (or the value of a scalar)."""
    state = tree.optimizer_state.get(path)
    if not state:
        return {}
    out: dict[str, Any] = {}
    for name, handle in state.items():
        entry: dict[str, Any] = {"shape": list(handle.shape), "dtype": handle.dtype}
        if stats and handle.has_values:
            from .display import tensor_stats

            values = handle.array()
            if values.size == 1:
                entry["value"] = float(values.reshape(()))
            else:
                entry["stats"] = tensor_stats(values).as_dict()
        out[name] = entry
    return {"optimizer_state": out}


def identical_groups(tree: ModuleTree) -> list[dict[str, Any]]:
    """Groups of byte-identical tensors (probable ties a file could not keep)."""
    from .identical import find_identical_tensors

    return [group.as_dict() for group in find_identical_tensors(tree)]
