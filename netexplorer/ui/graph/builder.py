"""Building and laying out the graph in a worker, at the right moment.

The graph of a live model needs a forward pass (`tasks.build_graph`), and the layout of
thousands of calls takes a while, so both run in a worker (newest request wins). The
graph's forward pass must not overlap a pass on the same module (their module hooks would
see each other's calls), so a build waits while the pass session is busy and resumes when it
is not; it holds the engine's run lock while its forward runs, so that an action started
meanwhile waits for it in its own thread. A worker starts once the canvas has painted what
was queued: a worker running Python holds the GIL, and meanwhile every Python handler of the
GUI thread (the paint of each item too) waits for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ...core.errors import NetExplorerError
from ..document import Document
from ..workers import TaskRunner
from .items import LabelMetrics
from .tasks import Collapse, LaidOut, Screen, build_graph, lay_out

SHOWN_DELAY_MS = 100  # the longest a build waits for a tab just shown to paint
RELAYOUT_DELAY_MS = 20  # the longest a new layout waits for the canvas to paint


class GraphBuilder(QObject):
    """Builds (`build`) and lays out again (`relayout`) in a worker.

    Signals: `working(text)` while a worker runs or waits ("building the graph…");
    `laid_out(laid, fresh, fit, anchor)` with a new layout (`fresh`: of a new build);
    `failed(message)`."""

    working = Signal(str)
    laid_out = Signal(object, bool, bool, object)
    failed = Signal(str)

    def __init__(
        self,
        document: Document,
        metrics: LabelMetrics,
        parent: QObject,
        screen: Callable[[], Screen | None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.metrics = metrics
        self.screen = screen  # the canvas's size, which layouts wrap to
        self.needs_build = False
        self.waiting = False  # for the pass session to be idle
        self._runner = TaskRunner(self)
        self._after_paint: Callable[[], None] | None = None  # starts a worker
        self._start_soon = QTimer(self, singleShot=True)
        self._start_soon.timeout.connect(self._start_after_paint)
        document.session.busy_changed.connect(self._on_session_busy_changed)

    @property
    def building(self) -> bool:
        """A build or layout is queued or running (its result not yet delivered)."""
        return self._runner.pending or self._after_paint is not None

    def reset(self, needs_build: bool) -> None:
        """Another tree: forget what was asked for."""
        self._forget_pending_start()
        self._runner.cancel()
        self.needs_build = needs_build
        self.waiting = False

    # -- starting after a paint ---------------------------------------------------------

    def once_painted(self, start: Callable[[], None], at_most_ms: int) -> None:
        """Start a worker once the canvas has painted (`canvas_painted`), or after
        `at_most_ms` if it has nothing to paint."""
        self._after_paint = start
        self._start_soon.start(at_most_ms)

    def canvas_painted(self) -> None:
        if self._after_paint is not None:
            self._start_soon.start(0)  # on the next turn, after this paint

    def _start_after_paint(self) -> None:
        start, self._after_paint = self._after_paint, None
        if start is not None:
            start()

    def _forget_pending_start(self) -> None:
        self._after_paint = None
        self._start_soon.stop()

    # -- building -----------------------------------------------------------------------

    def build_when_shown(self) -> None:
        """The tab was shown: build now if a pass runs (to say what it waits for), else
        after the tab's first paint."""
        if self.document.session.busy:
            self.build()
        else:
            self.once_painted(self.build, SHOWN_DELAY_MS)

    def build(self) -> None:
        self._forget_pending_start()
        tree = self.document.tree
        if tree is None:
            return
        session = self.document.session
        if session.busy:  # its forward pass would meet the action's on the same module
            self.waiting = True
            self.working.emit("waiting for the running pass to finish…")
            return
        self.waiting = self.needs_build = False
        engine = session.engine
        spec, lock, seed = None, None, 0
        if engine is not None:
            seed = engine.config.seed
            try:
                spec = engine.input_spec  # the batch the passes use, inferred if need be
            except NetExplorerError:
                spec = None  # the graph says why there is no data flow
            lock = engine.exclusive()  # an action started meanwhile waits for it
        self.working.emit("building the graph…")
        self._runner.run(
            build_graph,
            tree,
            spec,
            seed,
            lock,
            self.metrics.node_size,
            self.screen(),
            on_result=lambda laid: self.laid_out.emit(laid, True, True, None),
            on_error=self._on_failed,
        )

    def relayout(self, laid: LaidOut, collapse: Collapse, *, fit: bool, anchor: Any) -> None:
        """Lay `laid`'s graph out again with another collapse (depth, boxes opened/shut)."""
        tree = self.document.tree
        if tree is None:
            return
        spec = laid.input_spec

        def done(new: LaidOut) -> None:
            new.input_spec = spec
            self.laid_out.emit(new, False, fit, anchor)

        def start() -> None:
            self._runner.run(
                lay_out,
                tree,
                laid.graph,
                collapse,
                self.metrics.node_size,
                self.screen(),
                on_result=done,
                on_error=self._on_failed,
            )

        self.working.emit("laying out…")
        self.once_painted(start, RELAYOUT_DELAY_MS)

    def input_changed(self, laid: LaidOut | None) -> bool:
        """The passes now run on another input than `laid` was built with."""
        engine = self.document.session.engine
        if laid is None or engine is None:
            return False
        try:
            return engine.input_spec != laid.input_spec
        except NetExplorerError:
            return False

    def _on_failed(self, error: BaseException) -> None:
        self.failed.emit(f"Could not draw the graph: {type(error).__name__}: {error}")

    def _on_session_busy_changed(self, busy: bool) -> None:
        if not busy and self.waiting and self._visible():
            self.build()

    def _visible(self) -> bool:
        parent: Any = self.parent()
        return bool(parent is not None and parent.isVisible())
