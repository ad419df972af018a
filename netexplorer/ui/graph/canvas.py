"""The canvas the graph is drawn on (`GraphCanvas`, a QGraphicsView): pan, zoom, fit,
clicks and tooltips handed to the panel, and the overlays that do not zoom with the graph
(the legend, the centred message, the overview in overview.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QGraphicsView, QLabel, QToolTip, QWidget

from ..appearance import Look, follow
from .items import (
    BoxItem,
    EdgeItem,
    LegendContent,
    LinkLabelItem,
    NodeItem,
    TieLinkItem,
    legend_size,
    paint_legend,
)
from .overview import Overview, visible_scene_rect
from .scene import GraphScene

READABLE_SCALE = 0.75  # the first view of a big graph: no smaller than this, from its start
MAX_FIT_SCALE = 1.4


class Legend(QWidget):
    """The legend, in a corner of the view (it does not zoom with the graph)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.content = LegendContent(data_flow=False)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def set_content(self, content: LegendContent) -> None:
        self.content = content
        size = legend_size(content)
        self.setFixedSize(QSize(math.ceil(size.width()) + 2, math.ceil(size.height()) + 2))
        self.setVisible(size.height() > 0)
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        paint_legend(painter, QPointF(0.5, 0.5), self.content)
        painter.end()


class GraphCanvas(QGraphicsView):
    """Pan by dragging, zoom with the wheel or + and -, F fits; clicks go to the panel."""

    item_clicked = Signal(object, QPointF)  # item, scene position
    item_double_clicked = Signal(object, QPointF)
    painted = Signal()  # the view was drawn on screen
    fit_requested = Signal()  # F
    zoom_to_selection_requested = Signal()  # Z
    find_requested = Signal()  # /

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.tooltip_for: Callable[[Any], str] = lambda item: ""
        self._press: QPointF | None = None
        self._dragging = False
        self.legend = Legend(self)
        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.overview = Overview(self)
        self.horizontalScrollBar().valueChanged.connect(self.overview.sync)
        self.verticalScrollBar().valueChanged.connect(self.overview.sync)
        self.look_scale = 1.0  # the text scale: the graph is drawn that much larger
        follow(self.apply_look)

    def apply_look(self, look: Look) -> None:
        """The graph zooms with the text scale (its labels are part of the drawing), and the
        canvas takes the theme's background."""
        self.message.setStyleSheet(
            f"color: {look.colors.muted}; font-size: {look.pt(16):.1f}pt; background: transparent;"
        )
        ratio = look.scale / self.look_scale
        self.look_scale = look.scale
        if ratio != 1.0 and self.scene() is not None:
            self.scale(ratio, ratio)
            self.overview.sync()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        area = self.viewport().geometry()
        self.legend.move(area.left() + 10, area.bottom() - self.legend.height() - 10)
        self.message.setGeometry(area.adjusted(40, 40, -40, -40))
        self.overview.sync()

    def set_legend(self, content: LegendContent) -> None:
        self.legend.set_content(content)
        self._place_overlays()

    def visible_scene_rect(self) -> QRectF:
        return visible_scene_rect(self)

    # -- zoom -------------------------------------------------------------------------------

    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def zoom(self, factor: float) -> None:
        most = 4.0 * self.look_scale
        factor = max(0.03, min(most, self.scale_factor * factor)) / self.scale_factor
        self.scale(factor, factor)
        self.overview.sync()

    def fit(self, *, readable: bool = False) -> None:
        """The whole graph in view; with `readable`, no smaller than READABLE_SCALE (a long
        graph then shows its start, and the rest is a drag away)."""
        scene = self.scene()
        if scene is None:
            return
        rect = scene.bounds if isinstance(scene, GraphScene) else scene.itemsBoundingRect()
        area = self.viewport().rect().adjusted(6, 6, -6, -6)  # not flush with the edges
        if rect.isEmpty() or area.isEmpty():
            return
        # the legend and the overview take the bottom of the view: the graph goes above them
        reserved = self.legend.height() + 20 if self.legend.isVisibleTo(self) else 0
        height = max(area.height() - reserved, area.height() / 2)
        scale = min(area.width() / rect.width(), height / rect.height())
        scale = min(scale, MAX_FIT_SCALE * self.look_scale)
        if readable and scale < READABLE_SCALE * self.look_scale:
            scale = READABLE_SCALE * self.look_scale
            reserved = max(reserved, Overview.MAX_H + 30)
        self.resetTransform()
        self.scale(scale, scale)
        visible_w = area.width() / scale
        x = rect.center().x() if visible_w >= rect.width() else rect.left() + visible_w / 2
        y = rect.center().y() + reserved / 2 / scale
        if rect.height() * scale > area.height() - reserved:  # too tall: from its top
            y = rect.top() + area.height() / 2 / scale
        self.centerOn(QPointF(x, y))
        self.overview.sync()

    def _graph_area(self) -> QRectF:
        """The viewport less a margin and the legend's strip at the bottom."""
        area = QRectF(self.viewport().rect().adjusted(6, 6, -6, -6))
        reserved = self.legend.height() + 20 if self.legend.isVisibleTo(self) else 0
        area.setHeight(max(area.height() - reserved, area.height() / 2))
        return area

    def fits_readably(self, rect: QRectF) -> bool:
        """Whether `rect` fits the view at a zoom where labels stay readable."""
        area = self._graph_area()
        if rect.isEmpty() or area.isEmpty():
            return True
        scale = min(area.width() / rect.width(), area.height() / rect.height())
        return scale >= READABLE_SCALE * self.look_scale

    def show_rect(self, rect: QRectF, *, zoom: float | None = None) -> None:
        """Zoom so that `rect` fills the view (never below a readable zoom, nor above the
        text's own size; or at `zoom`, relative to the text scale) and centre it; a rect
        too big to fit shows its top-left part."""
        area = self._graph_area()
        if rect.isEmpty() or area.isEmpty():
            return
        margin = 24.0
        rect = rect.adjusted(-margin, -margin, margin, margin)
        scale = min(area.width() / rect.width(), area.height() / rect.height())
        scale = max(READABLE_SCALE, min(scale, 1.0)) if zoom is None else zoom
        scale *= self.look_scale
        self.resetTransform()
        self.scale(scale, scale)
        half_w, half_h = area.width() / 2 / scale, area.height() / 2 / scale
        x = rect.center().x() if rect.width() <= 2 * half_w else rect.left() + half_w
        y = rect.center().y() if rect.height() <= 2 * half_h else rect.top() + half_h
        # the view's centre is the viewport's; the graph area is its top part
        y += (self.viewport().height() / 2 - area.center().y()) / scale
        self.centerOn(QPointF(x, y))
        self.overview.sync()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom(1.15**steps)
        event.accept()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom(1 / 1.25)
        elif key == Qt.Key.Key_F:
            self.fit_requested.emit()
        elif key == Qt.Key.Key_Z:
            self.zoom_to_selection_requested.emit()
        elif key == Qt.Key.Key_Slash:
            self.find_requested.emit()
        else:
            super().keyPressEvent(event)

    # -- pan and click ----------------------------------------------------------------------

    def _item_at(self, pos) -> Any:
        for item in self.items(pos):
            if isinstance(item, (NodeItem, BoxItem, TieLinkItem, LinkLabelItem)):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            self._dragging = False
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._press is not None:
            delta = event.position() - self._press
            if not self._dragging and delta.manhattanLength() >= QApplication.startDragDistance():
                self._dragging = True
                self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            if self._dragging:
                h, v = self.horizontalScrollBar(), self.verticalScrollBar()
                h.setValue(h.value() - round(delta.x()))
                v.setValue(v.value() - round(delta.y()))
                self._press = event.position()
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            clicked = not self._dragging
            self._press = None
            self._dragging = False
            self.viewport().unsetCursor()
            if clicked:
                pos = event.position().toPoint()
                self.item_clicked.emit(self._item_at(pos), self.mapToScene(pos))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        pos = event.position().toPoint()
        self.item_double_clicked.emit(self._item_at(pos), self.mapToScene(pos))
        event.accept()

    def viewportEvent(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:  # asked for only when shown: always current
            pos = event.pos()
            kinds = (NodeItem, BoxItem, TieLinkItem, LinkLabelItem, EdgeItem)
            item = next((i for i in self.items(pos) if isinstance(i, kinds)), None)
            text = self.tooltip_for(item) if item is not None else ""
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
            return True
        if event.type() == QEvent.Type.Paint:
            handled = super().viewportEvent(event)
            self.painted.emit()
            return handled
        return super().viewportEvent(event)
