"""Recording the module calls of a forward pass.

Both the pass engine (which use of a shared parameter sent which gradient) and the graph view
(one node per module call, data flow by tensor identity) need to know, while a forward pass
runs, which module call is running. `CallRecorder` hooks every module of a tree for the time
of a `with` block and records each call:

- `site`: the module path of the call. A module object placed at several paths (the
  notebook's `2` and `4`) is one object with one set of hooks, so its paths are told apart by
  call order: its k-th call is at `paths[k % len(paths)]`.
- `call`: how many calls that site had before this one (0, 1, ...): an RNN cell unrolled over
  T steps has one site with calls 0..T-1.
- `parent`: the call that was running when this one started (None at the top).
- the ids of the tensors that went in and came out, for data-flow edges (valid only while
  those tensors are alive: the recorder keeps references until it is cleared).

torch is imported by whoever builds the module; this file imports it only for hook handles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .torch_import import import_torch
from .tree import ModuleTree

PAUSE_EVERY = 256  # modules hooked (and unhooked) between two pauses


@dataclass
class ModuleCall:
    index: int  # position in call-start order over the whole pass
    site: str  # module path
    call: int  # calls of this site before this one
    type_name: str
    parent: int | None  # index of the enclosing call
    depth: int
    input_ids: list[int] = field(default_factory=list)
    output_ids: list[int] = field(default_factory=list)
    finished: bool = False  # stays False if the forward raised inside this call


def module_paths(tree: ModuleTree) -> dict[int, list[str]]:
    """id(module object) -> its paths in the tree, in tree order."""
    root = tree.module
    if root is None:
        raise ValueError("a checkpoint without code has no module calls")
    paths: dict[int, list[str]] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(path)
    return paths


def iter_tensors(value: Any) -> Iterator[Any]:
    """Every tensor inside a (nested) tuple, list, dict or dataclass-like output object."""
    torch = import_torch()

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_tensors(v)
    elif hasattr(value, "to_tuple"):  # Hugging Face ModelOutput
        yield from iter_tensors(value.to_tuple())


class CallRecorder:
    """`with CallRecorder(tree) as rec: module(x)`; then `rec.calls`.

    `keep_io=True` records input and output tensor ids (and keeps the tensors alive until
    `clear()`), which the graph needs and the pass engine does not. `paths` (id(module) ->
    its paths, as `module_paths` makes them) saves finding them again."""

    def __init__(
        self,
        tree: ModuleTree,
        *,
        keep_io: bool = False,
        paths: dict[int, list[str]] | None = None,
    ) -> None:
        self.tree = tree
        self.keep_io = keep_io
        self._paths = module_paths(tree) if paths is None else paths
        self._handles: list[Any] = []
        self.calls: list[ModuleCall] = []
        self.stack: list[ModuleCall] = []
        # called before every module call (None: nothing): a training worker gives way to
        # the GUI there, inside a long forward pass, not only between steps
        self.pause: Callable[[], None] | None = None
        self._object_calls: dict[int, int] = {}  # id(module) -> calls so far
        self._kept: list[Any] = []

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> CallRecorder:
        self.clear()
        seen: set[int] = set()
        for module in self.tree.module.modules():  # each object once: one set of hooks
            if id(module) in seen:
                continue
            seen.add(id(module))
            self.hook(module)
        return self

    def hook(self, module: Any) -> None:
        """Hook one module's calls (pausing every PAUSE_EVERY: thousands of hooks take
        milliseconds with the GIL)."""
        if self.pause is not None and not len(self._handles) % (2 * PAUSE_EVERY):
            self.pause()
        self._handles.append(module.register_forward_pre_hook(self._pre))
        self._handles.append(module.register_forward_hook(self._post))

    def __exit__(self, *exc: object) -> None:
        for i, handle in enumerate(self._handles):
            if self.pause is not None and not (i + 1) % (2 * PAUSE_EVERY):
                self.pause()
            handle.remove()
        self._handles.clear()
        self.stack.clear()

    def clear(self) -> None:
        """Forget the calls of the last pass (a new pass starts counting from 0)."""
        self.calls.clear()
        self.stack.clear()
        self._object_calls.clear()
        self._kept.clear()

    # -- queries ----------------------------------------------------------------------------

    @property
    def current(self) -> ModuleCall | None:
        """The innermost module call running now."""
        return self.stack[-1] if self.stack else None

    def failed_call(self) -> ModuleCall | None:
        """After a forward pass raised: the innermost call that never finished (the module
        at fault), or None if every call finished."""
        unfinished = [c for c in self.calls if not c.finished]
        return max(unfinished, key=lambda c: c.depth) if unfinished else None

    # -- hooks ------------------------------------------------------------------------------

    def _pre(self, module: Any, args: tuple) -> None:
        if self.pause is not None:
            self.pause()
        paths = self._paths.get(id(module))
        if paths is None:  # a module created during forward: not part of the tree
            return
        k = self._object_calls.get(id(module), 0)
        self._object_calls[id(module)] = k + 1
        site = paths[k % len(paths)]
        parent = self.stack[-1] if self.stack else None
        record = ModuleCall(
            index=len(self.calls),
            site=site,
            call=k // len(paths),
            type_name=type(module).__name__,
            parent=None if parent is None else parent.index,
            depth=len(self.stack),
        )
        if self.keep_io:
            tensors = list(iter_tensors(args))
            record.input_ids = [id(t) for t in tensors]
            self._kept.extend(tensors)
        self.calls.append(record)
        self.stack.append(record)
        self.call_started(record, args)

    def _post(self, module: Any, args: tuple, output: Any) -> None:
        if id(module) not in self._paths or not self.stack:
            return
        record = self.stack.pop()
        record.finished = True
        if self.keep_io:
            tensors = list(iter_tensors(output))
            record.output_ids = [id(t) for t in tensors]
            self._kept.extend(tensors)
        self.call_finished(record, output)

    # -- for subclasses ---------------------------------------------------------------------

    def call_started(self, record: ModuleCall, args: tuple) -> None:
        """Called as each module call starts, once it is recorded (and is `current`). Does
        nothing here; the graph overrides it to follow tensors from call to call."""

    def call_finished(self, record: ModuleCall, output: Any) -> None:
        """Called as each module call returns, with its output. Does nothing here."""
