"""The thin adapter between `core` and the widgets.

`Document` owns what the window shows: the open tree, the selection, and the data of the
shown tensor (values, display arrays, gradient, per-use contributions). It tells widgets
about changes by signals, one per attribute, emitted only on a real change. Widgets never
reach into torch objects: they render the plain data the document hands them. The state of
the passes lives in the pass session's `PassState` (`document.session.state`).

Where tensor data comes from:
- a live model: the pass session, which reads the watched tensor (parameter or buffer) when
  no pass runs, and brings it with every pass result while one does;
- a checkpoint: the tensor's lazy handle, read in a worker when it is large.
Display arrays (and everything else derived from a large tensor) are made in a worker too,
a piece at a time, so the GUI thread never spends more than a few milliseconds on one
tensor and a newer selection stops the work for the older one between two pieces. A
checkpoint's tensors shown recently are kept ready (with their statistics, once computed)
in a cache bounded by bytes (core/display_cache.py), so going back to one is instant.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.display import (
    DisplayArray,
    TensorStats,
    display_array,
    iter_display_array,
    sum_mismatch,
    symmetric_levels,
)
from ..core.display_cache import DisplayCache, owned_bytes
from ..core.handles import TensorHandle
from ..core.tasks import run_to_end
from ..core.tree import ModuleNode, ModuleTree, Node, TensorNode
from .live_history import LiveHistory
from .session import PassSession
from .timeline_prefetch import NeighbourPrefetch
from .timeline_state import Timeline
from .workers import GUI_THREAD_ELEMENTS, TaskRunner

if TYPE_CHECKING:  # both import torch, which loads only once a live model is open
    from ..core.contributions import Contribution
    from ..core.passes import PassResult, WatchedTensor


@dataclass
class UsesData:
    """The per-use contributions of a shared tensor ready to draw: one display per use and
    one of their sum, on one colour scale."""

    displays: list[DisplayArray]  # one per contribution, then the sum
    total: np.ndarray  # the sum of the contributions
    levels: tuple[float, float]


@dataclass
class TensorData:
    """Everything the window shows of one tensor, as plain data."""

    path: str
    values: np.ndarray
    display: DisplayArray
    grad: np.ndarray | None = None
    grad_display: DisplayArray | None = None
    contributions: list[Contribution] | None = None
    uses: UsesData | None = None
    live: bool = False  # from a live model (a gradient may come)
    kind: str = "parameter"  # or "buffer" (no gradient, ever)
    version: int = 0  # bumps with every refresh, so views can tell new data from old
    stats: TensorStats | None = None  # of `values`, once computed (kept with it in the cache)

    @property
    def nbytes(self) -> int:
        """The memory this data holds of its own (values read from a file's map hold none)."""
        arrays = [self.values, self.display.data, self.display.gap_mask, self.grad]
        if self.grad_display is not None:
            arrays.append(self.grad_display.data)
        return sum(owned_bytes(a) for a in arrays)

    @property
    def contribution_error(self) -> float | None:
        """max |sum of contributions - grad|, the check that they add up."""
        if self.grad is None or not self.contributions:
            return None
        return sum_mismatch([c.values for c in self.contributions], self.grad)


def make_tensor_data(
    path: str,
    values: np.ndarray,
    slice_index: tuple[int, ...] | None,
    *,
    grad: np.ndarray | None = None,
    contributions: list[Contribution] | None = None,
    live: bool = False,
    kind: str = "parameter",
) -> TensorData:
    """Values, gradient and contributions with their display arrays (a worker task for
    large tensors)."""
    display = display_array(values, slice_index=slice_index)
    grad_display = None
    if grad is not None:
        grad_display = display_array(grad, slice_index=display.slice_index or None)
    uses = None
    if contributions and grad is not None:
        total = np.sum([c.values for c in contributions], axis=0)
        displays = [display_array(c.values) for c in contributions] + [display_array(total)]
        levels = symmetric_levels(np.concatenate([d.data.ravel() for d in displays]))
        uses = UsesData(displays, total, levels)
    return TensorData(
        path,
        values,
        display,
        grad=grad,
        grad_display=grad_display,
        contributions=contributions,
        uses=uses,
        live=live,
        kind=kind,
    )


def read_tensor(path: str, handle: TensorHandle, slice_index: tuple[int, ...] | None):
    """Worker task for checkpoints: read values, make the display array a piece at a time
    (yields progress; a newer request stops it between two pieces)."""
    values = handle.array()
    display = yield from iter_display_array(values, slice_index=slice_index)
    return TensorData(path, values, display)


def live_tensor_data(watched: WatchedTensor, slice_index: tuple[int, ...] | None) -> TensorData:
    """A tensor of a live model as a pass result or a read brought it (a worker task for
    large tensors)."""
    return make_tensor_data(
        watched.path,
        watched.values,
        slice_index,
        grad=watched.grad,
        contributions=watched.contributions,
        live=True,
        kind=watched.kind,
    )


class Document(QObject):
    tree_changed = Signal(object)  # ModuleTree | None
    selection_changed = Signal(object)  # path (str) or None
    tensor_data_changed = Signal(object)  # TensorData | None (the shown tensor)
    tensor_loading = Signal(str)  # path of a tensor being read in a worker
    tensor_load_failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tree: ModuleTree | None = None
        self._selected: str | None = None
        self._slice_index: tuple[int, ...] | None = None
        self.tensor_data: TensorData | None = None
        self._activations: dict[tuple[str, int], np.ndarray] = {}
        self._version = 0
        self.session = PassSession(self)
        self.session.state.result_changed.connect(self._on_pass_result)
        self.session.tensors_read.connect(self._on_tensors_read)
        self._loader = TaskRunner(self)
        # a training run's time slider (timeline_state.py), a live model's history on it
        # (live_history.py), and the shown tensor at the checkpoints beside it, read ahead
        self.timeline = Timeline(self)
        self.timeline.step_changed.connect(self._on_step_changed)
        LiveHistory(self.session, self.timeline)
        self.prefetch = NeighbourPrefetch(self)
        # a checkpoint's tensors shown recently, by (path, slice, the handle read: a run's
        # checkpoints hold a path many times): ready to show again
        self.display_cache = DisplayCache()

    # -- tree and selection -----------------------------------------------------------------

    @property
    def tree(self) -> ModuleTree | None:
        return self._tree

    @property
    def selected(self) -> str | None:
        return self._selected

    def selected_node(self) -> Node | None:
        if self._tree is None or self._selected is None:
            return None
        return self._tree.node(self._selected)

    def shown_tensor(self) -> TensorNode | None:
        """The tensor the heatmap shows: the selected one, or a selected module's first."""
        node = self.selected_node()
        if node is None or self._tree is None:
            return None
        return self._tree.first_tensor(node.path) if isinstance(node, ModuleNode) else node

    def set_tree(self, tree: ModuleTree | None, seed: int = 0) -> None:
        if tree is self._tree:
            return
        self._loader.cancel()
        self._tree = tree
        self._selected = None
        self._activations = {}
        self.display_cache.clear()
        self._set_tensor_data(None)
        self.session.set_tree(tree, seed)
        # torch, the model and the tree live as long as the window shows them: move them out
        # of the garbage collector's reach, or each full collection walks their hundreds of
        # thousands of objects (150-250 ms here: a visible stall at any moment). The tree
        # has no reference cycles (its links upwards are weak), so the one it replaces is
        # freed by reference counting, frozen or not.
        gc.freeze()
        self.timeline.set_tree(tree)
        self.tree_changed.emit(tree)
        self.selection_changed.emit(None)

    def select(self, path: str | None) -> None:
        """Select a module or tensor by path (raises UnknownPathError for a bad path)."""
        if path == self._selected:
            return
        if path is not None:
            if self._tree is None:
                raise ValueError("nothing is open")
            self._tree.node(path)
        previous = self.shown_tensor()
        self._selected = path
        self.session.hold_for_gui()  # training waits while the new selection is drawn
        self.selection_changed.emit(path)
        shown = self.shown_tensor()
        if shown is not previous:
            self._slice_index = None
            self.refresh_tensor()
        elif self.tensor_data is not None:  # same tensor, another selection: new context
            self.tensor_data_changed.emit(self.tensor_data)

    @property
    def slice_index(self) -> tuple[int, ...] | None:
        return self._slice_index

    def set_slice_index(self, slice_index: tuple[int, ...] | None) -> None:
        """Which 2-D slice of an N-D tensor to show (None: the default layout)."""
        if slice_index != self._slice_index:
            self._slice_index = slice_index
            self.refresh_tensor()

    # -- tensor data ------------------------------------------------------------------------

    def refresh_tensor(self) -> None:
        """Read the shown tensor again (after it changed, or a new selection)."""
        tensor = self.shown_tensor()
        self._loader.cancel()
        # a live model's snapshot when the time slider rests on one, else the tree's handle
        # (which a run of checkpoints points at the slider's checkpoint)
        snapshot = None if tensor is None else self.timeline.rewound_handle(tensor.path)
        handle = snapshot or (None if tensor is None else tensor.handle)
        if tensor is None or handle is None or not handle.has_values:
            self.session.watch(())
            self._set_tensor_data(None)
            return
        if self.session.engine is not None and snapshot is None:
            self.session.watch((tensor.path,))  # comes back as tensors_read or with a result
            return
        cached = self.display_cache.get((tensor.path, self._slice_index, id(handle)))
        ready = cached[1] if cached is not None and cached[0] is handle else None
        if ready is None:
            ready = self.prefetch.take(tensor.path, handle, self._slice_index)
        if ready is not None:
            self._on_built(ready, handle)
        elif tensor.numel <= GUI_THREAD_ELEMENTS:
            self._on_built(run_to_end(read_tensor(tensor.path, handle, self._slice_index)), handle)
        else:
            self.tensor_loading.emit(tensor.path)
            self._loader.run(
                read_tensor,
                tensor.path,
                handle,
                self._slice_index,
                on_result=lambda data: self._on_built(data, handle),
                on_error=lambda e: self.tensor_load_failed.emit(f"cannot read {tensor.path}: {e}"),
            )

    def notify_values_changed(self) -> None:
        """The model changed outside the window (a notebook cell ran): read it again."""
        self.session.read()

    def activations(self, module_path: str) -> list[tuple[int, np.ndarray]]:
        """(call, output) of every call of a module in the last forward pass that captured
        them (empty before any, or for a checkpoint)."""
        return [
            (call, values)
            for (site, call), values in self._activations.items()
            if site == module_path
        ]

    def _on_pass_result(self, result: PassResult | None) -> None:
        if result is None:
            return
        if result.activations is not None:
            self._activations = dict(result.activations)
        self._take_watched(result)

    def _on_tensors_read(self, result: PassResult) -> None:
        self._take_watched(result)

    def _on_step_changed(self, _step: int) -> None:
        """The time slider moved: the shown tensor at that checkpoint."""
        if self.shown_tensor() is not None:
            self.refresh_tensor()

    def _take_watched(self, result: PassResult) -> None:
        if self.timeline.rewound:  # an earlier snapshot is shown: live values wait
            return
        tensor = self.shown_tensor()
        watched = result.watched.get(tensor.path) if tensor is not None else None
        if watched is None:
            return
        if watched.values.size <= GUI_THREAD_ELEMENTS:
            self._on_built(live_tensor_data(watched, self._slice_index))
        else:  # display arrays of a large tensor: in a worker, the newest wins
            self.tensor_loading.emit(watched.path)
            self._loader.run(
                live_tensor_data,
                watched,
                self._slice_index,
                on_result=self._on_built,
                on_error=lambda e: self.tensor_load_failed.emit(f"cannot show {watched.path}: {e}"),
            )

    def _on_built(self, data: TensorData, handle: TensorHandle | None = None) -> None:
        tensor = self.shown_tensor()
        if tensor is not None and data.path == tensor.path:
            # a file's tensor: the same while the file is shown. Not a run's: its values
            # would hold the map of a checkpoint the slider has left (each step lets go of
            # the maps it leaves; the read-ahead keeps the neighbours)
            if not data.live and handle is not None and self.timeline.run is None:
                key = (data.path, self._slice_index, id(handle))  # the handle kept: id stays
                self.display_cache.put(key, (handle, data), data.nbytes)
            self._set_tensor_data(data)

    def _set_tensor_data(self, data: TensorData | None) -> None:
        if data is not None:
            self._version += 1
            data.version = self._version
        if data is None and self.tensor_data is None:
            return
        self.tensor_data = data
        self.tensor_data_changed.emit(data)

    def shutdown(self) -> None:
        self._loader.cancel()
        self.timeline.set_playing(False)
        self.prefetch.clear()
        self.session.shutdown()
