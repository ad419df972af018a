"""Putting a laid-out graph on screen without stalling the GUI thread.

A graph of thousands of calls has thousands of items: `SceneLoader.load` makes them a batch
per turn of the event loop (`GraphScene.populate`, indexed as they come), then hands the
finished scene over (`ready`) on a turn of its own. A scene that is replaced is taken apart
a batch per turn too (`retire`). A newer `load` abandons one still being made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEvent, QObject, QTimer, Signal

from ...core.graph import paused_gc
from ...core.tree import ModuleTree
from .items import LabelMetrics
from .scene import GraphScene
from .tasks import LaidOut

TEARDOWN_BATCH = 600  # items of a retired scene removed per event-loop turn (a few ms)
POPULATE_STEP_MS = 8  # GUI-thread time per turn of the event loop making new graph items


class SceneLoader(QObject):
    """Makes the scene of a layout a batch per turn; `ready(laid, scene, fit, anchor)` once
    every item is made."""

    ready = Signal(object, object, bool, object)

    def __init__(self, metrics: LabelMetrics, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.metrics = metrics
        self._populating: tuple[GraphScene, Iterator[None]] | None = None
        self._retired: list[GraphScene] = []  # scenes being taken apart, a batch per turn
        self._teardown = QTimer(self, interval=0)
        self._teardown.timeout.connect(self._tear_down_some)

    @property
    def populating(self) -> bool:
        """Items of a new layout are being made."""
        return self._populating is not None

    def load(self, laid: LaidOut, tree: ModuleTree, fit: bool, anchor: Any) -> None:
        """Start making the items of `laid` (a newer call supersedes this one)."""
        self.abandon()
        scene = GraphScene(laid, tree, self.metrics, self, populate=False)
        self._populating = (scene, scene.populate())
        QTimer.singleShot(0, self, lambda: self._populate_step(laid, scene, fit, anchor))

    def abandon(self) -> None:
        """Stop making the scene being made (a newer layout, or another tree)."""
        if self._populating is not None:
            self._populating[0].deleteLater()
            self._populating = None

    def retire(self, scene: GraphScene) -> None:
        """Take a scene that left the screen apart, a batch per turn."""
        self._retired.append(scene)
        self._teardown.start()

    def _populate_step(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor: Any) -> None:
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

    def _swap_in(self, laid: LaidOut, scene: GraphScene, fit: bool, anchor: Any) -> None:
        if self._populating is None or self._populating[0] is not scene:
            return  # a newer layout took over
        self._populating = None
        self.ready.emit(laid, scene, fit, anchor)

    def _tear_down_some(self) -> None:
        if self._retired and self._retired[0].dispose(TEARDOWN_BATCH):
            self._retired.pop(0).deleteLater()
        if not self._retired:
            self._teardown.stop()
