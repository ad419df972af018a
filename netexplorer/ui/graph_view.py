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

Drawing. A graph of thousands of calls is put on screen a little per turn of the event
loop, so that no turn keeps the GUI thread long: its items are made a batch at a time
(`GraphScene.populate`, indexed as they come), the finished scene is swapped in on a turn of
its own, the overview is drawn a strip at a time, and the scene it replaces is taken apart
a batch at a time. A build or a new layout starts its worker once the canvas has painted
what was queued: a worker running Python holds the GIL, and meanwhile every Python handler
of the GUI thread (the paint of each item too) waits for it.

Updates. After a pass, `pass_result.grad_norms` tints the nodes (a dictionary walk, cheap at
30 results a second); the per-use contributions shown on tie links are read from the engine
in a worker, at most one read in flight, the newest result read again after it.

This module holds `GraphPanel`, the tab itself; what it uses lives beside it: the worker
tasks (ui/graph_tasks.py), the canvas and its overlays (ui/graph_canvas.py, the overview in
ui/graph_overview.py), the scene and its items (ui/graph_scene.py, ui/graph_items.py) and
export (ui/graph_export.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import NetExplorerError, UnknownPathError
from ..core.graph import paused_gc
from ..core.tree import ModuleNode, ModuleTree, TensorNode
from .document import Document
from .graph_canvas import GraphCanvas
from .graph_export import export_graph
from .graph_items import (
    BoxItem,
    LabelMetrics,
    LegendContent,
    LinkLabelItem,
    NodeItem,
    TieLinkItem,
)
from .graph_scene import GraphScene
from .graph_tasks import Collapse, LaidOut, build_graph, contribution_norms, lay_out
from .workers import TaskRunner

TEARDOWN_BATCH = 600  # items of a retired scene removed per event-loop turn (a few ms)
POPULATE_STEP_MS = 8  # GUI-thread time per turn of the event loop making new graph items
SHOWN_DELAY_MS = 100  # the longest the build waits for a tab just shown to paint
RELAYOUT_DELAY_MS = 20  # the longest a new layout waits for the canvas to paint


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
        self._after_paint: Callable[[], None] | None = None  # starts a worker
        self._start_soon = QTimer(self, singleShot=True)
        self._start_soon.timeout.connect(self._start_after_paint)

        self.canvas = GraphCanvas(self)
        self.canvas.tooltip_for = self._tooltip
        self.canvas.item_clicked.connect(self._on_item_clicked)
        self.canvas.item_double_clicked.connect(self._on_item_double_clicked)
        self.canvas.painted.connect(self._on_canvas_painted)
        self._overview_timer.timeout.connect(self._draw_overview)

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
        document.session.state.holdings_changed.connect(self._on_holdings_changed)
        document.session.state.result_changed.connect(self._on_result_changed)
        document.session.busy_changed.connect(self._on_session_busy_changed)
        self._on_tree_changed(document.tree)

    # -- building ---------------------------------------------------------------------------

    @property
    def building(self) -> bool:
        return self._builder.pending or self._after_paint is not None

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self._forget_pending_start()
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
        if (self._needs_build or self._waiting) and self.document.session.busy:
            self._build()  # says what it waits for
        elif self._needs_build or self._waiting:
            if self.graph_scene is None:
                self._message("Building the graph…")
            self._once_painted(self._build, SHOWN_DELAY_MS)
        elif self._contributions_dirty:
            self._request_contributions()

    def _once_painted(self, start: Callable[[], None], at_most_ms: int) -> None:
        """Start a worker once the canvas has painted what is queued, or after `at_most_ms`
        if it has nothing to paint: a worker running Python holds the GIL, and meanwhile
        every Python handler of the GUI thread, the paint of each item too, waits for it."""
        self._after_paint = start
        self._start_soon.start(at_most_ms)

    def _on_canvas_painted(self) -> None:
        if self._after_paint is not None:
            self._start_soon.start(0)  # on the next turn, after this paint

    def _start_after_paint(self) -> None:
        start, self._after_paint = self._after_paint, None
        if start is not None:
            start()

    def _forget_pending_start(self) -> None:
        self._after_paint = None
        self._start_soon.stop()

    def _build(self) -> None:
        self._forget_pending_start()
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
            seed = engine.config.seed
            try:
                spec = engine.input_spec  # the batch the passes use, inferred if need be
            except NetExplorerError:
                spec = None  # the graph says why there is no data flow
            # an action started while the graph's forward runs waits for it
            lock = engine.exclusive()
        self._message("Building the graph…" if self.graph_scene is None else "")
        self.status.setText("building the graph…")
        self.canvas.overview.cancel()  # the new scene draws it again
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
        self._refresh_overview(0)  # of the scene still shown, if any
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

        def start() -> None:
            self._builder.run(
                lay_out,
                tree,
                laid.graph,
                collapse,
                self.metrics.node_size,
                on_result=done,
                on_error=self._on_build_failed,
            )

        self.status.setText("laying out…")
        self.canvas.overview.cancel()  # the new scene draws it again
        self._once_painted(start, RELAYOUT_DELAY_MS)

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
        QTimer.singleShot(0, self, lambda: self._populate_step(laid, scene, fit, anchor))

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
                # Qt queues its own work on the items just made (polishing them, noting
                # what to repaint) for after this step, in the same turn; done now, it
                # counts against the step's time instead of adding to it
                QCoreApplication.sendPostedEvents(scene, QEvent.Type.MetaCall)
                if clock.elapsed() >= POPULATE_STEP_MS:
                    QTimer.singleShot(
                        0, self, lambda: self._populate_step(laid, scene, fit, anchor)
                    )
                    return
        # every item is made: the scene goes on screen in a turn of its own
        QTimer.singleShot(0, self, lambda: self._swap_in(laid, scene, fit, anchor))

    def _swap_in(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor) -> None:
        if self._populating is None or self._populating[0] is not scene:
            return  # a newer layout took over
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
        if self._input_changed():
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
