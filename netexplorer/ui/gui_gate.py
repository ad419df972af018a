"""The GUI thread first on the GIL: a long Python worker waits while the GUI thread works.

Python runs one thread at a time. While a worker runs Python (a training step's recording
hooks: thousands of calls per step), every call the GUI thread makes into Python (each of
the tree's data(), parent() and index(); a pyqtgraph paint) must win the interpreter back,
and while the GUI thread runs Python the worker takes its turn every switch interval. Drawing
one selection took 35 ms with the window alone and 80-100 ms beside a training worker
(bench/state.py). A shorter switch interval made it worse: the GUI's own Python is then
interleaved with the worker's more finely, not given priority.

Qt says when the GUI thread works: its own event dispatcher (QEventDispatcherUNIX, which
make_app asks for with QT_NO_GLIB=1) emits `awake` when the thread wakes to handle events
and `aboutToBlock` when it has none left and goes to sleep. (The GLib dispatcher, Qt's
default on Linux, emits `aboutToBlock` before each round, work included: in an application
made with it, a notebook's, no gate is installed and workers run as before.) Qt's dispatcher
handles posted events while awake: repaints, layout, queued signals from workers (a training
frame, a tree built), zero-timer calls. Timers that fire after its sleep run before its next
`awake`: a selection made from a timer is itself not waited for, only what it posts (its
repaints).

A worker that calls `wait_for_gui()` at its pause points (before each module call of a
training step or of the graph's recorded pass; between the chunks of every generator task,
workers.py) waits while the GUI thread is awake, so the GUI's work runs alone. The wait is
bounded: after waiting BUSY_WAIT_SECONDS for a GUI thread that does not sleep (an animation,
a long computation), the worker runs for RUN_SECONDS before it waits again, so a busy window
slows a worker and never stops it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QAbstractEventDispatcher, QCoreApplication, QObject, Qt

BUSY_WAIT_SECONDS = 0.03  # the longest a worker waits for the GUI thread to go to sleep
RUN_SECONDS = 0.01  # after such a wait, how long the worker runs before it waits again


class GuiGate(QObject):
    """Whether the GUI thread is working, for workers to give way to it."""

    def __init__(self, app: QCoreApplication, dispatcher: QAbstractEventDispatcher) -> None:
        """Follow the GUI thread's event dispatcher (direct connections: the flag is set in
        the GUI thread itself, the moment it wakes or sleeps)."""
        super().__init__(app)
        self.app = app  # the application it follows
        self._asleep = threading.Event()
        self._asleep.set()
        self._run_until = 0.0  # worker side: no waiting before this (time.monotonic)
        direct = Qt.ConnectionType.DirectConnection
        dispatcher.awake.connect(self._on_awake, direct)
        dispatcher.aboutToBlock.connect(self._on_asleep, direct)

    def _on_awake(self) -> None:
        self._asleep.clear()

    def _on_asleep(self) -> None:
        self._asleep.set()

    @property
    def gui_busy(self) -> bool:
        return not self._asleep.is_set()

    def wait_for_gui(self) -> None:
        """Worker side: return at once while the GUI thread sleeps; while it works, wait
        until it sleeps (at most BUSY_WAIT_SECONDS, then run RUN_SECONDS unhindered)."""
        if self._asleep.is_set():
            return
        if time.monotonic() < self._run_until:
            return
        if not self._asleep.wait(BUSY_WAIT_SECONDS):
            self._run_until = time.monotonic() + RUN_SECONDS


_gate: GuiGate | None = None


def gui_gate() -> GuiGate | None:
    """The application's gate (made on the first call once the QApplication exists, on the
    GUI thread: make_app does), or None where there is none (no application; GLib's
    dispatcher)."""
    global _gate
    app = QCoreApplication.instance()
    stale = _gate is not None and _gate.app is not app  # made for an application now gone
    if (_gate is None or stale) and app is not None and os.environ.get("QT_NO_GLIB"):
        dispatcher = QAbstractEventDispatcher.instance(app.thread())
        if dispatcher is not None:
            _gate = GuiGate(app, dispatcher)
    return _gate


def wait_for_gui() -> None:
    """Worker side: give way to the GUI thread while it works (see GuiGate)."""
    gate = _gate
    if gate is not None:
        gate.wait_for_gui()


@contextmanager
def gui_blocked() -> Iterator[None]:
    """The GUI thread blocks until workers finish (closing the window): they need not give
    way meanwhile (it is in neither state its dispatcher reports)."""
    gate = _gate
    if gate is None:
        yield
        return
    gate._on_asleep()
    try:
        yield
    finally:
        gate._on_awake()  # working again, until its dispatcher says it sleeps
