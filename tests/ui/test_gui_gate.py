"""The GUI gate: a worker that asks at its pause points waits while the GUI thread works,
and a GUI thread that never rests slows such a worker without stopping it."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QTimer

from netexplorer.ui import gui_gate as gate_module
from netexplorer.ui.app import make_app
from netexplorer.ui.gui_gate import gui_gate, wait_for_gui


def busy_python(seconds: float) -> None:
    """The GUI thread working in Python (holding the GIL, as drawing code does)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(200))


def test_the_application_has_a_gate_on_qts_own_dispatcher(qapp):
    make_app()
    gate = gui_gate()
    assert gate is not None and gate.app is qapp
    assert gate is gui_gate()  # one per application


def test_a_worker_waits_while_the_gui_thread_works_and_goes_on_when_it_sleeps(qapp, qtbot):
    gate = gui_gate()
    working = threading.Event()
    finished_work = threading.Event()
    seen: dict[str, float | bool] = {}

    def gui_work() -> None:  # a slot that works 20 ms (less than BUSY_WAIT_SECONDS)
        working.set()
        busy_python(0.02)
        finished_work.set()

    def worker() -> None:
        working.wait(5)
        start = time.perf_counter()
        wait_for_gui()
        seen["waited"] = time.perf_counter() - start
        seen["work_done_first"] = finished_work.is_set()

    thread = threading.Thread(target=worker)
    thread.start()
    QTimer.singleShot(0, gui_work)  # a posted call, as a signal from a worker is
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=5000)
    assert seen["work_done_first"], "the worker went on while the GUI thread was working"
    assert seen["waited"] < gate_module.BUSY_WAIT_SECONDS + 0.5
    qtbot.waitUntil(lambda: not gate.gui_busy, timeout=2000)  # the GUI thread went to sleep


def test_a_gui_thread_that_never_rests_slows_a_worker_and_does_not_stop_it(qapp, qtbot):
    stop = threading.Event()
    rounds: list[float] = []

    def worker() -> None:
        while not stop.is_set():
            wait_for_gui()
            rounds.append(time.perf_counter())
            time.sleep(0.001)

    busy: dict[str, float] = {}

    def gui_work() -> None:  # one slot of 0.4 s: the GUI thread never asleep meanwhile
        busy["start"] = time.perf_counter()
        busy_python(0.4)
        busy["end"] = time.perf_counter()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        QTimer.singleShot(0, gui_work)
        qtbot.waitUntil(lambda: "end" in busy, timeout=5000)
        during = [t for t in rounds if busy["start"] <= t <= busy["end"]]
        # it waited BUSY_WAIT_SECONDS, ran RUN_SECONDS, waited again...: about a quarter
        # of its rounds, never none
        assert len(during) >= 3
    finally:
        stop.set()
        thread.join(5)


def test_closing_waits_for_workers_without_their_giving_way(qapp, qtbot):
    """While the GUI thread blocks until workers finish (closing the window), it is neither
    asleep nor working in its dispatcher's terms: workers must not wait for it at their pause
    points (each step longer than RUN_SECONDS would wait BUSY_WAIT_SECONDS more)."""
    from netexplorer.ui.workers import TaskRunner, wait_for_workers

    steps, step_seconds = 20, 0.015
    assert step_seconds > gate_module.RUN_SECONDS

    def work():
        for _ in range(steps):  # each step first asks the gate (workers.py)
            time.sleep(step_seconds)
            yield None
        return "done"

    runner = TaskRunner(dedicated=True)
    blocked: dict[str, float] = {}

    def close_like_the_window() -> None:  # in a slot: the GUI thread is awake
        runner.run(work, on_result=lambda _r: None)
        start = time.perf_counter()
        assert wait_for_workers(10_000)
        blocked["seconds"] = time.perf_counter() - start

    QTimer.singleShot(0, close_like_the_window)
    qtbot.waitUntil(lambda: "seconds" in blocked, timeout=10_000)
    alone = steps * step_seconds  # 0.3 s; giving way each step: 0.9 s
    assert blocked["seconds"] < alone + steps * gate_module.BUSY_WAIT_SECONDS / 2
