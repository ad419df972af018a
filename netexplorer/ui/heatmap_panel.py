"""The centre of the window: the shown tensor as heatmaps.

- the value, and beside it (for a live model) its `.grad`, each with its own symmetric scale;
  "No gradient yet" until a backward pass, as the notebook's `net[2].weight.grad` is None;
- for a parameter with several uses in the last passes, one heatmap per use
  (`via net[2]`, `via net[4]`) and their sum, on one shared scale, with the check
  max |sum of contributions - grad|;
- for a selected module of a live model, its captured output of the last forward pass;
- slice controls for tensors of 3+ dimensions, and the hover readout of whichever heatmap
  the mouse is over (read from the full tensor).

It renders the Document's TensorData; it never reads tensors itself.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from ..core.display import DisplayArray, display_array
from ..core.run import AbsentHandle
from ..core.text import shape_text
from ..core.tree import ModuleNode, TensorNode
from .appearance import MUTED, Look, follow
from .cell_editor import CellEditor
from .document import Document, TensorData
from .heatmap import HeatmapView
from .optimizer_state import OptimizerStatePanel
from .titled_heatmap import TitledHeatmap
from .uses_view import UsesView

MAX_ACTIVATIONS = 4


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
        self._layout.addWidget(self.mosaic)
        self._layout.addWidget(QLabel("Slice:", self))
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
        self.mosaic.setChecked(True)
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
        self.title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.slices = SliceControls(self)
        self.slices.setVisible(False)

        self.value = TitledHeatmap(self)
        self.grad = TitledHeatmap(self)
        self.grad.setVisible(False)
        self.value.view.readout_changed.connect(lambda t: self._on_readout("", t))
        self.value.view.cell_double_clicked.connect(self.edit_cell)
        self.editor: CellEditor | None = None
        self.grad.view.readout_changed.connect(lambda t: self._on_readout("grad", t))
        top = QHBoxLayout()
        top.addWidget(self.value, 1)
        top.addWidget(self.grad, 1)
        top.addWidget(OptimizerStatePanel(document, self), 1)  # hidden without optimizer state

        self.uses_label = QLabel(self)
        self.uses_label.setTextFormat(Qt.TextFormat.RichText)
        self.uses_label.setWordWrap(True)
        self.uses_label.setVisible(False)
        self.uses_box = UsesView(self, on_readout=lambda i, t: self._on_readout(f"use {i}", t))

        self.readout = QLabel(" ", self)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setToolTip("The tensor element under the mouse, read from the full tensor")
        font = self.readout.font()
        font.setFamily("monospace")
        self.readout.setFont(font)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.slices)
        layout.addLayout(top, 3)
        layout.addWidget(self.uses_label)
        layout.addWidget(self.uses_box, 2)
        layout.addWidget(self.readout)
        self.uses_box.setVisible(False)

        self.tensor: TensorNode | None = None
        self.data: TensorData | None = None
        document.selection_changed.connect(self._on_selection_changed)
        document.tensor_data_changed.connect(self._on_tensor_data_changed)
        document.tensor_loading.connect(self._on_tensor_loading)
        document.tensor_load_failed.connect(self._show_message)
        document.tree_changed.connect(lambda _tree: self._show_message("Nothing selected"))
        document.timeline.step_changed.connect(self._on_step_changed)
        follow(self.apply_look)
        # the window makes its panels after the tree may be open and a tensor selected
        self._on_selection_changed(document.selected)
        self._on_tensor_data_changed(document.tensor_data)

    def apply_look(self, look: Look) -> None:
        # two lines, always (at this text size): a title that changes height re-lays out
        # every heatmap below it
        metrics = QFontMetrics(QApplication.font())
        self.title.setFixedHeight(2 * metrics.lineSpacing() + 6)
        self.uses_box.set_scale(look.scale)
        self.readout.setVisible(not look.presenting)  # hovering is not how a class looks

    # -- compatibility with the single-view API ---------------------------------------------

    @property
    def view(self) -> HeatmapView:
        """The value heatmap."""
        return self.value.view

    @property
    def loaded(self) -> TensorData | None:
        return self.data

    @property
    def uses(self) -> list[TitledHeatmap]:
        """The per-use panels (shown or hidden; `uses_box.shown` for those on screen)."""
        return self.uses_box.panels

    # -- document -> panel ------------------------------------------------------------------

    def _on_selection_changed(self, path: str | None) -> None:
        tree = self.document.tree
        tensor = self.document.shown_tensor()
        if tree is None or path is None:
            self.tensor = None
            self._show_message("Select a parameter or module in the tree")
            return
        if tensor is None:
            self.tensor = None
            self._show_message(f"<b>{html.escape(path or 'net')}</b> has no parameters or buffers")
            return
        if tensor is not self.tensor:
            self.tensor = tensor
            self.slices.configure(tensor.shape, self._on_slice_changed)
        if not tensor.handle.has_values:
            self._show_message(self._no_values_text(tensor))

    def _no_values_text(self, tensor: TensorNode) -> str:
        reason = tensor.handle.no_values_reason or "a meta tensor"
        why = f": no values ({html.escape(reason)})"
        if isinstance(tensor.handle, AbsentHandle):  # a run's checkpoint without this key
            why = " " + html.escape(tensor.handle.reason.removeprefix(f"{tensor.path} "))
        return (
            f"<b>{html.escape(tensor.path)}</b> {shape_text(tensor.shape, 'pretty')} "
            f"{tensor.dtype}{why}"
        )

    def _on_step_changed(self, _step: int) -> None:
        """A training run's slider moved to a checkpoint without the shown tensor."""
        tensor = self.tensor
        if tensor is not None and not tensor.handle.has_values:
            self.data = None
            self.value.show_message("", "")
            self.title.setText(self._no_values_text(tensor))

    def _on_tensor_loading(self, path: str) -> None:
        tensor = self.tensor
        if tensor is not None and tensor.path == path:
            self.title.setText(f"<b>{html.escape(path)}</b> — reading {tensor.numel:,} values…")

    def _on_slice_changed(self) -> None:
        self.document.set_slice_index(self.slices.slice_index())

    def _on_tensor_data_changed(self, data: TensorData | None) -> None:
        tensor = self.tensor
        if data is None or tensor is None or data.path != tensor.path:
            return
        if self.data is None or self.data.path != data.path:  # another tensor: fresh axes
            for view in (self.value, self.grad, *self.uses_box.panels):
                view.view.clear_tensor()
        self.data = data
        self.value.show_values("<b>value</b>", data.values, data.display)
        self.title.setText(self._title(tensor, data))
        self.grad.setVisible(data.live and data.kind == "parameter")
        if data.live and data.kind == "parameter":
            self._show_grad(tensor, data)
        self._show_uses(data)

    def _show_grad(self, tensor: TensorNode, data: TensorData) -> None:
        if data.grad is None or data.grad_display is None:
            holdings = self.document.session.state.holdings
            why = "set so by Zero grad" if holdings.zeroed else "Press Backward (F6) to compute one"
            self.grad.show_message(
                "<b>grad</b>", f"No gradient yet\n{tensor.access}.grad is None\n\n{why}"
            )
            return
        self.grad.show_values("<b>grad</b> (own scale)", data.grad, data.grad_display)

    def _show_uses(self, data: TensorData) -> None:
        """Per-use contributions and their sum, or a module's captured activations."""
        panels: list[tuple[str, np.ndarray, DisplayArray]] = []
        note = ""
        shared = None
        tree = self.document.tree
        if data.contributions and data.uses is not None and tree is not None:
            uses = data.uses
            for c, display in zip(data.contributions, uses.displays, strict=False):
                caption = self._use_caption(c.site, c.call, data.contributions)
                panels.append((caption, c.values, display))
            panels.append(("<b>sum of uses</b> = grad", uses.total, uses.displays[-1]))
            shared = uses.levels
            error = data.contribution_error
            note = (
                f"<b>{len(data.contributions)} uses</b> of this tensor in the last passes: "
                "its gradient is the sum of one contribution per use. "
                f"Check: max |sum − grad| = {error:.3g}"
            )
            if error == 0:
                note += " (exactly)"
            elif error is not None and error < 1e-4:
                note += " (float rounding)"
        elif (activations := self._selected_module_activations()) and tree is not None:
            access = tree.modules[self.document.selected].access
            for call, values in activations[:MAX_ACTIVATIONS]:
                # activations of 3+ dimensions (batch, time, features) show as rows of features
                rows = values if values.ndim <= 2 else values.reshape(-1, values.shape[-1])
                caption = f"<b>output of {html.escape(access)}</b>, call {call}"
                panels.append((caption, rows, display_array(rows)))
            note = "Output of the selected module in the last forward pass" + (
                f" (first {MAX_ACTIVATIONS} of {len(activations)} calls)"
                if len(activations) > MAX_ACTIVATIONS
                else ""
            )
        self.uses_label.setVisible(bool(panels))
        self.uses_box.setVisible(bool(panels))
        self.uses_label.setText(note)
        if panels:
            self.uses_box.show_panels(panels, shared)

    def _selected_module_activations(self) -> list[tuple[int, np.ndarray]]:
        node = self.document.selected_node()
        return self.document.activations(node.path) if isinstance(node, ModuleNode) else []

    def _use_caption(self, site: str, call: int, uses) -> str:
        tree = self.document.tree
        access = tree.modules[site].access if tree is not None and site in tree.modules else site
        calls_here = sum(1 for u in uses if u.site == site)
        suffix = f", call {call}" if calls_here > 1 else ""
        return f"via <b>{html.escape(access)}</b>{suffix}"

    def _title(self, tensor: TensorNode, data: TensorData) -> str:
        selected = self.document.selected
        via = ""
        if selected is not None and selected != tensor.path:
            node = self.document.tree.node(selected) if self.document.tree else None
            if isinstance(node, ModuleNode):
                via = (
                    f" <span style='color:{MUTED}'>(first parameter of "
                    f"{html.escape(selected or 'net')})</span>"
                )
        nan_note = ""
        if data.display.nan_mask().any():
            nan_note = " · <span style='color:#c0c'>NaN shown magenta</span>"
        return (
            f"<b>{html.escape(tensor.path)}</b>{via} &nbsp; <code>{html.escape(tensor.access)}"
            f"</code><br><span style='color:{MUTED}'>{html.escape(data.display.description)} · "
            f"{tensor.dtype}</span>{nan_note}"
        )

    def _show_message(self, text: str) -> None:
        self.data = None
        self.value.show_message("", "")
        self.grad.setVisible(False)
        self.uses_label.setVisible(False)
        self.uses_box.setVisible(False)
        self.slices.setVisible(False)
        self.title.setText(text)
        self.readout.setText(" ")

    def edit_cell(self, index: tuple[int, ...]) -> None:
        """A field over the cell to type its new value (a live model's float tensor)."""
        data, tensor = self.data, self.tensor
        if data is None or tensor is None or not data.live or data.values.dtype.kind != "f":
            self.readout.setText("Values of a checkpoint are read-only: open it live to edit")
            return
        cell = self.value.view.cell_rect(index)
        if cell is None:
            return
        if self.editor is not None and isValid(self.editor):  # it deletes itself when left
            self.editor.close()
        self.editor = CellEditor(self.value.view, index, float(data.values[index]), cell)
        self.editor.accepted.connect(lambda i, v, p=tensor.path: self._set_value(p, i, v))

    def _set_value(self, path: str, index: tuple[int, ...], value: float) -> None:
        self.editor = None
        if not self.document.session.edit_value(path, index, value):
            self.readout.setText("Not now: a pass is running (edit when it has finished)")

    def _on_readout(self, where: str, text: str) -> None:
        self.readout.setText((f"{where}: {text}" if where else text) if text else " ")
