"""Long work off the GUI thread: one runner per kind of task, newest request wins.

A task is a plain function (its return value is the result) or a generator (each yield is
progress, its return value the result), written in `core` without Qt. `TaskRunner` runs it
in a worker and delivers the result, progress and errors on the GUI thread. A generation
counter drops the results of superseded requests; a generator task is cancelled
cooperatively between two of its yields.

A runner is `busy` until every worker it started has returned from its thread (a worker
sends `finished` after everything else): cancelling asks a worker to stop, it does not
declare it stopped. Workers run in Qt's global pool, or, for work that lasts (a training
loop), in a thread of their own (`dedicated=True`), so that it never holds a pool slot that
loading, statistics or the graph need. (superqt's `create_worker` is similar, but importing
superqt imports all its widgets: 0.1-0.16 s of the window's start-up.)
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import (
    QElapsedTimer,
    QEventLoop,
    QObject,
    QRunnable,
    QThread,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)

from .gui_gate import gui_blocked, wait_for_gui

# Work on up to this many tensor elements runs on the GUI thread (a few ms); larger tensors
# are read, reduced or summarised in a worker.
GUI_THREAD_ELEMENTS = 1 << 18


@dataclass
class _Failure:
    error: BaseException


class _Signals(QObject):
    yielded = Signal(object)
    returned = Signal(object)  # None when it was stopped
    finished = Signal()  # the very last signal: the worker's thread is done with it


class _Worker(QRunnable):
    """Runs `job` once, in the global pool or in a thread of its own. A generator job is
    stepped here, so `quit()` stops it between two yields (closing it: its `finally` blocks
    run in this thread)."""

    # started workers, so none is collected while its thread still emits; a worker leaves
    # the set in its thread, after its last signal
    _running: ClassVar[set[_Worker]] = set()

    def __init__(self, job: Callable[[], Any], generator: bool) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it (the set above), in the pool or not
        self.signals = _Signals()  # made on the GUI thread: its receivers get queued calls
        self._job: Callable[[], Any] | None = job
        self._generator = generator
        self._quit = False
        self._thread: _DedicatedThread | None = None

    def quit(self) -> None:
        self._quit = True

    def start(self, dedicated: bool = False) -> None:
        _Worker._running.add(self)
        if dedicated:
            self._thread = _DedicatedThread(self)
            self._thread.start()
        else:
            QThreadPool.globalInstance().start(self)

    def run(self) -> None:
        result = None
        job, self._job = self._job, None  # the task's arguments go with it (a model...)
        try:
            if job is not None:
                result = self._step(job()) if self._generator else job()
        finally:
            del job
            self._emit(self.signals.returned, result)
            result = None
            self._emit(self.signals.finished)
            _Worker._running.discard(self)

    def _step(self, gen: Iterator[Any]) -> Any:
        try:
            while not self._quit:
                wait_for_gui()  # between chunks: the GUI thread's work first (gui_gate.py)
                try:
                    item = next(gen)
                except StopIteration as done:
                    return done.value
                if not self._emit(self.signals.yielded, item):
                    return None
            return None
        finally:
            gen.close()

    def _emit(self, signal: Any, *value: Any) -> bool:
        """Send `value`; False if the signals are gone (Python shutting down with this
        thread still running): the task stops, quietly."""
        try:
            signal.emit(*value)
        except RuntimeError:
            self._quit = True
            return False
        return True


class _DedicatedThread(QThread):
    """A thread for one worker. It keeps itself alive until it has finished."""

    _alive: ClassVar[set[_DedicatedThread]] = set()

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self._worker: _Worker | None = worker
        _DedicatedThread._alive.add(self)
        self.finished.connect(self._forget)

    def run(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.run()

    def _forget(self) -> None:
        _DedicatedThread._alive.discard(self)

    @classmethod
    def wait_all(cls, timeout_ms: int) -> bool:
        clock = QElapsedTimer()
        clock.start()
        threads = list(cls._alive)
        return all(thread.wait(max(0, timeout_ms - clock.elapsed())) for thread in threads)


class TaskRunner(QObject):
    """Runs one task at a time for one purpose (loading, statistics, training...).

    `run()` supersedes the task before it: that task is asked to stop, and whatever it still
    sends is dropped. Callbacks run on the GUI thread. `busy` stays true until every worker
    this runner started has finished in its thread, superseded ones included."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, dedicated: bool = False) -> None:
        super().__init__(parent)
        self.dedicated = dedicated  # each task in a thread of its own, not the pool
        self._generation = 0
        self._worker: _Worker | None = None
        self._live = 0  # workers started and not yet finished
        self._callbacks: dict[str, Callable | None] = {}

    @property
    def busy(self) -> bool:
        return self._live > 0

    @property
    def pending(self) -> bool:
        """A result is still to come for the newest request (it was not cancelled)."""
        return self._worker is not None

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        """Start `fn(*args)` in a worker; the result goes to `on_result` on the GUI thread."""
        self.cancel()
        self._generation += 1
        generation = self._generation
        self._callbacks = {"result": on_result, "error": on_error, "progress": on_progress}

        if inspect.isgeneratorfunction(fn):

            def job():  # type: ignore[no-untyped-def]
                gen = fn(*args)  # calling a generator function runs none of its code
                try:
                    while True:
                        try:
                            progress = next(gen)
                        except StopIteration as done:
                            return generation, done.value
                        yield generation, progress
                except Exception as exc:  # delivered to on_error on the GUI thread
                    return generation, _Failure(exc)
                finally:
                    gen.close()  # a cancelled task's finally blocks run in its own thread

        else:

            def job():  # type: ignore[no-untyped-def]
                try:
                    return generation, fn(*args)
                except Exception as exc:
                    return generation, _Failure(exc)

        worker = _Worker(job, generator=inspect.isgeneratorfunction(fn))
        worker.signals.returned.connect(self._on_returned)
        worker.signals.yielded.connect(self._on_yielded)
        worker.signals.finished.connect(self._on_finished)
        self._worker = worker
        self._live += 1
        if self._live == 1:
            self.busy_changed.emit(True)
        worker.start(dedicated=self.dedicated)

    def cancel(self) -> None:
        """Ask the running task to stop at its next yield; drop whatever it still sends.
        The runner stays busy until the task's thread is done with it."""
        if self._worker is not None:
            self._worker.quit()
        self._worker = None
        self._generation += 1

    @Slot()
    def _on_finished(self) -> None:
        self._live -= 1
        if self._live == 0:
            self.busy_changed.emit(False)

    @Slot(object)
    def _on_yielded(self, item: tuple[int, Any]) -> None:
        generation, progress = item
        callback = self._callbacks.get("progress")
        if generation == self._generation and callback is not None:
            callback(progress)

    @Slot(object)
    def _on_returned(self, item: tuple[int, Any] | None) -> None:
        if item is None:  # a cancelled generator returns nothing
            return
        generation, result = item
        if generation != self._generation:
            return
        self._worker = None
        if isinstance(result, _Failure):
            callback = self._callbacks.get("error")
            if callback is None:
                raise result.error
            callback(result.error)
        else:
            self._callbacks["result"](result)  # type: ignore[misc]


PROGRESS_EVERY_SECONDS = 0.05  # a worker's progress reaches the GUI at most this often


def paced(steps: Iterator[Any], seconds: float = PROGRESS_EVERY_SECONDS) -> Iterator[Any]:
    """Worker side: the items `steps` yields, at most one per `seconds`, then its result
    (`yield from paced(...)`). Each item a worker yields is a queued call on the GUI thread:
    measuring a training model's history yielded about a thousand in a second, and the
    window drew its progress bar that often while a selection waited. For progress only:
    items in between are dropped (a stop is noticed within `seconds`)."""
    last = 0.0
    try:
        while True:
            try:
                item = next(steps)
            except StopIteration as done:
                return done.value
            now = time.monotonic()
            if now - last >= seconds:
                last = now
                yield item
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()


def run_until(done: Callable[[], bool], timeout_ms: int, poll_ms: int = 10) -> bool:
    """Run the event loop until `done()` (checked every `poll_ms`) or `timeout_ms` passed;
    whether `done()` became true. Between checks the loop waits in Qt's dispatcher: spinning
    on processEvents() would hold the GIL that workers need."""
    clock = QElapsedTimer()
    clock.start()
    loop = QEventLoop()

    def check() -> None:
        if done() or clock.elapsed() >= timeout_ms:
            loop.quit()

    timer = QTimer(interval=poll_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return done()


def wait_for_workers(timeout_ms: int = 10_000) -> bool:
    """Block until every worker has finished, in the pool or in a thread of its own
    (closing the window, tests)."""
    clock = QElapsedTimer()
    clock.start()
    with gui_blocked():  # a worker at its pause points goes on at once (gui_gate.py)
        if not _DedicatedThread.wait_all(timeout_ms):
            return False
        return QThreadPool.globalInstance().waitForDone(max(0, timeout_ms - clock.elapsed()))
