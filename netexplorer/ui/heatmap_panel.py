"""The centre of the window: the selected tensor as a heatmap, with slice controls for N-D
tensors and the hover readout. A selected module shows its first parameter.

Values of large tensors are read and reduced in a worker (core.display), so selecting a
50257x1024 embedding never blocks the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.display import DisplayArray, display_array
from ..core.handles import TensorHandle
from ..core.tree import ModuleNode, TensorNode
from .document import Document
from .heatmap import HeatmapView
from .tree_view import shape_text
from .workers import TaskRunner

SYNC_LIMIT = 1 << 18  # elements read on the GUI thread; larger tensors load in a worker


@dataclass
class LoadedTensor:
    path: str
    values: np.ndarray
    display: DisplayArray


def load_tensor(
    path: str, handle: TensorHandle, slice_index: tuple[int, ...] | None
) -> LoadedTensor:
    """Read a tensor's values and make its display array (runs in a worker for big ones)."""
    values = handle.array()
    return LoadedTensor(path, values, display_array(values, slice_index=slice_index))


class SliceControls(QWidget):
    """For tensors of 3+ dimensions: which 2-D slice to show (and, for 4-D, the mosaic)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.mosaic = QCheckBox("Mosaic of kernels", self)
        self.mosaic.setToolTip("4-D conv weights: every (output, input) kernel in one picture")
        self.mosaic.setChecked(True)
        self._spins: list[QSpinBox] = []
        self._can_mosaic = False
        self._label = QLabel("Slice:", self)
        self._layout.addWidget(self.mosaic)
        self._layout.addWidget(self._label)
        self._layout.addStretch(1)
        self._on_change = lambda: None
        self.mosaic.toggled.connect(self._changed)

    def configure(self, shape: tuple[int, ...], on_change) -> None:
        self._on_change = lambda: None
        for spin in self._spins:
            spin.deleteLater()
        self._spins = []
        lead = shape[:-2] if len(shape) >= 3 else ()
        self._can_mosaic = len(shape) == 4
        self.setVisible(bool(lead))
        self.mosaic.setVisible(self._can_mosaic)
        for i, n in enumerate(lead):
            spin = QSpinBox(self)
            spin.setRange(0, n - 1)
            spin.setPrefix(f"dim {i}: ")
            spin.setToolTip(f"Index along dimension {i} (size {n})")
            spin.valueChanged.connect(self._changed)
            self._layout.insertWidget(2 + i, spin)
            self._spins.append(spin)
        self._sync_enabled()
        self._on_change = on_change

    def slice_index(self) -> tuple[int, ...] | None:
        """None: the default layout (mosaic for 4-D); else the leading indices."""
        if not self._spins or (self._can_mosaic and self.mosaic.isChecked()):
            return None
        return tuple(s.value() for s in self._spins)

    def _sync_enabled(self) -> None:
        mosaic = self._can_mosaic and self.mosaic.isChecked()
        for spin in self._spins:
            spin.setEnabled(not mosaic)

    def _changed(self) -> None:
        self._sync_enabled()
        self._on_change()


class HeatmapPanel(QWidget):
    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.title = QLabel(self)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.slices = SliceControls(self)
        self.slices.setVisible(False)
        self.view = HeatmapView(self)
        self.readout = QLabel(" ", self)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setToolTip("The tensor element under the mouse, read from the full tensor")
        font = self.readout.font()
        font.setFamily("monospace")
        self.readout.setFont(font)
        self.view.readout_changed.connect(self._on_readout_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.slices)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)

        self._loader = TaskRunner(self)
        self.tensor: TensorNode | None = None
        self.loaded: LoadedTensor | None = None
        document.selection_changed.connect(self._on_selection_changed)
        document.values_changed.connect(self._reload)
        document.tree_changed.connect(lambda _tree: self._show_message("Nothing selected"))

    # -- selection --------------------------------------------------------------------------

    def _on_selection_changed(self, path: str | None) -> None:
        tree = self.document.tree
        if tree is None or path is None:
            self.tensor = None
            self._show_message("Select a parameter or module in the tree")
            return
        node = tree.node(path)
        tensor = tree.first_tensor(path) if isinstance(node, ModuleNode) else node
        if tensor is None:
            self.tensor = None
            self._show_message(f"<b>{path or 'net'}</b> has no parameters or buffers")
            return
        if tensor is not self.tensor:
            self.tensor = tensor
            self.slices.configure(tensor.shape, self._reload)
        self._reload()

    def _reload(self) -> None:
        tensor = self.tensor
        if tensor is None:
            return
        if not tensor.handle.has_values:
            self._show_message(
                f"<b>{tensor.path}</b> {shape_text(tensor.shape)} {tensor.dtype}: "
                "no values (a meta tensor has a shape and a dtype only)"
            )
            return
        slice_index = self.slices.slice_index()
        if tensor.numel <= SYNC_LIMIT:
            self._on_loaded(load_tensor(tensor.path, tensor.handle, slice_index))
        else:
            self.title.setText(f"<b>{tensor.path}</b> — reading {tensor.numel:,} values…")
            self._loader.run(
                load_tensor,
                tensor.path,
                tensor.handle,
                slice_index,
                on_result=self._on_loaded,
                on_error=self._on_load_error,
            )

    def _on_loaded(self, loaded: LoadedTensor) -> None:
        tensor = self.tensor
        if tensor is None or loaded.path != tensor.path:
            return
        self.loaded = loaded
        self.view.set_tensor(loaded.values, loaded.display)
        self.title.setText(self._title(tensor, loaded.display))

    def _on_load_error(self, error: BaseException) -> None:
        self._show_message(f"Cannot read this tensor: {error}")

    def _title(self, tensor: TensorNode, display: DisplayArray) -> str:
        selected = self.document.selected
        via = ""
        if selected is not None and selected != tensor.path:
            via = f" <span style='color:#666'>(first parameter of {selected or 'net'})</span>"
        nan_note = ""
        if display.nan_mask().any():
            nan_note = " · <span style='color:#c0c'>NaN shown magenta</span>"
        return (
            f"<b>{tensor.path}</b>{via} &nbsp; <code>{tensor.access}</code><br>"
            f"<span style='color:#444'>{display.description} · {tensor.dtype}</span>{nan_note}"
        )

    def _show_message(self, html: str) -> None:
        self._loader.cancel()
        self.loaded = None
        self.view.clear_tensor()
        self.slices.setVisible(False)
        self.title.setText(html)
        self.readout.setText(" ")

    def _on_readout_changed(self, text: str) -> None:
        self.readout.setText(text or " ")

    def shutdown(self) -> None:
        self._loader.cancel()
