"""The overview (minimap): the whole graph in miniature in a corner of the canvas, with the
part in view framed; shown only while part of the graph is out of view."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsView, QWidget

from .items import BOUNDS_MARGIN, SELECTED_COLOR
from .scene import GraphScene

ITEMS_PER_STRIP = 400  # items drawn into the overview per turn of the event loop (a few ms)


@dataclass
class Drawing:
    """An overview picture being drawn, and the strips of it still to draw."""

    scene: GraphScene
    image: QImage
    source: QRectF
    k: float
    size: QSize  # of the picture, in device-independent pixels
    strips: list[tuple[QRectF, QRectF]]  # (where in the picture, what of the scene)


def overview_strips(
    source: QRectF, w: int, h: int, count: int, ratio: float = 1.0
) -> list[tuple[QRectF, QRectF]]:
    """`source` drawn into a `w` x `h` picture as `scene.render` draws it (from the top
    left, its aspect ratio kept), cut into `count` strips along the picture's longer side.
    Each strip is a rectangle of the picture and the part of the scene drawn there, at the
    same scale; strips meet on whole device pixels (`ratio` of them per unit), so that
    together they draw what one `scene.render` of the whole draws. (The scene's background
    reaches the picture's last row and column of pixels, which that leaves white.)"""
    scale = min(w / source.width(), h / source.height())
    across = w >= h
    length = w if across else h
    cuts = [0.0]
    for i in range(1, max(1, count)):
        cut = round(length * i / count * ratio) / ratio
        if cuts[-1] < cut < length:
            cuts.append(cut)
    cuts.append(float(length))
    strips = []
    for a, b in itertools.pairwise(cuts):
        part = QRectF(a, 0, b - a, h) if across else QRectF(0, a, w, b - a)
        seen = QRectF(
            source.left() + part.left() / scale,
            source.top() + part.top() / scale,
            part.width() / scale,
            part.height() / scale,
        )
        strips.append((part, seen))
    return strips


class Overview(QWidget):
    """The whole graph in miniature with the part in view framed, in a corner of a graph
    too big to show at once; click or drag in it to go there."""

    MAX_W, MAX_H = 320, 110

    def __init__(self, canvas: QGraphicsView) -> None:
        super().__init__(canvas)
        self.canvas = canvas  # any graphics view: the overview knows nothing more of it
        self.picture: QImage | None = None
        self.source = QRectF()
        self.k = 1.0
        self._drawing: Drawing | None = None
        self._next_strip = QTimer(self, singleShot=True, interval=0)
        self._next_strip.timeout.connect(self._draw_next)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("The whole graph: click or drag here to move the view")
        self.hide()

    def refresh(self) -> None:
        """Draw the scene again in miniature (a new scene, a new selection): a strip per
        turn of the event loop, since drawing thousands of items at once would stall the
        GUI thread; the last picture stays up until the new one is complete."""
        self.cancel()
        scene = self.canvas.scene()
        if not isinstance(scene, GraphScene) or scene.bounds.isEmpty():
            self.picture = None
            self.sync()
            return
        source = scene.bounds
        k = min(self.MAX_W / source.width(), self.MAX_H / source.height())
        w, h = math.ceil(source.width() * k), math.ceil(source.height() * k)
        ratio = self.devicePixelRatioF()
        image = QImage(round(w * ratio), round(h * ratio), QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(QColor("#ffffff"))
        count = math.ceil(scene.item_count() / ITEMS_PER_STRIP)
        strips = overview_strips(source, w, h, count, ratio)
        self._drawing = Drawing(scene, image, source, k, QSize(w, h), strips)
        self._draw_next()

    def _draw_next(self) -> None:
        drawing = self._drawing
        if drawing is None:
            return
        if self.canvas.scene() is not drawing.scene:  # replaced: a refresh follows
            self._drawing = None
            return
        target, source = drawing.strips.pop(0)
        painter = QPainter(drawing.image)
        scene = drawing.scene
        scene.render(painter, target, source, Qt.AspectRatioMode.IgnoreAspectRatio)
        painter.end()
        if drawing.strips:
            self._next_strip.start()
            return
        self._drawing = None
        self.picture, self.source, self.k = drawing.image, drawing.source, drawing.k
        self.setFixedSize(drawing.size.width() + 4, drawing.size.height() + 4)
        self.sync()

    def cancel(self) -> None:
        """Stop drawing a new picture (the last one stays up)."""
        self._drawing = None
        self._next_strip.stop()

    @property
    def drawing(self) -> bool:
        """A new picture is being drawn (a strip per turn of the event loop)."""
        return self._drawing is not None

    def sync(self) -> None:
        """Shown only while part of the graph is out of view; the frame follows the view."""
        shown = self.picture is not None and not visible_scene_rect(self.canvas).contains(
            self.source.adjusted(BOUNDS_MARGIN, BOUNDS_MARGIN, -BOUNDS_MARGIN, -BOUNDS_MARGIN)
        )
        if shown:
            area = self.canvas.viewport().geometry()
            self.move(area.right() - self.width() - 10, area.bottom() - self.height() - 10)
            self.update()
        self.setVisible(shown)

    def paintEvent(self, event) -> None:
        if self.picture is None:
            return
        painter = QPainter(self)
        painter.setPen(QPen(QColor("#90a4ae"), 1))
        painter.drawRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1))
        painter.drawImage(QPointF(2, 2), self.picture)
        seen = visible_scene_rect(self.canvas).intersected(self.source)
        frame = QRectF(
            2 + (seen.x() - self.source.x()) * self.k,
            2 + (seen.y() - self.source.y()) * self.k,
            seen.width() * self.k,
            seen.height() * self.k,
        )
        painter.setPen(QPen(SELECTED_COLOR, 2))
        painter.setBrush(QColor(21, 101, 192, 40))
        painter.drawRect(frame)
        painter.end()

    def _go(self, pos: QPointF) -> None:
        self.canvas.centerOn(
            QPointF(
                self.source.x() + (pos.x() - 2) / self.k, self.source.y() + (pos.y() - 2) / self.k
            )
        )

    def mousePressEvent(self, event) -> None:
        self._go(event.position())

    def mouseMoveEvent(self, event) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())


def visible_scene_rect(view: QGraphicsView) -> QRectF:
    """The part of its scene a view shows."""
    return view.mapToScene(view.viewport().rect()).boundingRect()
