"""The structure of a loaded torch checkpoint: its state dicts, its metadata and its optimizer
state, matched to the parameters it belongs to.

A checkpoint is whatever `torch.save` was given: a state dict, a dict holding state dicts, a
Lightning `.ckpt` (`state_dict`, `optimizer_states`, `hyper_parameters`, `epoch`, ...), the
common `{"model": ..., "optimizer": ..., "epoch": ...}`. Every tensor becomes an entry of the
tree at its key path inside the file (`state_dict.encoder.weight`; for a plain state dict just
the key); everything that is not a tensor becomes JSON-safe metadata at the same place.

Optimizer state. `optimizer.state_dict()` names parameters by position: `param_groups[i]
["params"]` lists indices into the optimizer's parameter list, which is `model.parameters()`:
the model's state dict order without buffers and without the second path of a tie. Where the
checkpoint allows (a model state dict beside it, and an alignment where every state tensor has
its parameter's shape), the state (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, `step`, ...) is
exposed as `tree.optimizer_state[param_path][state_name]` (a TensorHandle) and not repeated in
the tree. Unmatched state stays in the tree at its key path (as buffers, so parameter counts
stay right), and `metadata["optimizer_matching"]` says why it was not matched.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SourceError
from ..handles import TensorHandle, TorchHandle
from ..limits import GET_IT_AGAIN, MAX_DENSE_ELEMENTS, MAX_SHARED_ENTRIES, MAX_TENSORS
from ..text import first_line
from ..torch_import import import_torch, loaded_torch
from ..tree import KNOWN_BUFFER_NAMES
from .metadata import json_safe
from .torch_zip import StoredTensor

MAX_NESTING = 64  # containers deeper than this are shown as a note, not walked
# A container met again (one object saved at two places) is walked again only if it holds
# tensors, so each place gets its branch; those branches may add MAX_SHARED_ENTRIES entries
# in all: a file can hold one list shared at every level of a nesting, which makes
# 2**depth paths from a few bytes.
# Where training scripts put the model's state dict, most specific first ("" = the top level)
MODEL_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "")


class CheckpointTensorHandle(TorchHandle):
    """A tensor loaded from a checkpoint (memory-mapped where the format allows): values are
    read when first shown, and storages of no bytes never count as ties."""

    def __init__(self, tensor: Any) -> None:
        super().__init__(tensor, snapshot=False)

    @property
    def no_values_reason(self) -> str | None:
        reason = super().no_values_reason
        if reason is None and self.tensor.layout is not import_torch().strided:
            reason = sparse_problem(self.tensor)
        return reason

    def array(self):
        torch = import_torch()

        self.check_values()
        t = self.tensor
        if t.is_quantized:
            t = t.dequantize()
        elif t.layout is not torch.strided:  # sparse: shown dense
            t = t.to_dense()
        if t is self.tensor:
            return super().array()
        return TorchHandle(t, snapshot=False).array()

    def storage_key(self) -> Hashable | None:
        torch = import_torch()

        t = self.tensor
        try:
            if t.layout is not torch.strided or t.untyped_storage().nbytes() == 0:
                return None  # empty storages may all sit at address 0
        except (RuntimeError, NotImplementedError):
            return None
        return super().storage_key()


@dataclass
class CheckpointContents:
    """What a loaded checkpoint holds, ready for `tree_from_entries`."""

    entries: list[tuple[str, TensorHandle]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # path -> "parameter" | "buffer"
    metadata: dict[str, Any] = field(default_factory=dict)
    optimizer_state: dict[str, dict[str, TensorHandle]] = field(default_factory=dict)
    model_prefix: str | None = None  # key path of the model state dict ("" = top level)
    containers: list[tuple[str, ...]] = field(default_factory=list)  # nested state dicts


@dataclass
class _Container:
    """A mapping of the file whose values are tensors: a state dict."""

    path: tuple[str, ...]
    keys: list[str]  # tree paths of its tensors, in file order


@dataclass
class _Optimizer:
    path: tuple[str, ...]
    state: Mapping[Any, Any]
    groups: list[Mapping[str, Any]]


def sparse_problem(t: Any) -> str | None:
    """Why a sparse tensor cannot be shown densely (indices outside its shape: to_dense would
    write outside its memory; more elements than MAX_DENSE_ELEMENTS), or None."""
    torch = import_torch()
    if t.numel() > MAX_DENSE_ELEMENTS:
        return f"a sparse tensor of {t.numel():,} elements is too large to show densely"
    try:
        if t.layout is torch.sparse_coo:
            torch._validate_sparse_coo_tensor_args(t._indices(), t._values(), t.size())
        else:
            compressed, plain = _compressed_indices(t)
            torch._validate_sparse_compressed_tensor_args(
                compressed, plain, t.values(), t.size(), t.layout
            )
    except (RuntimeError, ValueError, TypeError) as exc:
        return f"its sparse indices are invalid ({first_line(exc)[:100]}): the file is damaged"
    return None


def _compressed_indices(t: Any) -> tuple[Any, Any]:
    torch = import_torch()
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return t.crow_indices(), t.col_indices()
    return t.ccol_indices(), t.row_indices()


def is_tensor(x: Any) -> bool:
    """A torch tensor, or a tensor of a torch zip file read without torch (a StoredTensor)."""
    if isinstance(x, StoredTensor):
        return True
    torch = loaded_torch()  # nothing is a torch tensor before torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def tensor_handle(x: Any) -> TensorHandle:
    """The lazy handle of a checkpoint tensor (`is_tensor(x)`)."""
    return x.handle() if isinstance(x, StoredTensor) else CheckpointTensorHandle(x)


def check_attributes(obj: Any, source: str) -> None:
    """Refuse a loaded checkpoint in which a dict or a tensor carries an attribute named like
    one of its own methods (`items`, `detach`): torch's loader sets the attributes a file's
    BUILD says, and every later call of that method would fail (netexplorer's own reader
    refuses such a BUILD itself)."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        own = getattr(x, "__dict__", ())
        hiding = [n for n in own if isinstance(n, str) and hasattr(type(x), n)]
        if hiding and (isinstance(x, dict) or is_tensor(x)):
            raise SourceError(
                f"cannot open {source}: a {type(x).__name__} in it carries an attribute named "
                f"{hiding[0][:40]!r}, which hides its own; {GET_IT_AGAIN}"
            )
        if isinstance(x, dict):
            stack.extend(dict.keys(x))
            stack.extend(dict.values(x))
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)


def read_checkpoint(obj: Any, source: str = "the checkpoint") -> CheckpointContents:
    """Entries, metadata and matched optimizer state of a loaded checkpoint object (read
    from `source`). Raises SourceError when it holds more than MAX_TENSORS tensors, or when
    containers of tensors placed at several paths would add more than MAX_SHARED_ENTRIES
    entries (beyond as many as the file holds once)."""
    walker = _Walker(source)
    metadata = walker.walk(obj, ())
    out = CheckpointContents(
        entries=walker.entries,
        kinds=walker.kinds,
        containers=[c.path for c in walker.containers],
    )
    if isinstance(metadata, dict):
        out.metadata.update(metadata)
    elif metadata is not _NOTHING:
        out.metadata["contents"] = metadata
    model = _model_container(walker.containers)
    out.model_prefix = ".".join(model.path) if model is not None else None
    matching = []
    for optimizer in walker.optimizers:
        report = _match_optimizer(optimizer, model, walker.handles, out)
        matching.append(report)
        if not report["matched"]:
            _add_unmatched(optimizer, walker, out)
    if matching:
        out.metadata["optimizer_matching"] = matching
    return out


_NOTHING = object()  # a part of the file with no metadata left once tensors are taken out


class _Walker:
    """Walks a checkpoint once: tensors to entries, optimizers aside, the rest to metadata."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.entries: list[tuple[str, TensorHandle]] = []
        self.kinds: dict[str, str] = {}
        self.handles: dict[str, TensorHandle] = {}
        self.containers: list[_Container] = []
        self.optimizers: list[_Optimizer] = []
        self._seen: set[str] = set()
        # id of a container walked -> (it held tensors, its metadata); the object itself is
        # kept alive by the checkpoint for the whole walk, so its id is not reused
        self._walked: dict[int, tuple[bool, Any]] = {}
        self._active: set[int] = set()  # containers being walked: met again, a cycle
        self._rewalking = 0  # > 0 inside a container walked a second time
        self._shared = 0  # entries added by second walks

    def walk(self, obj: Any, path: tuple[str, ...]) -> Any:
        """The JSON-safe metadata of `obj` (tensors and optimizer tensors taken out)."""
        if not isinstance(obj, (Mapping, list, tuple)):
            return self._walk(obj, path)
        if id(obj) in self._active:
            return "<this container again: it contains itself>"
        known = self._walked.get(id(obj))
        if known is not None and not known[0]:
            return known[1]  # no tensors below: its metadata once is enough
        self._active.add(id(obj))
        self._rewalking += known is not None
        before = (len(self.entries), len(self.optimizers))
        try:
            metadata = self._walk(obj, path)
        finally:
            self._active.discard(id(obj))
            self._rewalking -= known is not None
        held_tensors = (len(self.entries), len(self.optimizers)) != before
        self._walked[id(obj)] = (held_tensors, metadata)
        return metadata

    def _walk(self, obj: Any, path: tuple[str, ...]) -> Any:
        if len(path) > MAX_NESTING:  # a crafted file must not exhaust the stack
            return "<nested too deeply>"
        if is_tensor(obj):
            if obj.dim() == 0 and path:
                return json_safe(obj)  # a lone scalar (a score, a step count) is metadata
            self.add(path or ("tensor",), obj)
            return _NOTHING
        if is_storage(obj):  # saved on its own: its elements, as a 1-D tensor (a buffer)
            self.add(path or ("storage",), storage_tensor(obj), kind="buffer")
            return _NOTHING
        if is_module(obj):  # only after a trusted load: its state dict is what it holds
            obj = obj.state_dict()
        if _is_optimizer(obj):
            self.optimizers.append(_Optimizer(path, obj["state"], list(obj["param_groups"])))
            return _optimizer_metadata(obj)
        if isinstance(obj, Mapping):
            return self._walk_mapping(obj, path)
        if isinstance(obj, (list, tuple)):
            items = [self.walk(v, (*path, str(i))) for i, v in enumerate(obj)]
            kept = [v for v in items if v is not _NOTHING]
            if not kept and obj:
                return _NOTHING
            return [None if v is _NOTHING else v for v in items]
        return json_safe(obj)

    def _walk_mapping(self, obj: Mapping, path: tuple[str, ...]) -> Any:
        values = list(obj.values())
        tensors = [v for v in values if is_tensor(v)]
        # a state dict: scalar tensors in it (num_batches_tracked) are entries too
        is_state_dict = bool(tensors) and (
            len(tensors) == len(values) or any(t.dim() > 0 for t in tensors)
        )
        before = len(self.entries)
        out: dict[str, Any] = {}
        for key, value in obj.items():
            child = (*path, str(key))
            if is_state_dict and is_tensor(value):
                self.add(child, value)
                continue
            meta = self.walk(value, child)
            if meta is not _NOTHING:
                out[str(key)] = meta
        if is_state_dict:
            self.containers.append(_Container(path, [k for k, _ in self.entries[before:]]))
        if not out and obj:
            return _NOTHING
        return out

    def add(self, path: tuple[str, ...], tensor: Any, kind: str | None = None) -> str:
        key = ".".join(path)
        if key in self._seen:  # {"a.b": x, "a": {"b": y}} would give two paths "a.b"
            n = 2
            while f"{key} ({n})" in self._seen:
                n += 1
            key = f"{key} ({n})"
        self._seen.add(key)
        _count_entry_limits(self)
        handle = tensor_handle(tensor)
        self.entries.append((key, handle))
        self.handles[key] = handle
        if kind is not None:
            self.kinds[key] = kind
        return key


def _count_entry_limits(walker: _Walker) -> None:
    """Refuse a checkpoint past MAX_TENSORS entries, or whose shared containers add more
    entries than MAX_SHARED_ENTRIES beyond the ones it holds once."""
    total = len(walker.entries) + 1
    if total > MAX_TENSORS:
        raise SourceError(
            f"cannot open {walker.source}: it holds more than {MAX_TENSORS:,} tensors, the most "
            "netexplorer opens (each is a tree node, a line and statistics); open a smaller "
            "part of it"
        )
    if walker._rewalking:
        walker._shared += 1
        if walker._shared > max(MAX_SHARED_ENTRIES, total - walker._shared):
            raise SourceError(
                f"cannot open {walker.source}: it places the same containers of tensors at so "
                f"many paths that they would add over {MAX_SHARED_ENTRIES:,} entries to the "
                f"tree; {GET_IT_AGAIN}"
            )


def is_storage(x: Any) -> bool:
    """A torch storage (typed or untyped) loaded by torch."""
    torch = loaded_torch()
    return torch is not None and isinstance(x, (torch.UntypedStorage, torch.storage.TypedStorage))


def storage_tensor(storage: Any) -> Any:
    """A storage as the 1-D tensor of its elements (bytes for an untyped storage), sharing
    its memory: what a file holding a bare storage holds."""
    torch = import_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, still loaded
        dtype = getattr(storage, "dtype", torch.uint8)
        return torch.empty(0, dtype=dtype).set_(storage)


def is_module(obj: Any) -> bool:
    torch = loaded_torch()
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_optimizer(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or "state" not in obj or "param_groups" not in obj:
        return False
    groups = obj["param_groups"]
    return (
        isinstance(obj["state"], Mapping)
        and isinstance(groups, (list, tuple))
        and all(
            isinstance(g, Mapping)
            and isinstance(g.get("params"), list)
            and all(type(i) is int for i in g["params"])  # positions (a damaged file: any)
            for g in groups
        )
    )


def _optimizer_metadata(obj: Mapping) -> dict[str, Any]:
    out = {str(k): json_safe(v) for k, v in obj.items() if k not in ("state", "param_groups")}
    out["param_groups"] = json_safe(list(obj["param_groups"]))
    names: list[str] = []
    for per_param in obj["state"].values():
        if isinstance(per_param, Mapping):
            names.extend(str(n) for n in per_param if str(n) not in names)
    out["state"] = f"state of {len(obj['state'])} parameters: {', '.join(names) or 'none'}"
    return out


def _model_container(containers: list[_Container]) -> _Container | None:
    """The state dict of the model: at a conventional key, else the largest one."""
    for key in MODEL_KEYS:
        for c in containers:
            if ".".join(c.path) == key:
                return c
    return max(containers, key=lambda c: len(c.keys), default=None)


def _match_optimizer(
    optimizer: _Optimizer,
    model: _Container | None,
    handles: dict[str, TensorHandle],
    out: CheckpointContents,
) -> dict[str, Any]:
    where = ".".join(optimizer.path) or "(top level)"
    report: dict[str, Any] = {"optimizer": where, "matched": False}
    order = [p for g in optimizer.groups for p in g["params"]]
    states = {p: optimizer.state.get(p) for p in order}
    if model is None:
        report["reason"] = "no model state dict beside it"
        return report
    report["model"] = ".".join(model.path) or "(top level)"
    names = [n for g in optimizer.groups for n in (g.get("param_names") or [])]
    if len(names) == len(order):
        assignment = _align_by_name(names, model)
        how = "by the parameter names saved with the optimizer"
    else:
        assignment = _align_by_order(order, states, model, handles)
        how = "by parameter order and shape"
    if assignment is None:
        report["reason"] = (
            f"its {len(order)} parameters do not line up with the "
            f"{len(_parameter_paths(model, handles))} parameters of the model state dict"
        )
        return report
    matched: dict[str, dict[str, TensorHandle]] = {}
    for p, path in zip(order, assignment, strict=True):
        state = states[p]
        if not isinstance(state, Mapping):
            continue
        shape = handles[path].shape
        per_param: dict[str, TensorHandle] = {}
        for name, value in state.items():
            if not is_tensor(value):
                continue
            if value.dim() > 0 and tuple(value.shape) != shape:
                report["reason"] = (
                    f"state {name!r} of parameter {p} has shape {list(value.shape)}, "
                    f"but {path} has {list(shape)}"
                )
                return report
            per_param[str(name)] = tensor_handle(value)
        if per_param:
            matched[path] = per_param
    out.optimizer_state.update(matched)
    report.update(matched=True, how=how, parameters=len(matched))
    return report


def _parameter_paths(model: _Container, handles: dict[str, TensorHandle]) -> list[str]:
    """The model state dict's paths as `model.parameters()` lists them: no buffers, and each
    tied tensor once (at its first path)."""
    seen: set[Hashable] = set()
    paths = []
    for path in model.keys:
        if path.rpartition(".")[2] in KNOWN_BUFFER_NAMES:
            continue
        key = handles[path].storage_key()
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        paths.append(path)
    return paths


def _align_by_name(names: list[str], model: _Container) -> list[str] | None:
    prefix = ".".join(model.path)
    by_name = {(k[len(prefix) + 1 :] if prefix else k): k for k in model.keys}
    if all(n in by_name for n in names):
        return [by_name[n] for n in names]
    return None


def _align_by_order(
    order: list[Any],
    states: dict[Any, Any],
    model: _Container,
    handles: dict[str, TensorHandle],
) -> list[str] | None:
    """Parameter paths for the optimizer's parameters, in order, if exactly one alignment
    fits: equal counts zip; fewer optimizer parameters (frozen ones, unknown buffers) are
    placed as a subsequence, which must be unique (leftmost == rightmost placement)."""
    candidates = _parameter_paths(model, handles)
    shapes = [_state_shape(states[p]) for p in order]

    def fits(i: int, path: str) -> bool:
        return shapes[i] is None or shapes[i] == handles[path].shape

    if len(order) == len(candidates):
        if all(fits(i, path) for i, path in enumerate(candidates)):
            return candidates
        return None
    if len(order) > len(candidates) or not order:
        return None
    left = _place(len(order), candidates, fits)
    right = _place_from_right(len(order), candidates, fits)
    if left is None or left != right:
        return None
    return left


def _place(n: int, candidates: list[str], fits) -> list[str] | None:
    placed, j = [], 0
    for i in range(n):
        while j < len(candidates) and not fits(i, candidates[j]):
            j += 1
        if j == len(candidates):
            return None
        placed.append(candidates[j])
        j += 1
    return placed


def _place_from_right(n: int, candidates: list[str], fits) -> list[str] | None:
    placed, j = [], len(candidates) - 1
    for i in reversed(range(n)):
        while j >= 0 and not fits(i, candidates[j]):
            j -= 1
        if j < 0:
            return None
        placed.append(candidates[j])
        j -= 1
    return placed[::-1]


def _state_shape(state: Any) -> tuple[int, ...] | None:
    """The parameter shape an optimizer state implies (from its non-scalar tensors)."""
    if isinstance(state, Mapping):
        for value in state.values():
            if is_tensor(value) and value.dim() > 0:
                return tuple(int(s) for s in value.shape)
    return None


def _add_unmatched(optimizer: _Optimizer, walker: _Walker, out: CheckpointContents) -> None:
    """Optimizer state that matched no parameter stays visible in the tree, as buffers."""
    for p, state in optimizer.state.items():
        if not isinstance(state, Mapping):
            continue
        for name, value in state.items():
            if is_tensor(value):
                path = (*optimizer.path, "state", str(p), str(name))
                key = walker.add(path, value, kind="buffer")
                out.kinds[key] = "buffer"
    out.entries = walker.entries
