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
