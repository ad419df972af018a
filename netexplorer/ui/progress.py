"""The status bar's progress bar, shared by every kind of long work (opening, hashing,
statistics of huge tensors, comparing checkpoints).

A task that starts is registered with `ProgressBar.track(runner, text, cancel)` right after
`runner.run(...)`; it reports `(fraction, text)` as its worker yields, and it ends when the
runner stops being busy (result, error, cancel, or a newer request superseding it). The bar
appears only once a task has run for half a second, so quick work never flickers it; with
several tasks at once it shows the newest, and Cancel (or Escape while it shows) stops that
one.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from .workers import TaskRunner

SHOW_AFTER_MS = 500  # work shorter than this never shows the bar
TEXT_WIDTH = 360  # pixels of the status text before it is elided


class ProgressTask:
    """One piece of long work as the bar shows it. Made by `ProgressBar.track`."""

    def __init__(
        self,
        bar: ProgressBar,
        runner: TaskRunner,
        text: str,
        cancel: Callable[[], None] | None,
    ) -> None:
        self.bar = bar
        self.runner = runner
        self.text = text
        self.fraction: float | None = None  # None: busy, no fraction known yet
        self._cancel = cancel
        self.finished = False
        self.clock = QElapsedTimer()
        self.clock.start()

    def report(self, fraction: float | None = None, text: str | None = None) -> None:
        """Progress from the worker: a fraction in [0, 1] (0 or None: still busy, no
        fraction known), and what is being done."""
        if self.finished:
            return
        if fraction is not None:
            self.fraction = fraction if fraction > 0 else None
        if text:
            self.text = text
        self.bar.refresh()

    def cancel(self) -> None:
        """Stop the work (the Cancel button): the runner drops what it would still send."""
        if self.finished:
            return
        if self._cancel is not None:
            self._cancel()
        self.runner.cancel()
        self.finish()

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.bar.forget(self)

    @property
    def due(self) -> bool:
        """Running long enough to be shown."""
        return self.clock.elapsed() >= self.bar.delay_ms


class ProgressBar(QWidget):
    """Text, a progress bar and a Cancel button, for the status bar."""

    def __init__(self, parent: QWidget | None = None, delay_ms: int = SHOW_AFTER_MS) -> None:
        super().__init__(parent)
        self.delay_ms = delay_ms
        self.label = QLabel(self)
        self.label.setMaximumWidth(TEXT_WIDTH)
        self.bar = QProgressBar(self)
        self.bar.setMaximumWidth(200)
        self.bar.setMinimumWidth(120)
        self.bar.setTextVisible(True)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setShortcut(Qt.Key.Key_Escape)
        self.cancel_button.setToolTip("Stop this work (Esc)")
        self.cancel_button.clicked.connect(self.cancel_current)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.tasks: list[ProgressTask] = []
        self._show_timer = QTimer(self, singleShot=True)
        self._show_timer.timeout.connect(self.refresh)
        self.setVisible(False)

    def track(
        self,
        runner: TaskRunner,
        text: str,
        cancel: Callable[[], None] | None = None,
    ) -> ProgressTask:
        """Show `runner`'s current task (call right after `runner.run`) until the runner
        is no longer busy. `cancel` runs before the runner is cancelled (to tell the work
        to stop early, or to say in the window that it stopped)."""
        for task in list(self.tasks):
            if task.runner is runner:  # the runner's previous request was superseded
                task.finish()
        task = ProgressTask(self, runner, text, cancel)
        self.tasks.append(task)
        if not runner.busy:  # it finished before it could be tracked
            task.finish()
            return task

        def on_busy_changed(busy: bool) -> None:
            if not busy:
                runner.busy_changed.disconnect(on_busy_changed)
                task.finish()

        runner.busy_changed.connect(on_busy_changed)
        self._show_timer.start(self.delay_ms)
        return task

    @property
    def current(self) -> ProgressTask | None:
        """The task shown (the newest that has run for long enough), if any."""
        return next((t for t in reversed(self.tasks) if t.due), None)

    def cancel_current(self) -> None:
        task = self.current
        if task is not None:
            task.cancel()

    def forget(self, task: ProgressTask) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        self.refresh()

    def refresh(self) -> None:
        task = self.current
        if task is None:
            self.setVisible(False)
            pending = [t for t in self.tasks if not t.due]
            if pending:  # show it once it has run for long enough
                remaining = min(self.delay_ms - t.clock.elapsed() for t in pending)
                self._show_timer.start(max(1, remaining))
            return
        metrics = self.label.fontMetrics()
        self.label.setText(metrics.elidedText(task.text, Qt.TextElideMode.ElideMiddle, TEXT_WIDTH))
        self.label.setToolTip(task.text)
        if task.fraction is None:
            self.bar.setRange(0, 0)  # busy: moving stripes
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(1000 * min(1.0, task.fraction)))
        self.setVisible(True)
