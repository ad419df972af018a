"""The Graph tab: every module call as a node, data flow as arrows, shared tensors as links.

`GraphPanel` is the tab: its toolbar, the note on missing data flow, the canvas and legend.
It puts together parts of one idea each:

- builder.py builds and lays out in a worker, waiting for passes and for the canvas to paint;
- loader.py makes a layout's items a batch per turn of the event loop and retires old scenes;
- selection.py keeps the highlighted nodes in step with the document's selection;
- canvas.py (pan, zoom, fit, clicks), overview.py (the minimap), scene.py and items.py (what
  is drawn), tasks.py (the worker tasks) and export.py (PNG and SVG).

The graph is built when the tab is first shown (and again after the tree changes), so
opening a model costs nothing until somebody looks at its graph. After a pass the nodes are
tinted by gradient norm (from the pass state's holdings, a dictionary walk), and the per-use
contributions shown on tie links are read from the engine in a worker, at most one read in
flight, the newest state read again after it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import NetExplorerError
from ...core.graph import CONTAINER, FOLD, MODULE
from ...core.tree import ModuleTree
from ..appearance import Look, appearance, follow
from ..document import Document
from ..workers import TaskRunner
from .builder import GraphBuilder
from .canvas import READABLE_SCALE, GraphCanvas
from .export import export_graph
from .items import BoxItem, LabelMetrics, LegendContent, LinkLabelItem, NodeItem, TieLinkItem
from .loader import SceneLoader
from .scene import GraphScene
from .selection import GraphSelection
from .tasks import Collapse, LaidOut, Screen, contribution_norms

LEGEND_RESERVE = 120  # px at the bottom of the canvas the legend and overview take


class GraphPanel(QWidget):
    """The Graph tab: toolbar, the note on missing data flow, the graph, its legend."""

    graph_shown = Signal()  # a laid-out graph is on screen

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.metrics = LabelMetrics()
        self.laid: LaidOut | None = None
        self.graph_scene: GraphScene | None = None
        self._norms: dict[str, float | None] = {}
        self._contributions: dict[str, list[tuple[str, int, float]]] = {}
        self._contributions_dirty = False
        self._contribution_reader = TaskRunner(self)
        self._overview_timer = QTimer(self, singleShot=True)  # redraws it at most this often

        self.canvas = GraphCanvas(self)
        self.canvas.tooltip_for = self._tooltip
        self.canvas.item_clicked.connect(self._on_item_clicked)
        self.canvas.item_double_clicked.connect(self._on_item_double_clicked)
        self._overview_timer.timeout.connect(self._draw_overview)

        self.builder = GraphBuilder(document, self.metrics, self, self.screen)
        self._found: list[str] = []  # ids of the nodes the search box matches
        self._found_at = -1  # which of them was shown last
        self._focus_after_layout: str | None = None  # a node to zoom to once laid out
        self.builder.working.connect(self._on_working)
        self.builder.laid_out.connect(self._on_laid_out)
        self.builder.failed.connect(self._on_build_failed)
        self.canvas.painted.connect(self.builder.canvas_painted)
        self.loader = SceneLoader(self.metrics, self)
        self.loader.ready.connect(self._finish_show)
        self.selection = GraphSelection(
            document,
            self.canvas,
            lambda: (self.laid, self.graph_scene),
            lambda: self._refresh_overview(150),
        )

        self._make_toolbar()
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.note.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.toolbar)
        layout.addWidget(self.note)
        layout.addWidget(self.canvas, 1)

        follow(self.apply_look)
        document.tree_changed.connect(self._on_tree_changed)
        document.selection_changed.connect(lambda _path: self.selection.apply(scroll=True))
        document.session.state.holdings_changed.connect(self._on_holdings_changed)
        document.session.state.result_changed.connect(self._on_result_changed)
        self._on_tree_changed(document.tree)

    def apply_look(self, look: Look) -> None:
        self.note.setStyleSheet(
            "background: #fff3cd; color: #5d4200; border: 1px solid #f0c36d; "
            f"border-radius: 4px; padding: 6px; font-size: {look.pt(12):.1f}pt;"
        )
        self.status.setStyleSheet(f"color: {look.colors.muted};")
        if self.graph_scene is not None:
            self.graph_scene.set_line_width(look.line_width)

    def _make_toolbar(self) -> None:
        def button(text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
            b = QPushButton(text, self)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        self.fit_button = button(
            "Fit",
            "Fit the graph in view (F): all of it when its labels stay readable, else the "
            "selection and its tie links",
            self.fit_view,
        )
        self.zoom_out_button = button(
            "−", "Zoom out (-, or the mouse wheel)", lambda: self.canvas.zoom(1 / 1.25)
        )
        self.zoom_in_button = button(
            "+", "Zoom in (+, or the mouse wheel)", lambda: self.canvas.zoom(1.25)
        )
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
            "Collapse all",
            "Collapse every box to one node and fold repeated blocks again",
            self.collapse_all,
        )
        self.find_edit = QLineEdit(self)
        self.find_edit.setPlaceholderText("Find in graph  (/)")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.setToolTip(
            "Find modules by path or type: Enter shows the next match (opening the folds and "
            "boxes that hide it), Shift+Enter the previous one"
        )
        self.find_edit.setMaximumWidth(220)
        self.find_edit.textChanged.connect(self._on_find_text)
        self.find_edit.returnPressed.connect(lambda: self.find_next(1))
        self.find_edit.installEventFilter(self)
        self.find_count = QLabel(self)
        self.canvas.find_requested.connect(self.focus_find)
        self.canvas.fit_requested.connect(self.fit_view)
        self.canvas.zoom_to_selection_requested.connect(self.zoom_to_selection)
        self.export_button = button(
            "Export…", "Save the graph as PNG or SVG, for slides", self.export_with_dialog
        )
        self.status = QLabel(self)
        self.toolbar = QHBoxLayout()
        for w in (
            self.fit_button,
            self.zoom_out_button,
            self.zoom_in_button,
            self.depth,
            self.expand_button,
            self.collapse_button,
            self.export_button,
            self.find_edit,
            self.find_count,
        ):
            self.toolbar.addWidget(w)
        self.toolbar.addWidget(self.status, 1)

    # -- building -----------------------------------------------------------------------

    @property
    def building(self) -> bool:
        return self.builder.building

    @property
    def populating(self) -> bool:
        """Items of a new layout are being made (a batch per turn of the event loop)."""
        return self.loader.populating

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self.builder.reset(needs_build=tree is not None)
        self._contribution_reader.cancel()
        self.loader.abandon()
        self.laid = None
        self._set_scene(None)
        self._norms, self._contributions = {}, {}
        self.selection.forget()
        self.note.setVisible(False)
        self._sync_enabled()
        if tree is None:
            self._message("Open a model or a checkpoint to see its graph")
        elif self.isVisible():
            self.builder.build()
        else:
            self._message("The graph is built when this tab is shown")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.builder.needs_build or self.builder.waiting:
            if self.graph_scene is None and not self.document.session.busy:
                self._message("Building the graph…")
            self.builder.build_when_shown()
        elif self._contributions_dirty:
            self._request_contributions()

    def _on_working(self, text: str) -> None:
        self.canvas.overview.cancel()  # the new scene draws it again
        if self.graph_scene is None:
            self._message(text[0].upper() + text[1:])
        self.status.setText(text)
        self._sync_enabled()

    def _on_laid_out(self, laid: LaidOut, fresh: bool, fit: bool, anchor: Any) -> None:
        if fresh:
            graph = laid.graph
            deepest = max((n.depth for n in graph.containers), default=0) + 1
            self.depth.blockSignals(True)
            self.depth.setRange(0, max(1, deepest))
            self.depth.setValue(laid.collapse.depth or 0)
            self.depth.blockSignals(False)
        tree = self.document.tree
        if tree is not None:
            self.loader.load(laid, tree, fit, anchor)

    def _on_build_failed(self, message: str) -> None:
        self._sync_enabled()
        self._refresh_overview(0)  # of the scene still shown, if any
        self.status.setText("")
        self._message(message)

    # -- showing ------------------------------------------------------------------------

    def _set_scene(self, scene: GraphScene | None) -> None:
        old = self.graph_scene
        self.graph_scene = scene
        self.canvas.setScene(scene)
        if old is not None:
            self.loader.retire(old)
        self.canvas.set_legend(scene.legend() if scene is not None else LegendContent(False))

    def _finish_show(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor: Any) -> None:
        self.laid = laid
        if any(n is not None for n in self._norms.values()):
            scene.set_grad_norms(self._norms)
        if self._contributions:
            scene.set_contributions(self._contributions)
        scene.set_line_width(appearance().look.line_width)
        self._set_scene(scene)
        self._message("")
        note = laid.graph.note
        if note:
            label = "Note" if laid.graph.has_data_flow else "No data flow"
            self.note.setText(f"<b>{label}:</b> {html.escape(note)}")
        self.note.setVisible(bool(note))
        view = laid.view
        parts = [f"{len(view.nodes)} nodes"]
        if view.boxes:
            parts.append(f"{len(view.boxes)} open box{'es' if len(view.boxes) != 1 else ''}")
        if view.folds:
            folded = sum(len(f.members) for f in view.folds.values())
            parts.append(f"{folded} blocks folded")
        links = len(view.tie_links)
        parts.append(f"{links} tie link{'s' if links != 1 else ''}")
        self.status.setText(" · ".join(parts))
        self.status.setToolTip(f"laid out in {laid.seconds:.2f} s")
        self.selection.apply(scroll=False)
        focus, self._focus_after_layout = self._focus_after_layout, None
        if focus is not None and focus in laid.view.representative:
            self._show_node(focus)
        elif fit:
            self.fit_view()
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

    def _draw_overview(self) -> None:
        # not while a new layout is being made: this scene is about to go, and the Python
        # paint of its items would only fight the layout's worker for the GIL
        if not self.building:
            self.canvas.overview.refresh()

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
            self.find_edit,
        ):
            w.setEnabled(ready)

    def screen(self) -> Screen:
        """The canvas in scene units at the text scale, less the legend's strip: what a
        default layout is wrapped and chosen to fit."""
        area = self.canvas.viewport().rect()
        scale = self.canvas.look_scale
        height = max(200.0, area.height() - LEGEND_RESERVE)
        return Screen(max(300.0, area.width()) / scale, height / scale)

    # -- fit, zoom to the selection, find -----------------------------------------------

    def fit_view(self) -> None:
        """The whole graph when its labels stay readable; else, as it fits readably, the
        selection with the nodes its tie links reach, or every tie link of the open level
        with the selection, or the tie links alone; else the selection (or the start) at
        the least readable zoom."""
        scene = self.graph_scene
        if scene is None:
            return
        if self.canvas.fits_readably(scene.bounds):
            self.canvas.fit()
            return
        selected = self._selection_rect(with_links=False)
        linked = self._selection_rect(with_links=True)
        links = self._links_rect()
        candidates = [linked if linked != selected else None]
        if links is not None:
            candidates += [_united([links, selected]) if selected is not None else None, links]
        for rect in candidates:
            if rect is not None and self.canvas.fits_readably(rect):
                self.canvas.show_rect(rect)
                return
        if selected is not None:  # as much as is readable, around the selection
            self.canvas.show_rect(selected, zoom=READABLE_SCALE)
        else:
            self.canvas.fit(readable=True)

    def zoom_to_selection(self) -> None:
        """Zoom to the selected nodes (Z), at the text's own size."""
        rect = self._selection_rect(with_links=False)
        if rect is not None:
            self.canvas.show_rect(rect, zoom=1.0)

    def _selection_rect(self, *, with_links: bool) -> QRectF | None:
        scene = self.graph_scene
        if scene is None:
            return None
        selected, partners = self.highlighted()
        ids = [*selected, *(partners if with_links else ())]
        rects = [scene.to_qrect(i) for i in ids]
        if with_links and selected:
            rects += [
                g.label.sceneBoundingRect()
                for g in scene.groups
                if g.label is not None and any(n in selected for n in g.nodes)
            ]
        return _united(rects)

    def _links_rect(self) -> QRectF | None:
        scene = self.graph_scene
        if scene is None or not scene.groups:
            return None
        rects = [scene.to_qrect(n) for g in scene.groups for n in g.nodes]
        rects += [g.label.sceneBoundingRect() for g in scene.groups if g.label is not None]
        return _united(rects)

    def focus_find(self) -> None:
        """Put the cursor in the search box (/ on the graph)."""
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.find_edit and event.type() == QEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            ):
                self.find_next(-1)
                return True
            if event.key() == Qt.Key.Key_Escape and self.find_edit.text():
                self.find_edit.clear()
                self.canvas.setFocus()
                return True
        return super().eventFilter(watched, event)

    def _on_find_text(self, text: str) -> None:
        self._found, self._found_at = self.find(text), -1
        if not text.strip():
            self.find_count.setText("")
        elif not self._found:
            self.find_count.setText("no match")
        else:
            n = len(self._found)
            self.find_count.setText(f"{n} match{'es' if n != 1 else ''} · Enter")

    def find(self, text: str) -> list[str]:
        """Ids of the module calls whose path or type contains `text` (any case), in call
        order, hidden ones (in folds and shut boxes) included."""
        laid = self.laid
        needle = text.strip().lower()
        if laid is None or not needle:
            return []
        return [
            n.id
            for n in laid.graph.nodes
            if n.kind in (MODULE, CONTAINER)
            and n.id != laid.graph.root_id
            and (needle in (n.path or "").lower() or needle in n.type.lower())
        ]

    def find_next(self, step: int) -> None:
        """Show the next (step 1) or previous (-1) match: select it, open what hides it,
        zoom to it."""
        if not self._found:
            return
        self._found_at = (self._found_at + step) % len(self._found)
        node_id = self._found[self._found_at]
        self.find_count.setText(f"{self._found_at + 1} of {len(self._found)}")
        laid = self.laid
        if laid is None:
            return
        node = laid.graph.by_id[node_id]
        self.selection.forget()
        if node.path is not None and self.document.selected != node.path:
            self.document.select(node.path)
        if laid.view.visible_id(node_id) == node_id:
            self.selection.select_node(node_id)
            self._show_node(node_id)
            return
        self._focus_after_layout = node_id
        self._relayout(laid.collapse.revealing(laid.graph, node_id))

    def _show_node(self, node_id: str) -> None:
        scene = self.graph_scene
        if scene is None:
            return
        self.selection.select_node(node_id)
        self.canvas.show_rect(scene.to_qrect(node_id), zoom=1.0)

    # -- collapse and expand ------------------------------------------------------------

    def _relayout(self, collapse: Collapse, *, fit: bool = False, anchor=None) -> None:
        if self.laid is not None:
            self.builder.relayout(self.laid, collapse, fit=fit, anchor=anchor)

    def _on_depth_changed(self, depth: int) -> None:
        unfolded = self.laid.collapse.unfolded if self.laid is not None else frozenset()
        self._relayout(Collapse(depth, unfolded=unfolded), fit=True)

    def set_depth(self, depth: int, *, fold: bool = False) -> None:
        """Open the boxes down to `depth`, forgetting boxes opened or shut by hand (and,
        with `fold`, the folds opened)."""
        unfolded = self.laid.collapse.unfolded if self.laid is not None else frozenset()
        collapse = Collapse(depth, unfolded=frozenset() if fold else unfolded)
        self.depth.blockSignals(True)
        self.depth.setValue(depth)
        self.depth.blockSignals(False)
        self._relayout(collapse, fit=True)

    def expand_all(self) -> None:
        """Open every box and every fold."""
        if self.laid is None:
            return
        opened = Collapse(self.depth.maximum()).opened(self.laid.graph)
        self.depth.blockSignals(True)
        self.depth.setValue(opened.depth or 0)
        self.depth.blockSignals(False)
        self._relayout(opened, fit=True)

    def collapse_all(self) -> None:
        """Shut every box to one node and fold repeated blocks again."""
        self.set_depth(min(1, self.depth.maximum()), fold=True)

    def toggle(self, node_id: str) -> None:
        """Shut an open box, or open a collapsed one (by its module path: every call)."""
        laid, scene = self.laid, self.graph_scene
        if laid is None or scene is None:
            return
        node = laid.view.node(node_id)
        if node.path is None:
            return
        c = laid.collapse
        item = scene.boxes.get(node_id) or scene.nodes.get(node_id)
        if node.kind == FOLD:
            collapse = c.unfolding(laid.graph, node.fold_key)
        elif node_id in scene.boxes:
            collapse = Collapse(
                c.depth, c.collapsed | {node.path}, c.expanded - {node.path}, c.unfolded
            )
        elif item is not None and item.is_collapsed:
            collapse = Collapse(
                c.depth, c.collapsed - {node.path}, c.expanded | {node.path}, c.unfolded
            )
        else:
            return
        anchor = None
        if item is not None:
            anchor = (node_id, self.canvas.mapFromScene(item.rect.topLeft()))
        self._relayout(collapse, anchor=anchor)

    # -- clicks and selection -----------------------------------------------------------

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
        self.selection.select_node(node_id)

    def highlighted(self) -> tuple[list[str], list[str]]:
        """Ids of the selected nodes and of the nodes tie-linked to them (for tests)."""
        return self.selection.highlighted()

    def visible_for_path(self, path: str) -> list[str]:
        return self.selection.visible_for_path(path)

    # -- gradients ----------------------------------------------------------------------

    def _on_holdings_changed(self, holdings: Any) -> None:
        self._norms = dict(holdings.grad_norms)
        scene = self.graph_scene
        if scene is not None:
            scene.set_grad_norms(self._norms)
            self._refresh_overview(500)  # training: a few times a second is plenty
            legend = scene.legend()
            if legend != self.canvas.legend.content:
                self.canvas.set_legend(legend)
        self._request_contributions()

    def _on_result_changed(self, result: Any) -> None:
        if result is None or result.action not in ("forward", "backward", "train"):
            return
        if self.builder.input_changed(self.laid):
            self.builder.needs_build = True  # new shapes, maybe another path through the model
            if self.isVisible():
                self.builder.build()

    def _request_contributions(self) -> None:
        engine = self.document.session.engine
        if engine is None or self.graph_scene is None:
            return
        if not self.isVisible() or self._contribution_reader.pending:
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

    # -- tooltips and export ------------------------------------------------------------

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


def _united(rects: list[QRectF | None]) -> QRectF | None:
    rects = [r for r in rects if r is not None and not r.isEmpty()]
    if not rects:
        return None
    out = QRectF(rects[0])
    for r in rects[1:]:
        out = out.united(r)
    return out
