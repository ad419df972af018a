"""Pictures for slides: the heatmap, the graph, the loss curve or the whole window, as PNG or
SVG (chosen by the file name), at a chosen size and scale (File ▸ Export for slides…, and
`--export-heatmap FILE`).

The scale is a device pixel ratio: a picture of 900 x 720 pixels at scale 2 is laid out as a
450 x 360 one and drawn with every line and letter twice as large, so that text stays
readable from the back of a lecture hall (the presentation scale is one choice). The heatmap
and the loss curve are drawn by copies made at the asked size, so the window does not move;
the graph is drawn whole, not only what is in view; the window as it is on screen.

Every file is written to a temporary file in the same folder and renamed into place: an
interrupted export never leaves half a picture, nor half-overwrites an older one."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint, QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QWidget

from ..core.display import display_array
from ..core.errors import NetExplorerError
from ..core.launch import LaunchRequest
from ..core.text import shape_text
from ..core.tree import ModuleNode, ModuleTree
from .heatmap import HeatmapView
from .plotting import apply_plot_look, pg

EXPORT_SIZE = (900, 720)
FORMATS = {".png": "PNG image", ".svg": "SVG drawing"}
MAX_PIXELS = 12_000  # per side: within what image viewers and slide software take


def check_format(path: str | Path) -> str:
    """The file's format (".png" or ".svg"); NetExplorerError for any other name."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NetExplorerError(f"cannot export to {Path(path).name}: use a .png or .svg file name")
    return suffix


def write_atomically(path: str | Path, write: Callable[[str], bool]) -> None:
    """`write(temporary)` then rename it to `path`; a failure leaves `path` untouched and
    raises NetExplorerError saying what to do."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NetExplorerError(f"cannot write {path}: the folder {folder} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=folder)
        os.close(fd)
    except OSError as exc:
        raise NetExplorerError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        if not write(temporary) or os.path.getsize(temporary) == 0:
            raise NetExplorerError(f"cannot write {path}: check the folder is writable")
        os.replace(temporary, path)
    except OSError as exc:
        raise NetExplorerError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def export_widget(widget: QWidget, path: str | Path, scale: float = 2.0, title: str = "") -> None:
    """What `widget` shows, at its size: a PNG `scale` times as many pixels across (crisp),
    or an SVG with axes, text and lines as vectors."""
    suffix = check_format(path)
    size = widget.size()

    def write(target: str) -> bool:
        if suffix == ".svg":
            generator = QSvgGenerator()
            generator.setFileName(target)
            generator.setSize(size)
            generator.setViewBox(QRectF(0, 0, size.width(), size.height()))
            generator.setResolution(widget.logicalDpiX())  # else text and lines scale apart
            generator.setTitle(title or "netexplorer")
            painter = QPainter(generator)
            try:
                QWidget.render(widget, painter, QPoint(0, 0))  # the widget, not a view's scene
            finally:
                painter.end()
            return True
        k = max(0.1, min(scale, MAX_PIXELS / max(size.width(), size.height(), 1)))
        image = QImage(
            math.ceil(size.width() * k), math.ceil(size.height() * k), QImage.Format.Format_RGB32
        )
        image.setDevicePixelRatio(k)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        try:
            QWidget.render(widget, painter, QPoint(0, 0))
        finally:
            painter.end()
        return image.save(target, "PNG")

    write_atomically(path, write)


def export_view(view: HeatmapView, path: str | Path, scale: float = 2.0) -> None:
    """Write what a heatmap view shows (image, axes, colour bar) to PNG or SVG."""
    export_widget(view, path, scale, view.plot.titleLabel.text or "netexplorer heatmap")


def sized_copy(widget: QWidget, size: tuple[int, int], scale: float) -> None:
    """Lay a standalone copy out at the logical size that, drawn at `scale`, is `size`."""
    widget.resize(max(1, round(size[0] / scale)), max(1, round(size[1] / scale)))
    widget.show()  # offscreen or not, the layout needs one show to settle


def heatmap_copy(values, title: str, size: tuple[int, int], scale: float) -> HeatmapView:
    """A standalone heatmap of `values` laid out for a picture of `size` at `scale`."""
    view = HeatmapView(title=title)
    sized_copy(view, size, scale)
    view.set_tensor(values, display_array(values))
    return view


def loss_curve_copy(
    steps: list[float], losses: list[float], look, size: tuple[int, int], scale: float
):
    """The loss curve as a standalone plot for a picture of `size` at `scale`."""
    plot = pg.PlotWidget()
    apply_plot_look(plot, look, {"bottom": "optimizer step", "left": "loss"})
    plot.showGrid(x=True, y=True, alpha=0.3)
    plot.plot(
        steps, losses, pen=pg.mkPen("#C0392B", width=2), symbol="o" if len(steps) < 200 else None
    )
    sized_copy(plot, size, scale)
    return plot


def export_scaled(
    widget: QWidget, path: str | Path, size: tuple[int, int], scale: float, title: str
) -> None:
    """A copy laid out by `sized_copy`, drawn into a picture of `size` pixels (PNG) or a
    drawing of that size (SVG)."""
    suffix = check_format(path)
    if suffix == ".svg":
        widget.resize(*size)  # vectors: the logical size is the drawing's size
    export_widget(widget, path, scale, title)
    widget.close()


def heatmap_for(tree: ModuleTree, path: str) -> HeatmapView:
    """A standalone heatmap view of the tensor at `path` (a module: its first parameter)."""
    node = tree.node(path)
    tensor = tree.first_tensor(path) if isinstance(node, ModuleNode) else node
    if tensor is None:
        raise NetExplorerError(f"{path or 'the root module'} has no parameters or buffers")
    if not tensor.handle.has_values:
        reason = tensor.handle.no_values_reason
        raise NetExplorerError(f"{tensor.path} has no values ({reason}): nothing to draw")
    values = tensor.handle.array()
    view = HeatmapView(title=f"{tensor.path}   {shape_text(tensor.shape, 'pretty')} {tensor.dtype}")
    view.resize(*EXPORT_SIZE)
    view.set_tensor(values, display_array(values))
    return view


def export_heatmap(request: LaunchRequest) -> int:
    """`--export-heatmap FILE`: draw the selected tensor offscreen and write it."""
    from ..core.launch import open_requested, run_backward
    from .app import make_app

    target = request.export_heatmap or ""
    suffix = Path(target).suffix.lower()
    if suffix not in FORMATS:
        raise NetExplorerError(
            f"--export-heatmap writes PNG or SVG, chosen by the file name: not {suffix or 'none'}"
        )
    make_app()
    tree = open_requested(request)
    run_backward(tree, request)
    view = heatmap_for(tree, request.select or "")
    view.show()  # offscreen or not, the layout needs one show to settle
    export_view(view, target)
    view.close()
    return 0
