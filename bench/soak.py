"""Soak (not a test): train the tied example with the window live for a long time, and watch
memory and the GUI thread.

    .venv/bin/python bench/soak.py [--minutes 10] [--every 30]     (make soak MINUTES=10)

The window (offscreen) shows `2.weight` with its gradient and per-use panels, the graph tab
is built once, and Train runs until the time is up, with a selection changed every few
seconds as a person would. Every `--every` seconds it prints: steps taken, steps per second,
resident memory (RSS), and the GUI thread's longest stall in that period (how late a 10 ms
timer fired). At the end: memory growth after the warm-up (the first two periods, when
torch's caches and the optimizer's state fill), and the longest stall.

Targets (issue 12): flat memory after warm-up (growth under 5% of the warmed-up RSS), and
no stall over 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TICK_MS = 10
TARGET_STALL_MS = 100
TARGET_GROWTH = 0.05
WARM_UP_PERIODS = 2


def rss_mb() -> float:
    """Resident memory of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds per printed row")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer

    from netexplorer.ui.app import make_app
    from netexplorer.ui.main_window import MainWindow

    make_app()
    window = MainWindow()
    window.resize(1500, 950)
    window.open_source_now("example:tied")
    window.document.select("2.weight")
    window.show()
    window.set_view("graph")
    window.wait_idle(30_000)
    window.set_view("heatmap")
    session = window.document.session
    session.run("backward")  # the per-use panels exist from the start
    window.wait_idle()
    paths = itertools.cycle(["2.weight", "0.weight", "4.bias", "6.weight", "2.weight"])

    clock = QElapsedTimer()
    last = [0]
    longest = [0]

    def tick() -> None:
        now = clock.elapsed()
        longest[0] = max(longest[0], now - last[0] - TICK_MS)
        last[0] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(TICK_MS)
    ticker.timeout.connect(tick)
    selector = QTimer()
    selector.setInterval(4000)
    selector.timeout.connect(lambda: window.document.select(next(paths)))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"soak: {args.minutes:g} min of training the tied example, window live; "
          f"{os.cpu_count()} CPUs, load average {load}")  # fmt: skip
    print(f"{'minute':>7} {'steps':>9} {'steps/s':>8} {'RSS MB':>8} {'longest stall ms':>17}")
    clock.start()
    ticker.start()
    selector.start()
    window.controls.trigger("train")
    rows: list[tuple[float, int, float, float, int]] = []
    loop = QEventLoop()
    start = time.monotonic()
    steps_before = session.engine.steps_taken
    while time.monotonic() - start < args.minutes * 60:
        QTimer.singleShot(int(args.every * 1000), loop.quit)
        longest[0] = 0
        loop.exec()
        steps = session.engine.steps_taken
        minute = (time.monotonic() - start) / 60
        rate = (steps - steps_before) / args.every
        steps_before = steps
        rows.append((minute, steps, rate, rss_mb(), longest[0]))
        print(
            f"{minute:7.2f} {steps:9d} {rate:8.0f} {rows[-1][3]:8.1f} {longest[0]:17d}", flush=True
        )
    selector.stop()
    session.stop()
    window.wait_idle()
    ticker.stop()
    window.close()

    warm = rows[WARM_UP_PERIODS:] or rows
    growth = (warm[-1][3] - warm[0][3]) / warm[0][3]
    stall = max(r[4] for r in rows)
    print(
        f"memory after warm-up: {warm[0][3]:.1f} MB -> {warm[-1][3]:.1f} MB "
        f"({growth:+.1%}; target under {TARGET_GROWTH:.0%}): "
        f"{'ok' if growth < TARGET_GROWTH else 'OVER TARGET'}"
    )
    print(
        f"longest GUI stall: {stall} ms (target under {TARGET_STALL_MS} ms): "
        f"{'ok' if stall < TARGET_STALL_MS else 'OVER TARGET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
