"""The Graph tab: every module call as a node, data flow as arrows, shared tensors as links.

Threading. The graph of a live model needs a forward pass (`core.graph.graph_for_tree`), and
the layout of thousands of calls takes a while, so both run in a worker (`TaskRunner`: the
newest request wins, stale results are dropped). The graph's forward pass must not overlap
a pass-engine action on the same module (their module hooks would see each other's calls),
so a build waits while the session is busy (`busy_changed` resumes it) and holds the
engine's lock while its forward runs, so that an action started meanwhile waits for it.
Collapsing, expanding and the depth control re-run only the layout, in the same worker.
The graph is built when the tab is first shown (and again after the tree changes), so
opening a model costs nothing until somebody looks at its graph.

Updates. After a pass, `pass_result.grad_norms` tints the nodes (a dictionary walk, cheap at
30 results a second); the per-use contributions shown on tie links are read from the engine
in a worker, at most one read in flight, the newest result read again after it.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import NetExplorerError, UnknownPathError
from ..core.graph import (
    Graph,
    GraphNode,
    GraphView,
    graph_for_tree,
    paused_gc,
)
from ..core.layout import GraphLayout, layout_view
from ..core.tree import ModuleNode, ModuleTree, TensorNode
from .document import Document
from .graph_items import (
    BOUNDS_MARGIN,
    SELECTED_COLOR,
    BoxItem,
    EdgeItem,
    LabelMetrics,
    LegendContent,
    LinkLabelItem,
    NodeItem,
    TieLinkItem,
    canonical_path,
    edge_path,
    legend_size,
    paint_legend,
)
from .graph_scene import GraphScene
from .workers import TaskRunner

READABLE_SCALE = 0.75  # the first view of a big graph: no smaller than this, from its start
MAX_FIT_SCALE = 1.4
EXPORT_MARGIN = 24.0
TEARDOWN_BATCH = 600  # items of a retired scene removed per event-loop turn (a few ms)
POPULATE_STEP_MS = 12  # GUI-thread time per batch of new graph items


# -- worker tasks (plain data in, plain data out) -------------------------------------------


@dataclass(frozen=True)
class Collapse:
    """Which containers are shut: every one at `depth` or deeper, except the paths in
    `expanded`, plus the paths in `collapsed` (the boxes a user clicked)."""

    depth: int | None
    collapsed: frozenset[str] = frozenset()
    expanded: frozenset[str] = frozenset()

    def view(self, graph: Graph) -> GraphView:
        return graph.view(self.collapsed, depth=self.depth, expanded=self.expanded)


@dataclass
class LaidOut:
    """A graph, what is visible of it, and where everything goes."""

    graph: Graph
    view: GraphView
    layout: GraphLayout
    collapse: Collapse
    node_tensors: dict[str, tuple[str, ...]]  # visible id -> parameters it stands for
    edge_paths: list[Any]  # per layout edge of two points or more: its QPainterPath
    seconds: float = 0.0
    input_spec: Any = None


def build_graph(
    tree: ModuleTree,
    input_spec: Any,
    seed: int,
    lock: Any,
    node_size: Callable[[GraphNode], tuple[float, float]],
) -> LaidOut:
    """Worker task: the graph (its forward pass under the pass engine's lock) and its
    layout at the graph's default depth."""
    start = time.perf_counter()
    with lock if lock is not None else nullcontext():
        graph = graph_for_tree(tree, seed=seed, input_spec=input_spec)
    laid = lay_out(tree, graph, Collapse(graph.default_depth()), node_size)
    laid.input_spec = input_spec
    laid.seconds = time.perf_counter() - start
    return laid


def lay_out(
    tree: ModuleTree,
    graph: Graph,
    collapse: Collapse,
    node_size: Callable[[GraphNode], tuple[float, float]],
) -> LaidOut:
    """Worker task: what `collapse` shows of `graph`, laid out."""
    start = time.perf_counter()
    view = collapse.view(graph)
    layout = layout_view(view, node_size)
    paths = [edge_path(route.points) for route in layout.edges if len(route.points) > 1]
    laid = LaidOut(graph, view, layout, collapse, node_tensors(tree, graph, view), paths)
    laid.seconds = time.perf_counter() - start
    return laid


def node_tensors(tree: ModuleTree, graph: Graph, view: GraphView) -> dict[str, tuple[str, ...]]:
    """Visible node id -> the parameters it uses (a collapsed box: everything inside),
    each tensor once, named by the first path of its tie group."""
    out: dict[str, dict[str, None]] = {}
    for t in tree.tensors.values():
        if t.kind != "parameter":
            continue
        key = canonical_path(tree, t)
        for node_id in graph.nodes_using(t.path):
            shown = view.representative.get(node_id)
            if shown is not None:
                out.setdefault(shown, {})[key] = None
    return {k: tuple(v) for k, v in out.items()}


def contribution_norms(engine: Any) -> dict[str, list[tuple[str, int, float]]]:
    """Worker task: parameter path -> (site, call, norm of the gradient through that use)."""
    out: dict[str, list[tuple[str, int, float]]] = {}
    done: dict[int, list[tuple[str, int, float]]] = {}
    for path, uses in engine.contributions.items():  # waits for a running action
        if id(uses) not in done:  # every path of a tied tensor has the same list
            done[id(uses)] = [(c.site, c.call, float(np.linalg.norm(c.values))) for c in uses]
        out[path] = done[id(uses)]
    return out


# -- the view -------------------------------------------------------------------------------


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


class Overview(QWidget):
    """The whole graph in miniature with the part in view framed, in a corner of a graph
    too big to show at once; click or drag in it to go there."""

    MAX_W, MAX_H = 320, 110

    def __init__(self, canvas: GraphCanvas) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.picture: QImage | None = None
        self.source = QRectF()
        self.k = 1.0
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("The whole graph: click or drag here to move the view")
        self.hide()

    def refresh(self) -> None:
        """Draw the scene again in miniature (a new scene, a new selection)."""
        scene = self.canvas.scene()
        if not isinstance(scene, GraphScene) or scene.bounds.isEmpty():
            self.picture = None
            self.sync()
            return
        self.source = scene.bounds
        self.k = min(self.MAX_W / self.source.width(), self.MAX_H / self.source.height())
        w, h = math.ceil(self.source.width() * self.k), math.ceil(self.source.height() * self.k)
        ratio = self.devicePixelRatioF()
        image = QImage(round(w * ratio), round(h * ratio), QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        scene.render(painter, QRectF(0, 0, w, h), self.source)
        painter.end()
        self.picture = image
        self.setFixedSize(w + 4, h + 4)
        self.sync()

    def sync(self) -> None:
        """Shown only while part of the graph is out of view; the frame follows the view."""
        shown = self.picture is not None and not self.canvas.visible_scene_rect().contains(
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
        seen = self.canvas.visible_scene_rect().intersected(self.source)
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


class GraphCanvas(QGraphicsView):
    """Pan by dragging, zoom with the wheel or + and -, F fits; clicks go to the panel."""

    item_clicked = Signal(object, QPointF)  # item, scene position
    item_double_clicked = Signal(object, QPointF)

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
        self.message.setStyleSheet("color: #455a64; font-size: 16pt; background: transparent;")
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.overview = Overview(self)
        self.horizontalScrollBar().valueChanged.connect(self.overview.sync)
        self.verticalScrollBar().valueChanged.connect(self.overview.sync)

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
        return self.mapToScene(self.viewport().rect()).boundingRect()

    # -- zoom -------------------------------------------------------------------------------

    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def zoom(self, factor: float) -> None:
        factor = max(0.03, min(4.0, self.scale_factor * factor)) / self.scale_factor
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
        scale = min(area.width() / rect.width(), height / rect.height(), MAX_FIT_SCALE)
        if readable and scale < READABLE_SCALE:
            scale = READABLE_SCALE
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
            self.fit()
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
        return super().viewportEvent(event)


# -- the panel ------------------------------------------------------------------------------


class GraphPanel(QWidget):
    """The Graph tab: toolbar, the note on missing data flow, the graph, its legend."""

    graph_shown = Signal()  # a laid-out graph is on screen

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.metrics = LabelMetrics()
        self.laid: LaidOut | None = None
        self._populating: tuple[GraphScene, Iterator[None]] | None = None
        self.graph_scene: GraphScene | None = None
        self._needs_build = False
        self._waiting = False  # for the pass session to be idle
        self._norms: dict[str, float | None] = {}
        self._contributions: dict[str, list[tuple[str, int, float]]] = {}
        self._contributions_dirty = False
        self._clicked: str | None = None  # the node clicked, among the calls of its path
        self._builder = TaskRunner(self)
        self._contribution_reader = TaskRunner(self)
        self._retired: list[GraphScene] = []  # scenes being taken apart, a batch per turn
        self._teardown = QTimer(self, interval=0)
        self._teardown.timeout.connect(self._tear_down_some)
        self._overview_timer = QTimer(self, singleShot=True)  # redraws it at most this often

        self.canvas = GraphCanvas(self)
        self.canvas.tooltip_for = self._tooltip
        self.canvas.item_clicked.connect(self._on_item_clicked)
        self.canvas.item_double_clicked.connect(self._on_item_double_clicked)
        self._overview_timer.timeout.connect(self.canvas.overview.refresh)

        def button(text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
            b = QPushButton(text, self)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        self.fit_button = button("Fit", "Fit the whole graph in view (F)", self.canvas.fit)
        self.zoom_out_button = button("−", "Zoom out (-, or the mouse wheel)", self._zoom_out)
        self.zoom_in_button = button("+", "Zoom in (+, or the mouse wheel)", self._zoom_in)
        for b in (self.zoom_in_button, self.zoom_out_button):
            b.setFixedWidth(b.fontMetrics().horizontalAdvance("+") + 28)
        self.depth = QSpinBox(self)
        self.depth.setPrefix("Depth ")
        self.depth.setToolTip(
            "How many levels of boxes are open: 1 shows the model's children, each box "
            "collapsed to one node; more opens the boxes inside them"
        )
        self.depth.valueChanged.connect(self._on_depth_changed)
        self.expand_button = button("Expand all", "Open every box", self.expand_all)
        self.collapse_button = button(
            "Collapse all", "Collapse every box to one node", self.collapse_all
        )
        self.export_button = button(
            "Export…", "Save the graph as PNG or SVG, for slides", self.export_with_dialog
        )
        self.status = QLabel(self)
        self.status.setStyleSheet("color: #455a64;")
        toolbar = QHBoxLayout()
        for w in (
            self.fit_button,
            self.zoom_out_button,
            self.zoom_in_button,
            self.depth,
            self.expand_button,
            self.collapse_button,
            self.export_button,
        ):
            toolbar.addWidget(w)
        toolbar.addWidget(self.status, 1)

        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.note.setStyleSheet(
            "background: #fff3cd; color: #5d4200; border: 1px solid #f0c36d; "
            "border-radius: 4px; padding: 6px; font-size: 12pt;"
        )
        self.note.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(toolbar)
        layout.addWidget(self.note)
        layout.addWidget(self.canvas, 1)

        document.tree_changed.connect(self._on_tree_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.pass_result.connect(self._on_pass_result)
        document.session.busy_changed.connect(self._on_session_busy_changed)
        self._on_tree_changed(document.tree)

    # -- building ---------------------------------------------------------------------------

    @property
    def building(self) -> bool:
        return self._builder.busy

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self._builder.cancel()
        self._contribution_reader.cancel()
        self._abandon_populating()
        self.laid = None
        self._set_scene(None)
        self._norms, self._contributions, self._clicked = {}, {}, None
        self.note.setVisible(False)
        self._needs_build = tree is not None
        self._sync_enabled()
        if tree is None:
            self._message("Open a model or a checkpoint to see its graph")
        elif self.isVisible():
            self._build()
        else:
            self._message("The graph is built when this tab is shown")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._needs_build or self._waiting:
            self._build()
        elif self._contributions_dirty:
            self._request_contributions()

    def _build(self) -> None:
        tree = self.document.tree
        if tree is None:
            return
        session = self.document.session
        if session.busy:  # its forward pass would meet the action's on the same module
            self._waiting = True
            waiting = "waiting for the running pass to finish…"
            if self.graph_scene is None:
                self._message(waiting[0].upper() + waiting[1:])
            else:
                self.status.setText(waiting)
            return
        self._waiting = self._needs_build = False
        engine = session.engine
        spec, lock, seed = None, None, 0
        if engine is not None:
            seed = engine.seed
            try:
                spec = engine.input_spec  # the batch the passes use, inferred if need be
            except NetExplorerError:
                spec = None  # the graph says why there is no data flow
            # an action started while the graph's forward runs waits for it
            lock = engine.exclusive()
        self._message("Building the graph…" if self.graph_scene is None else "")
        self.status.setText("building the graph…")
        self._builder.run(
            build_graph,
            tree,
            spec,
            seed,
            lock,
            self.metrics.node_size,
            on_result=self._on_built,
            on_error=self._on_build_failed,
        )
        self._sync_enabled()

    def _on_built(self, laid: LaidOut) -> None:
        graph = laid.graph
        deepest = max((n.depth for n in graph.containers), default=0) + 1
        self.depth.blockSignals(True)
        self.depth.setRange(0, max(1, deepest))
        self.depth.setValue(laid.collapse.depth or 0)
        self.depth.blockSignals(False)
        self._show(laid, fit=True)

    def _on_build_failed(self, error: BaseException) -> None:
        self._sync_enabled()
        self.status.setText("")
        self._message(f"Could not draw the graph: {type(error).__name__}: {error}")

    def _relayout(self, collapse: Collapse, *, fit: bool = False, anchor=None) -> None:
        laid, tree = self.laid, self.document.tree
        if laid is None or tree is None:
            return
        spec = laid.input_spec

        def done(new: LaidOut) -> None:
            new.input_spec = spec
            self._show(new, fit=fit, anchor=anchor)

        self.status.setText("laying out…")
        self._builder.run(
            lay_out,
            tree,
            laid.graph,
            collapse,
            self.metrics.node_size,
            on_result=done,
            on_error=self._on_build_failed,
        )

    def _on_session_busy_changed(self, busy: bool) -> None:
        if not busy and self._waiting and self.isVisible():
            self._build()

    # -- showing ----------------------------------------------------------------------------

    def _set_scene(self, scene: GraphScene | None) -> None:
        old = self.graph_scene
        self.graph_scene = scene
        self.canvas.setScene(scene)
        if old is not None:
            self._retired.append(old)
            self._teardown.start()
        self.canvas.set_legend(scene.legend() if scene is not None else LegendContent(False))

    def _tear_down_some(self) -> None:
        if self._retired and self._retired[0].dispose(TEARDOWN_BATCH):
            self._retired.pop(0).deleteLater()
        if not self._retired:
            self._teardown.stop()

    @property
    def populating(self) -> bool:
        """Items of a new layout are being made (a batch per turn of the event loop)."""
        return self._populating is not None

    def _show(self, laid: LaidOut, *, fit: bool = False, anchor=None) -> None:
        """Make the new layout's items a batch at a time (thousands of items at once would
        stall the GUI thread), then swap the new scene in."""
        tree = self.document.tree
        if tree is None:
            return
        self._abandon_populating()
        scene = GraphScene(laid, tree, self.metrics, self, populate=False)
        self._populating = (scene, scene.populate())
        self._populate_step(laid, scene, fit, anchor)

    def _abandon_populating(self) -> None:
        if self._populating is not None:  # a newer layout (or tree) supersedes it
            self._populating[0].deleteLater()
            self._populating = None

    def _populate_step(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor) -> None:
        if self._populating is None or self._populating[0] is not scene:
            return  # a newer layout took over
        steps = self._populating[1]
        clock = QElapsedTimer()
        clock.start()
        with paused_gc():  # thousands of items: no full collection over torch's heap midway
            for _ in steps:
                if clock.elapsed() >= POPULATE_STEP_MS:
                    QTimer.singleShot(0, lambda: self._populate_step(laid, scene, fit, anchor))
                    return
        self._populating = None
        self._finish_show(laid, scene, fit, anchor)

    def _finish_show(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor) -> None:
        self.laid = laid
        if any(n is not None for n in self._norms.values()):
            scene.set_grad_norms(self._norms)
        if self._contributions:
            scene.set_contributions(self._contributions)
        self._set_scene(scene)
        self._message("")
        note = laid.graph.note
        if note:
            self.note.setText(f"<b>No data flow:</b> {html.escape(note)}")
        self.note.setVisible(bool(note))
        view = laid.view
        parts = [f"{len(view.nodes)} nodes"]
        if view.boxes:
            parts.append(f"{len(view.boxes)} open box{'es' if len(view.boxes) != 1 else ''}")
        links = len(view.tie_links)
        parts.append(f"{links} tie link{'s' if links != 1 else ''}")
        self.status.setText(" · ".join(parts))
        self.status.setToolTip(f"laid out in {laid.seconds:.2f} s")
        self._apply_selection(scroll=False)
        if fit:
            self.canvas.fit(readable=True)
        elif anchor is not None:
            self._restore_anchor(*anchor)
        self._refresh_overview(0)
        self._sync_enabled()
        if any(n is not None for n in self._norms.values()):
            self._request_contributions()
        self.graph_shown.emit()

    def _restore_anchor(self, node_id: str, viewport_point) -> None:
        """Keep the box just opened or shut where it was on screen."""
        scene = self.graph_scene
        item = scene.nodes.get(node_id) or scene.boxes.get(node_id) if scene else None
        if item is None:
            return
        target = item.rect.topLeft()
        centre = QPointF(self.canvas.viewport().rect().center())
        offset = (centre - QPointF(viewport_point)) / self.canvas.scale_factor
        self.canvas.centerOn(target + offset)

    def _refresh_overview(self, delay_ms: int) -> None:
        if not self._overview_timer.isActive():
            self._overview_timer.start(delay_ms)

    def _message(self, text: str) -> None:
        self.canvas.message.setText(text)
        self.canvas.message.setVisible(bool(text))

    def _sync_enabled(self) -> None:
        ready = self.laid is not None
        for w in (
            self.depth,
            self.expand_button,
            self.collapse_button,
            self.export_button,
            self.fit_button,
        ):
            w.setEnabled(ready)

    def _zoom_in(self) -> None:
        self.canvas.zoom(1.25)

    def _zoom_out(self) -> None:
        self.canvas.zoom(1 / 1.25)

    # -- collapse and expand ----------------------------------------------------------------

    def _on_depth_changed(self, depth: int) -> None:
        self._relayout(Collapse(depth), fit=True)

    def set_depth(self, depth: int) -> None:
        """Open the boxes down to `depth`, forgetting boxes opened or shut by hand."""
        if self.depth.value() != depth:
            self.depth.setValue(depth)  # relays out
        else:
            self._relayout(Collapse(depth), fit=True)

    def expand_all(self) -> None:
        self.set_depth(self.depth.maximum())

    def collapse_all(self) -> None:
        self.set_depth(min(1, self.depth.maximum()))

    def toggle(self, node_id: str) -> None:
        """Shut an open box, or open a collapsed one (by its module path: every call)."""
        laid, scene = self.laid, self.graph_scene
        if laid is None or scene is None:
            return
        node = laid.graph.by_id[node_id]
        if node.path is None:
            return
        c = laid.collapse
        item = scene.boxes.get(node_id) or scene.nodes.get(node_id)
        if node_id in scene.boxes:
            collapse = Collapse(c.depth, c.collapsed | {node.path}, c.expanded - {node.path})
        elif item is not None and item.is_collapsed:
            collapse = Collapse(c.depth, c.collapsed - {node.path}, c.expanded | {node.path})
        else:
            return
        anchor = None
        if item is not None:
            anchor = (node_id, self.canvas.mapFromScene(item.rect.topLeft()))
        self._relayout(collapse, anchor=anchor)

    # -- selection --------------------------------------------------------------------------

    def _on_item_clicked(self, item: Any, at: QPointF) -> None:
        if isinstance(item, NodeItem):
            if item.is_collapsed and item.marker_rect().adjusted(-4, -4, 4, 4).contains(at):
                self.toggle(item.node_id)
            else:
                self.select_node(item.node_id)
        elif isinstance(item, BoxItem):
            if item.header_rect().contains(at):
                self.toggle(item.node_id)
            else:
                self.select_node(item.node_id)
        elif isinstance(item, (TieLinkItem, LinkLabelItem)) and self.graph_scene is not None:
            group = next(g for g in self.graph_scene.groups if item is g.label or item in g.items)
            self.select_node(group.nodes[0])

    def _on_item_double_clicked(self, item: Any, at: QPointF) -> None:
        if isinstance(item, BoxItem) or (isinstance(item, NodeItem) and item.is_collapsed):
            self.toggle(item.node_id)

    def select_node(self, node_id: str) -> None:
        """Select the module of a node in the document (and so in the tree and heatmap)."""
        if self.laid is None:
            return
        node = self.laid.graph.by_id[node_id]
        if node.path is None:  # the model input or output
            return
        self._clicked = node_id
        if self.document.selected == node.path:
            self._apply_selection(scroll=False)
        else:
            self.document.select(node.path)

    def _on_selection_changed(self, path: str | None) -> None:
        self._apply_selection(scroll=True)

    def highlighted(self) -> tuple[list[str], list[str]]:
        """Ids of the selected nodes and of the nodes tie-linked to them (for tests)."""
        scene = self.graph_scene
        if scene is None:
            return [], []
        items = [*scene.nodes.values(), *scene.boxes.values()]
        selected = [i.node_id for i in items if isinstance(i, NodeItem) and i.selected]
        partners = [
            i.node_id
            for i in items
            if i.highlight is not None and not (isinstance(i, NodeItem) and i.selected)
        ]
        return selected, partners

    def visible_for_path(self, path: str) -> list[str]:
        """The visible nodes (or boxes) that stand for a module or tensor path: its calls, or
        the collapsed box around them; a tensor's, those of every path tied to it."""
        laid, tree, scene = self.laid, self.document.tree, self.graph_scene
        if laid is None or tree is None or scene is None:
            return []
        graph = laid.graph
        try:
            node = tree.node(path)
        except UnknownPathError:
            return []
        ids: list[str] = []
        if isinstance(node, TensorNode):
            group = tree.tie_group(path)
            for p in group.paths if group is not None else (path,):
                ids += graph.nodes_using(p)
        else:
            module: ModuleNode | None = node
            while module is not None and not ids:  # a module never called: its caller
                ids = graph.nodes_at(module.path)
                module = module.parent
        out: list[str] = []
        for node_id in ids:
            shown = laid.view.visible_id(node_id)
            if (shown in scene.nodes or shown in scene.boxes) and shown not in out:
                out.append(shown)
        return out

    def _apply_selection(self, *, scroll: bool) -> None:
        scene = self.graph_scene
        if scene is None:
            return
        path = self.document.selected
        ids = self.visible_for_path(path) if path is not None else []
        primary = [self._clicked] if self._clicked in ids else ids
        if self._clicked not in ids:
            self._clicked = None
        scene.highlight(primary)
        self._refresh_overview(150)
        if scroll and primary:
            item = scene.nodes.get(primary[0]) or scene.boxes.get(primary[0])
            if item is not None:
                self.canvas.ensureVisible(item.rect, 60, 60)

    # -- gradients --------------------------------------------------------------------------

    def _on_pass_result(self, result: Any) -> None:
        self._norms = dict(result.grad_norms)
        scene = self.graph_scene
        if scene is not None:
            scene.set_grad_norms(self._norms)
            self._refresh_overview(500)  # training: a few times a second is plenty
            legend = scene.legend()
            if legend != self.canvas.legend.content:
                self.canvas.set_legend(legend)
        self._request_contributions()
        if result.action in ("forward", "backward", "train") and self._input_changed():
            self._needs_build = True  # new shapes, maybe another path through the model
            if self.isVisible():
                self._build()

    def _input_changed(self) -> bool:
        engine = self.document.session.engine
        if self.laid is None or engine is None:
            return False
        try:
            return engine.input_spec != self.laid.input_spec
        except NetExplorerError:
            return False

    def _request_contributions(self) -> None:
        engine = self.document.session.engine
        if engine is None or self.graph_scene is None:
            return
        if not self.isVisible() or self._contribution_reader.busy:
            self._contributions_dirty = True  # read when shown, or after the running read
            return
        self._contributions_dirty = False
        self._contribution_reader.run(
            contribution_norms,
            engine,
            on_result=self._on_contributions,
            on_error=lambda error: self.status.setText(f"per-use gradients: {error}"),
        )

    def _on_contributions(self, norms: dict[str, list[tuple[str, int, float]]]) -> None:
        self._contributions = norms
        if self.graph_scene is not None:
            self.graph_scene.set_contributions(norms)
        if self._contributions_dirty:
            self._request_contributions()

    # -- tooltips and export ----------------------------------------------------------------

    def _tooltip(self, item: Any) -> str:
        return self.graph_scene.tooltip(item) if self.graph_scene is not None else ""

    def export_with_dialog(self) -> None:
        """Ask for a file name and save the graph as PNG or SVG."""
        tree = self.document.tree
        if self.graph_scene is None or tree is None:
            QMessageBox.information(
                self,
                "Export graph",
                "The graph is not drawn yet: show the Graph tab (Ctrl+G), then export.",
            )
            return
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(tree.source).name)
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export graph",
            f"{stem or 'model'}_graph.png",
            "PNG image (*.png);;SVG drawing (*.svg)",
        )
        if not path:
            return
        try:
            export_graph(self.graph_scene, path)
        except NetExplorerError as exc:
            QMessageBox.warning(self, "Cannot export", str(exc))
            return
        self.status.setText(f"Saved {path}")


def export_graph(scene: GraphScene, path: str | Path) -> None:
    """Write the whole graph (not only what is in view) and its legend to PNG or SVG."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise NetExplorerError(f"cannot export to {path.name}: use a .png or .svg file name")
    source = scene.bounds.adjusted(-EXPORT_MARGIN, -EXPORT_MARGIN, EXPORT_MARGIN, EXPORT_MARGIN)
    legend = scene.legend()
    size = legend_size(legend)
    width = max(source.width(), size.width() + 2 * EXPORT_MARGIN)
    height = source.height() + (size.height() + EXPORT_MARGIN if size.height() else 0.0)

    def draw(painter: QPainter) -> None:
        painter.fillRect(QRectF(0, 0, width, height), scene.backgroundBrush())
        scene.render(painter, QRectF(0, 0, source.width(), source.height()), source)
        paint_legend(painter, QPointF(EXPORT_MARGIN, source.height()), legend)

    if suffix == ".svg":
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(QSize(math.ceil(width), math.ceil(height)))
        generator.setViewBox(QRectF(0, 0, width, height))
        generator.setTitle("netexplorer graph")
        painter = QPainter(generator)
        try:
            draw(painter)
        finally:
            painter.end()
    else:
        k = max(0.1, min(2.0, 12000 / max(width, height)))  # crisp, within image limits
        image = QImage(math.ceil(width * k), math.ceil(height * k), QImage.Format.Format_RGB32)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        try:
            painter.scale(k, k)
            draw(painter)
        finally:
            painter.end()
        if not image.save(str(path)):
            raise NetExplorerError(f"cannot write {path}: check the folder exists and is writable")
    if not path.is_file() or path.stat().st_size == 0:
        raise NetExplorerError(f"cannot write {path}: check the folder exists and is writable")
