"""File ▸ Export for slides…: what to draw (the heatmap, the graph, the loss curve, the whole
window), at what size and scale, to a PNG or SVG file (ui/export.py draws it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from ..core.errors import NetExplorerError
from ..core.text import shape_text
from .appearance import appearance
from .export import export_scaled, export_widget, heatmap_copy, loss_curve_copy

if TYPE_CHECKING:
    from .main_window import MainWindow

WHAT = {
    "heatmap": "The selected tensor's heatmap",
    "graph": "The whole graph, with its legend",
    "loss": "The loss curve",
    "window": "The whole window, as it is on screen",
}
SIZED = ("heatmap", "loss")  # drawn at a chosen size; the graph and window at their own


def export_for_slides(
    window: MainWindow,
    what: str,
    path: str,
    size: tuple[int, int] = (1600, 1200),
    scale: float = 2.0,
) -> None:
    """Draw `what` into `path` (PNG or SVG by its name); NetExplorerError says why not."""
    if what == "window":
        export_widget(window, path, scale, window.windowTitle())
        return
    window.build_panels()
    if what == "graph":
        from .graph.export import export_graph

        scene = window.graph_panel.graph_scene
        if scene is None:
            raise NetExplorerError("the graph is not drawn yet: show the Graph tab (Ctrl+2) first")
        export_graph(scene, path, scale)
    elif what == "heatmap":
        data = window.heatmap_panel.data
        tensor = window.document.shown_tensor()
        if data is None or tensor is None:
            raise NetExplorerError("select a tensor first: there is no heatmap to export")
        title = f"{tensor.path}   {shape_text(tensor.shape, 'pretty')} {tensor.dtype}"
        export_scaled(heatmap_copy(data.values, title, size, scale), path, size, scale, title)
    elif what == "loss":
        controls = window.controls
        if not controls._steps:
            raise NetExplorerError("no loss yet: press Backward or Train first")
        look = appearance().look
        plot = loss_curve_copy(controls._steps, controls._losses, look, size, scale)
        export_scaled(plot, path, size, scale, "loss")
    else:
        raise NetExplorerError(f"nothing called {what!r} to export; choose {', '.join(WHAT)}")


class ExportDialog(QDialog):
    """What, how large, at which scale; then a file name."""

    def __init__(self, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle("Export for slides")
        self.what = QComboBox(self)
        for key, label in WHAT.items():
            self.what.addItem(label, key)
        self.width_box = QSpinBox(self)
        self.height_box = QSpinBox(self)
        for box, value in ((self.width_box, 1600), (self.height_box, 1200)):
            box.setRange(100, 8000)
            box.setSuffix(" px")
            box.setValue(value)
        self.scale = QComboBox(self)
        presenting = window.settings.presentation_scale
        for label, value in (
            ("1x", 1.0),
            ("1.5x", 1.5),
            ("2x (default)", 2.0),
            (f"presentation ({presenting:g}x)", presenting),
            ("3x", 3.0),
        ):
            self.scale.addItem(label, value)
        self.scale.setCurrentIndex(2)
        self.scale.setToolTip("How large lines and text are drawn: 2x reads well on slides")
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Export", self.what)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("Scale", self.scale)
        form.addRow(self.note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.what.currentIndexChanged.connect(self._sync)
        self._sync()

    def _sync(self) -> None:
        sized = self.what.currentData() in SIZED
        self.width_box.setEnabled(sized)
        self.height_box.setEnabled(sized)
        self.note.setText(
            "PNG or SVG, by the file name."
            + (
                ""
                if sized
                else " Drawn at its own size (the graph whole); the scale sets how crisp."
            )
        )

    def save(self) -> None:
        what = self.what.currentData()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export for slides", f"{what}.png", "PNG image (*.png);;SVG drawing (*.svg)"
        )
        if not path:
            return
        try:
            export_for_slides(
                self.window,
                what,
                path,
                (self.width_box.value(), self.height_box.value()),
                float(self.scale.currentData()),
            )
        except NetExplorerError as exc:
            QMessageBox.warning(self, "Cannot export", str(exc))
            return
        self.window.statusBar().showMessage(f"Saved {path}", 5000)
        self.accept()
