"""Small icons drawn with QPainter, so each tie group can have its own colour.

Three kinds of sharing must read differently at a glance:
- a chain link (in the tie group's colour): a tensor reached from several paths;
- two overlapping squares, solid: one module object placed at several paths (its tensors
  are tied as a consequence, and carry the chain too);
- two overlapping squares, dashed and grey: a parameter-free module reused (nothing tied).
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

from ..resources import resource_path

# tie group colours (Okabe-Ito, readable by colour-blind viewers and on a projector)
TIE_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#F0E442"]
ALIAS_COLOR = "#8E44AD"
EMPTY_ALIAS_COLOR = "#7F8C8D"
SIZE = 32  # drawn at 32 px, scaled down by the view


def tie_color(group_id: int) -> QColor:
    return QColor(TIE_COLORS[group_id % len(TIE_COLORS)])


def _canvas() -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(SIZE, SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


@cache
def tie_icon(group_id: int) -> QIcon:
    """A chain of two links in the group's colour."""
    pixmap, p = _canvas()
    pen = QPen(tie_color(group_id), 4)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRoundedRect(QRectF(3, 10, 16, 12), 6, 6)
    p.drawRoundedRect(QRectF(13, 10, 16, 12), 6, 6)
    p.end()
    return QIcon(pixmap)


@cache
def alias_icon(has_parameters: bool) -> QIcon:
    """Two overlapping squares: solid purple if the module has parameters, dashed grey if
    it has none."""
    pixmap, p = _canvas()
    color = QColor(ALIAS_COLOR if has_parameters else EMPTY_ALIAS_COLOR)
    pen = QPen(color, 3.5)
    if not has_parameters:
        pen.setStyle(Qt.PenStyle.DashLine)
    p.setPen(pen)
    fill = QColor(color)
    fill.setAlpha(70 if has_parameters else 0)
    p.setBrush(fill)
    p.drawRect(QRectF(4, 4, 16, 16))
    p.drawRect(QRectF(12, 12, 16, 16))
    p.end()
    return QIcon(pixmap)


@cache
def kind_icon(kind: str) -> QIcon:
    """module: a box with a lid; parameter: a filled grid; buffer: an outlined grid; tensor
    (a checkpoint entry of unknown kind): a grey grid, half filled."""
    pixmap, p = _canvas()
    if kind == "module":
        p.setPen(QPen(QColor("#5D6D7E"), 3))
        p.setBrush(QColor("#D6DBDF"))
        p.drawRoundedRect(QRectF(4, 8, 24, 18), 3, 3)
        p.drawLine(4, 13, 28, 13)
    else:
        colors = {"parameter": "#2E86C1", "buffer": "#A04000"}
        color = QColor(colors.get(kind, "#7F8C8D"))
        p.setPen(QPen(color, 2.5))
        for i in range(2):
            for j in range(2):
                rect = QRectF(5 + 12 * j, 5 + 12 * i, 10, 10)
                filled = kind == "parameter" or (kind == "tensor" and i == j)
                p.setBrush(color if filled else Qt.BrushStyle.NoBrush)
                p.drawRect(rect)
    p.end()
    return QIcon(pixmap)


@cache
def app_icon() -> QIcon:
    return QIcon(str(resource_path("icons", "netexplorer.svg")))
