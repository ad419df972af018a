"""Export of the whole graph (not only what is in view) and its legend to PNG or SVG."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator

from .items import legend_size, paint_legend
from .scene import GraphScene

EXPORT_MARGIN = 24.0


def export_graph(scene: GraphScene, path: str | Path, scale: float = 2.0) -> None:
    """Write the whole graph (not only what is in view) and its legend to PNG (`scale` times
    the scene's size in pixels, within 12,000 across) or SVG."""
    from ..export import check_format, write_atomically

    path = Path(path)
    suffix = check_format(path)
    source = scene.bounds.adjusted(-EXPORT_MARGIN, -EXPORT_MARGIN, EXPORT_MARGIN, EXPORT_MARGIN)
    legend = scene.legend()
    size = legend_size(legend)
    width = max(source.width(), size.width() + 2 * EXPORT_MARGIN)
    height = source.height() + (size.height() + EXPORT_MARGIN if size.height() else 0.0)

    def draw(painter: QPainter) -> None:
        painter.fillRect(QRectF(0, 0, width, height), scene.backgroundBrush())
        scene.render(painter, QRectF(0, 0, source.width(), source.height()), source)
        paint_legend(painter, QPointF(EXPORT_MARGIN, source.height()), legend)

    def write(target: str) -> bool:
        if suffix == ".svg":
            generator = QSvgGenerator()
            generator.setFileName(target)
            generator.setSize(QSize(math.ceil(width), math.ceil(height)))
            generator.setViewBox(QRectF(0, 0, width, height))
            generator.setTitle("netexplorer graph")
            painter = QPainter(generator)
            try:
                draw(painter)
            finally:
                painter.end()
            return True
        k = max(0.1, min(scale, 12000 / max(width, height)))  # crisp, within image limits
        image = QImage(math.ceil(width * k), math.ceil(height * k), QImage.Format.Format_RGB32)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        try:
            painter.scale(k, k)
            draw(painter)
        finally:
            painter.end()
        return image.save(target, "PNG")

    write_atomically(path, write)
