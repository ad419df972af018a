"""The training worker gives way to the GUI: after a selection it waits between steps until
the selection is drawn, then until the first frame that brings the new tensor is drawn too
(drawing while the training thread holds the GIL took two to three times as long), and never
longer than HOLD_SECONDS."""

from __future__ import annotations

import threading
import time

from netexplorer.ui import session
from netexplorer.ui.session import FramePacer


def in_thread(work) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        work()
        took.append(time.perf_counter() - start)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, took


def test_a_held_worker_waits_until_released():
    pacer = FramePacer(1 / 30)
    pacer.wait_free()  # not held: at once
    pacer.hold()
    thread, took = in_thread(pacer.wait_free)
    time.sleep(0.05)
    assert thread.is_alive()  # still waiting for the GUI
    pacer.release()
    thread.join(1)
    assert not thread.is_alive() and 0.04 < took[0] < session.HOLD_SECONDS


def test_the_first_frame_after_a_hold_is_drawn_before_the_worker_goes_on():
    pacer = FramePacer(1 / 30)
    pacer.hold()
    pacer.release()
    pacer.sent(time.monotonic())  # the frame with the new tensor goes to the GUI
    thread, _took = in_thread(pacer.frame_sent)
    time.sleep(0.05)
    assert thread.is_alive()
    pacer.drawn()
    thread.join(1)
    assert not thread.is_alive()
    # later frames do not wait
    pacer.sent(time.monotonic())
    start = time.perf_counter()
    pacer.frame_sent()
    assert time.perf_counter() - start < 0.01


def test_a_gui_that_never_releases_slows_training_but_never_stops_it(monkeypatch):
    monkeypatch.setattr(session, "HOLD_SECONDS", 0.05)
    pacer = FramePacer(1 / 30)
    pacer.hold()
    start = time.perf_counter()
    pacer.wait_free()
    pacer.sent(time.monotonic())
    pacer.frame_sent()
    assert time.perf_counter() - start < 0.5


def test_a_workers_progress_reaches_the_gui_at_most_twenty_times_a_second():
    """workers.paced: a measurement yielding a thousand progress items in a second sends a
    few (each is a queued call on the GUI thread), and its result still comes back."""
    from netexplorer.ui.workers import paced

    closed = []

    def measuring():
        try:
            for i in range(1000):
                time.sleep(0.0002)
                yield i / 1000, f"tensor {i}"
            return "the table"
        finally:
            closed.append(True)

    def task():
        return (yield from paced(measuring(), seconds=0.05))

    steps, sent = task(), []
    try:
        while True:
            sent.append(next(steps))
    except StopIteration as done:
        assert done.value == "the table"
    assert sent[0] == (0.0, "tensor 0") and 1 <= len(sent) <= 20
    stopped = paced(measuring(), seconds=0.05)
    next(stopped)
    stopped.close()  # a cancelled worker closes it: the measurement is closed too
    assert closed == [True, True]
