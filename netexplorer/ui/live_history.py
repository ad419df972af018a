"""A live model's history on the time slider: the pass session keeps snapshots while the
model trains (`session.history`, core/live_run.py); this hands them to the Timeline as a
live Run, at most once a second, and never over a run of checkpoint files."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from .session import PassSession
from .timeline_state import Timeline

HISTORY_MS = 1000  # new snapshots reach the time slider at most this often


class LiveHistory(QObject):
    def __init__(self, session: PassSession, timeline: Timeline) -> None:
        super().__init__(timeline)
        self.session = session
        self.timeline = timeline
        self._timer = QTimer(self, singleShot=True, interval=HISTORY_MS)
        self._timer.timeout.connect(self._show)
        session.history_changed.connect(self._on_history_changed)

    def _on_history_changed(self) -> None:
        if not self._timer.isActive():  # not restarted: frames come faster than this
            self._timer.start()

    def _show(self) -> None:
        current = self.timeline.run
        if current is not None and not current.live:  # a run of checkpoint files is shown
            return
        run = self.session.history.as_run()
        if run is not None or current is not None:
            self.timeline.set_live_run(run)
