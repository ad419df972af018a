"""`pkg.module:factory`: a model built by the user's code, live; and `--model SPEC --weights
FILE`, which loads a checkpoint into it.

Naming a factory is asking for its code to run, so no trust question arises here; the weights
file, though, is opened by the ordinary readers, with their refusal of pickles that would run
code. Loading is lenient (`strict=False`): missing, unexpected and shape-mismatched keys are
listed in `tree.metadata["weights_report"]`, never raised.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import SourceError
from ..handles import TensorHandle, TorchHandle
from ..text import first_line
from ..torch_import import import_torch
from ..tree import ModuleTree, tree_from_module
from .base import OpenOptions

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
SPEC = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


def is_factory_spec(spec: str) -> bool:
    """`pkg.module:factory` (dotted identifiers on both sides) that is not a path on disk."""
    return bool(SPEC.match(spec)) and not os.path.exists(spec)


class FactoryReader:
    name = "factory"
    title = "Python factories (pkg.module:function)"
    file_patterns: tuple[str, ...] = ()

    def can_read(self, spec: str) -> bool:
        return is_factory_spec(spec)

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        return build_with_weights(spec, None, options)


def build_model(spec: str, options: OpenOptions) -> Any:
    """Import `pkg.module`, call `factory()` (seeded; on the meta device with `options.meta`)
    and return the nn.Module. Any failure is one SourceError line."""
    match = SPEC.match(spec)
    if match is None:
        raise SourceError(
            f"cannot build {spec!r}: expected pkg.module:factory, e.g. mypkg.models:make_net"
        )
    module_name, attribute = match.groups()
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # `netexplorer` run from a project folder finds it
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from a script's top level too
        raise SourceError(
            f"cannot import {module_name} for {spec}: {_one_line(exc)}; check the name and "
            "that the package is importable (installed, or in the current folder)"
        ) from None
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise SourceError(f"cannot build {spec}: {module_name} has no {attribute!r}")
    if not callable(factory):
        raise SourceError(f"cannot build {spec}: {attribute} is not callable")
    torch = import_torch()

    torch.manual_seed(0 if options.seed is None else int(options.seed))
    try:
        if options.meta:
            with torch.device("meta"):
                model = factory()
        else:
            model = factory()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise SourceError(
            f"cannot build {spec}: calling {attribute}() raised {_one_line(exc)}"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise SourceError(
            f"cannot build {spec}: {attribute}() returned a {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model


def _one_line(exc: BaseException) -> str:
    text = first_line(exc, with_type=True)
    return text if len(text) <= 200 else text[:197] + "..."


def build_with_weights(
    model_spec: str, weights: str | None, options: OpenOptions | None = None
) -> ModuleTree:
    """The live tree of the model `model_spec` builds, with the checkpoint `weights` (any
    file or folder the readers open; a training checkpoint's model state dict is found
    by its keys) loaded into it with strict=False. With `options.meta` the model is built
    on the meta device and loaded tensors are assigned, so only missing keys stay
    without values. The key report is in `tree.metadata["weights_report"]`."""
    options = options or OpenOptions()
    options.report(0.0, f"building {model_spec}")
    model = build_model(model_spec, options)
    metadata: dict[str, Any] = {"factory": model_spec, "seed": options.seed}
    if options.meta:
        metadata["meta"] = True
    optimizer_state: dict[str, dict[str, TensorHandle]] = {}
    loaded_by_library = None
    if weights is not None and not options.meta:
        from ..hf_live import load_into_factory_model

        loaded_by_library = load_into_factory_model(model, weights)
    if loaded_by_library is not None:  # a transformers model and its folder: its own loader
        model, report = loaded_by_library
        metadata["weights"] = weights
        metadata["weights_report"] = report
    elif weights is not None:
        from . import open_source

        options.report(0.3, f"reading {weights}")
        checkpoint = open_source(weights, options)
        options.report(0.6, f"loading {weights} into the model")
        report, prefix = load_weights(model, checkpoint, assign=options.meta)
        metadata["weights"] = weights
        metadata["weights_report"] = report
        optimizer_state = {
            path[len(prefix) :]: state
            for path, state in checkpoint.optimizer_state.items()
            if path.startswith(prefix)
        }
    tree = tree_from_module(model, source=model_spec, metadata=metadata)
    tree.reader = "factory"
    if loaded_by_library is not None:
        from ..hf_inputs import model_inputs

        tree.default_input, tree.default_loss = model_inputs(model)
    tree.optimizer_state = {p: s for p, s in optimizer_state.items() if p in tree.tensors}
    return tree


def load_weights(model: Any, checkpoint: ModuleTree, assign: bool = False) -> tuple[dict, str]:
    """Load the tensors of `checkpoint` into `model` (strict=False) and report the keys:
    loaded, missing, unexpected, shape mismatches (not loaded) and dtype changes."""
    torch = import_torch()

    expected = model.state_dict(keep_vars=True)
    prefix = best_prefix(checkpoint.tensors, expected)
    available = {
        path[len(prefix) :]: node.handle
        for path, node in checkpoint.tensors.items()
        if path.startswith(prefix)
    }
    state: dict[str, Any] = {}
    mismatched, dtype_changes = [], []
    for key, want in expected.items():  # in the model's order
        handle = available.get(key)
        if handle is None:
            continue
        if tuple(want.shape) != tuple(handle.shape):
            mismatched.append(
                {"key": key, "model": list(want.shape), "checkpoint": list(handle.shape)}
            )
            continue
        if not handle.has_values:
            continue
        tensor = as_torch(handle)
        if tensor.dtype != want.dtype:
            dtype_changes.append(
                {"key": key, "model": _dtype(want.dtype), "checkpoint": _dtype(tensor.dtype)}
            )
            if assign:  # keep the model's dtype, as a copying load would
                tensor = tensor.to(want.dtype)
        state[key] = tensor
    ties = _tied_paths(model)
    try:
        with torch.no_grad():
            result = model.load_state_dict(state, strict=False, assign=assign)
    except Exception as exc:
        raise SourceError(
            f"cannot load {checkpoint.source} into the model: {_one_line(exc)}"
        ) from None
    if assign:
        _retie(model, ties)
    tied = tied_to_loaded(result.missing_keys, state, ties)
    tied_keys = {item["key"] for item in tied}
    report = {
        "prefix": prefix,
        "loaded": len(state),
        "missing": [k for k in result.missing_keys if k not in tied_keys],
        "tied": tied,
        "unexpected": [k for k in available if k not in expected],
        "shape_mismatched": mismatched,
        "dtype_changed": dtype_changes,
    }
    return report, prefix


def tied_to_loaded(
    missing: Iterable[str], loaded: dict[str, Any], ties: list[list[str]]
) -> list[dict[str, str]]:
    """Missing keys that are one Parameter with a key that was loaded: they hold the
    checkpoint's values through it (safetensors stores a tied tensor once), so they are not
    missing. `[{"key": "lm_head.weight", "to": "transformer.wte.weight"}, ...]`."""
    partners = {path: group for group in ties for path in group}
    tied = []
    for key in missing:
        through = [k for k in partners.get(key, ()) if k in loaded]
        if through:
            tied.append({"key": key, "to": through[0]})
    return tied


def best_prefix(checkpoint_paths: Iterable[str], model_keys: Iterable[str]) -> str:
    """The key path (`""`, `"state_dict."`, `"model."`, ...) under which the checkpoint holds
    most of the model's keys: a training checkpoint nests the model's state dict."""
    wanted = set(model_keys)
    counts: dict[str, int] = {}
    for path in checkpoint_paths:
        parts = path.split(".")
        for i in range(len(parts)):
            prefix = ".".join(parts[:i]) + ("." if i else "")
            if path[len(prefix) :] in wanted:
                counts[prefix] = counts.get(prefix, 0) + 1
    if not counts:
        return ""
    # most matches; on a tie the shorter prefix
    return max(counts, key=lambda p: (counts[p], -len(p)))


def as_torch(handle: TensorHandle) -> Any:
    """A handle's values as a writable torch tensor of the stored dtype (the file is never
    written: mapped files are mapped copy-on-write)."""
    torch = import_torch()

    if isinstance(handle, TorchHandle):
        return handle.tensor.detach()
    to_torch = getattr(handle, "torch_tensor", None)
    if to_torch is not None:
        return to_torch()
    return torch.from_numpy(handle.array().copy())


def _dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _tied_paths(model: Any) -> list[list[str]]:
    """Parameter paths that share one Parameter object (loading with assign=True would
    replace each path's parameter separately and break the tie)."""
    by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), []).append(name)
    return [paths for paths in by_id.values() if len(paths) > 1]


def _retie(model: Any, ties: list[list[str]]) -> None:
    for first, *others in ties:
        shared = model.get_parameter(first)
        for path in others:
            owner_path, _, name = path.rpartition(".")
            owner = model.get_submodule(owner_path) if owner_path else model
            setattr(owner, name, shared)
