"""Heatmaps as PNG or SVG files, for slides: from the window or `--export-heatmap FILE`."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph.exporters  # noqa: F401  (pg.exporters)
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator

from ..core.display import display_array
from ..core.errors import NetExplorerError
from ..core.launch import LaunchRequest
from ..core.text import shape_text
from ..core.tree import ModuleNode, ModuleTree
from .heatmap import HeatmapView
from .plotting import pg

EXPORT_SIZE = (900, 720)
FORMATS = {".png": "PNG image", ".svg": "SVG drawing"}


def export_view(view: HeatmapView, path: str | Path) -> None:
    """Write what a heatmap view shows (image, axes, colour bar) to PNG or SVG."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NetExplorerError(f"cannot export to {Path(path).name}: use a .png or .svg file name")
    try:
        if suffix == ".svg":
            _write_svg(view, Path(path))
        else:
            exporter = pg.exporters.ImageExporter(view.scene())
            exporter.parameters()["width"] = max(view.width(), 1) * 2  # crisp on a projector
            exporter.export(str(path))
    except OSError as exc:
        raise NetExplorerError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise NetExplorerError(f"cannot write {path}: check the folder exists and is writable")


def _write_svg(view: HeatmapView, path: Path) -> None:
    """Axes, labels and colour bar as vectors, the heatmap as an embedded image.

    pyqtgraph's SVGExporter cannot parse the path syntax Qt >= 6.10 writes, so render the
    view with Qt's own SVG generator."""
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(view.size())
    generator.setViewBox(view.rect())
    generator.setResolution(view.logicalDpiX())  # else text and lines scale apart
    generator.setTitle(view.plot.titleLabel.text or "netexplorer heatmap")
    painter = QPainter(generator)
    try:
        view.render(painter)
    finally:
        painter.end()


def heatmap_for(tree: ModuleTree, path: str) -> HeatmapView:
    """A standalone heatmap view of the tensor at `path` (a module: its first parameter)."""
    node = tree.node(path)
    tensor = tree.first_tensor(path) if isinstance(node, ModuleNode) else node
    if tensor is None:
        raise NetExplorerError(f"{path or 'the root module'} has no parameters or buffers")
    if not tensor.handle.has_values:
        raise NetExplorerError(f"{tensor.path} has no values (a meta tensor): nothing to draw")
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
