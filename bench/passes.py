"""Benchmark (not a test): training speed of the pass engine on the tied example.

    .venv/bin/python bench/passes.py [--steps N] [--rounds R]

Prints training steps per second (zero grad, forward, backward, optimizer step, and the
plain-data result the window receives) of `example:tied`:

- plain PyTorch: the same loop written by hand, no engine (the floor everything is compared to);
- core alone, without recording;
- core alone, with per-use contribution recording;
- the recording overhead (without / with; target: at most 2x);
- the window live: training from the Train button of the real window (offscreen), the value,
  gradient and per-use heatmaps of 2.weight refreshing as it trains; its speed against core
  alone with recording (target: at least half), the frames the window drew, and the longest
  stall of the GUI thread, measured as the lateness of a 10 ms QTimer (target: under 50 ms).

Each figure is one `measure_*` function in MEASUREMENTS: it sets up and returns a runner,
`run(n)` doing n training steps. The window-live figure and the longest GUI-thread stall (which
need the window) slot in as further functions there. Runners take turns in short chunks of N
steps for R rounds and each figure is the median over its chunks, so that the load of a
shared machine falls on all figures alike.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import figure

EXAMPLE = "example:tied"
LOSS = "mse"  # the sum loss has no minimum: trained long enough, it overflows
OPTIMIZER = "sgd"
WARMUP_STEPS = 50
Runner = Callable[[int], None]  # run(n): n training steps
RECORDING_OVERHEAD_TARGET = 2.0


def make_engine(record: bool):  # -> PassEngine
    from netexplorer.core.passes import PassEngine
    from netexplorer.core.sources import open_source

    engine = PassEngine(open_source(EXAMPLE), seed=0)
    engine.configure(loss_name=LOSS)
    engine.configure(optimizer_name=OPTIMIZER)
    engine.configure(record=record)
    return engine


def engine_runner(engine) -> Runner:
    def run(steps: int) -> None:
        for _ in engine.train(steps):
            pass

    return run


def measure_plain_pytorch() -> Runner:
    """The hand-written loop: what a notebook would run."""
    import torch
    from torch.nn import functional as F

    from netexplorer.examples import EXAMPLES

    example = EXAMPLES[EXAMPLE.removeprefix("example:")]
    net = example.build(0)
    x = example.default_input.make(0)
    target = torch.randn(x.shape[0], 1, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    def run(steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = F.mse_loss(net(x), target)
            loss.backward()
            optimizer.step()
            float(loss.detach())

    return run


def measure_core_without_recording() -> Runner:
    return engine_runner(make_engine(record=False))


def measure_core_with_recording() -> Runner:
    return engine_runner(make_engine(record=True))


MEASUREMENTS: dict[str, Callable[[], Runner]] = {
    "plain PyTorch loop": measure_plain_pytorch,
    "core alone, without recording": measure_core_without_recording,
    "core alone, with contribution recording": measure_core_with_recording,
}


def run(steps: int, rounds: int) -> dict[str, float]:
    """Median steps/s of each measurement over `rounds` chunks of `steps` steps."""
    runners = {name: setup() for name, setup in MEASUREMENTS.items()}
    for runner in runners.values():
        runner(WARMUP_STEPS)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(steps)
            rates[name].append(steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


WINDOW_SECONDS = 6.0
TICK_MS = 10
WINDOW_SPEED_TARGET = 0.5
STALL_TARGET_MS = 50.0


def measure_window_live(seconds: float = WINDOW_SECONDS) -> dict[str, float]:
    """Train from the window's Train button for `seconds`; steps/s, frames/s, stalls."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer

    from netexplorer.ui.app import make_app
    from netexplorer.ui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.open_source_now(EXAMPLE)
    window.document.select("2.weight")
    window.show()
    window.wait_idle()  # torch's first-step imports run in the background (session warm-up)
    session = window.document.session
    session.configure(loss_name=LOSS, optimizer_name=OPTIMIZER)
    session.run("backward")  # the per-use views (with their heatmaps) exist from the start
    window.wait_idle()
    QTimer.singleShot(500, app.quit)  # let the new views lay out and paint once, unmeasured
    app.exec()

    frames = []
    window.document.tensor_data_changed.connect(lambda _data: frames.append(1))
    clock = QElapsedTimer()
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    steps_before = session.engine.steps_taken
    clock.start()
    timer.start()
    window.controls.trigger("train")
    QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec()
    timer.stop()
    session.stop()
    window.wait_idle()
    steps = session.engine.steps_taken - steps_before
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    window.close()
    return {
        "steps_per_second": steps / seconds,
        "frames_per_second": len(frames) / seconds,
        "longest_stall_ms": max(gaps) - TICK_MS if gaps else float("nan"),
        "median_tick_ms": statistics.median(gaps) if gaps else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per chunk")
    parser.add_argument("--rounds", type=int, default=60, help="chunks per figure (median)")
    args = parser.parse_args(argv)

    import torch

    print(
        f"{EXAMPLE}, loss {LOSS}, optimizer {OPTIMIZER}; median of {args.rounds} chunks of "
        f"{args.steps} steps; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    medians = run(args.steps, args.rounds)
    width = max(len(name) for name in medians)
    for name, value in medians.items():
        print(f"  {name:<{width}}  {value:8.0f} steps/s")
    ratio = (
        medians["core alone, without recording"]
        / medians["core alone, with contribution recording"]
    )
    verdict = "ok" if ratio <= RECORDING_OVERHEAD_TARGET else "OVER TARGET"
    print(
        f"  recording overhead: {ratio:.2f}x slower "
        f"(target at most {RECORDING_OVERHEAD_TARGET:.0f}x: {verdict})"
    )
    engine_cost = medians["plain PyTorch loop"] / medians["core alone, without recording"]
    print(f"  engine without recording vs. plain PyTorch: {engine_cost:.2f}x slower")

    window = measure_window_live()
    after = run(args.steps, max(10, args.rounds // 3))  # the core again, right after
    core = statistics.mean(
        [medians["core alone, with contribution recording"], after[RECORDING_KEY]]
    )
    live = window["steps_per_second"]
    speed_verdict = "ok" if live >= WINDOW_SPEED_TARGET * core else "UNDER TARGET"
    stall = window["longest_stall_ms"]
    stall_verdict = "ok" if stall < STALL_TARGET_MS else "OVER TARGET"
    print(
        f"  window live (Train button, heatmaps refreshing): {live:8.0f} steps/s, "
        f"{window['frames_per_second']:.1f} frames/s"
    )
    print(
        f"  window live vs. core alone with recording ({core:.0f} steps/s, measured before "
        f"and after): {live / core:.2f} (target at least {WINDOW_SPEED_TARGET}: {speed_verdict})"
    )
    print(
        f"  longest GUI-thread stall while training: {stall:.0f} ms (a {TICK_MS} ms timer's "
        f"lateness; median tick {window['median_tick_ms']:.0f} ms; target under "
        f"{STALL_TARGET_MS:.0f} ms: {stall_verdict})"
    )
    figure(
        "passes",
        "training steps/s, core with per-use recording",
        medians[RECORDING_KEY],
        "steps/s",
        floor_name="core without recording",
        floor=medians["core alone, without recording"],
        target=f"recording costs <= {RECORDING_OVERHEAD_TARGET:.0f}x",
        ok=ratio <= RECORDING_OVERHEAD_TARGET,
    )
    figure(
        "passes",
        "training steps/s, core without recording",
        medians["core alone, without recording"],
        "steps/s",
        floor_name="plain PyTorch loop",
        floor=medians["plain PyTorch loop"],
    )
    figure(
        "passes",
        "training steps/s, window live (Train, heatmaps refreshing)",
        live,
        "steps/s",
        floor_name="core with recording",
        floor=core,
        target=f">= {WINDOW_SPEED_TARGET}x core",
        ok=live >= WINDOW_SPEED_TARGET * core,
    )
    figure(
        "passes",
        "longest GUI-thread stall while training",
        stall,
        "ms",
        target=f"< {STALL_TARGET_MS:.0f} ms",
        ok=stall < STALL_TARGET_MS,
    )
    return 0


RECORDING_KEY = "core alone, with contribution recording"


if __name__ == "__main__":
    sys.exit(main())
