"""Benchmark (not a test): building and laying out the graph view of deep models.

    .venv/bin/python bench/graph.py [--sizes 200 2000] [--repeats R] [--only window]
        [--screenshot STEM] [--switch-interval SECONDS]

The models are deep stacks of small residual blocks (`x + b(relu(a(x)))`: four module calls
per block), of about 200 and 2,000 module calls, and a 96-layer GPT (the tiny-gpt example
with 96 blocks, its embedding tied to its head: 965 module calls). For each, medians over R
runs of:

- the floor: the model's forward pass alone, without recording (the graph's forward pass
  records every call and follows every tensor: the ratio is its cost);

- the graph: one recorded forward pass and the graph data (`graph_for_tree`);
- its layout with every box open (`layout_view(graph.view())`), and at the default depth;
- the window's first view: the deepest view that fits a 1000 x 560 canvas at a readable
  zoom, alike blocks folded if need be, wrapped into rows (`tasks.default_layout`);
- its layout with every box open when no two blocks are alike (the layout reuses the
  arrangement of identical boxes; this is the case where it cannot);
- the total the window waits for: graph plus layout with every box open (target: under 1 s
  for 2,000 calls on this 2-core machine);
- the window (offscreen): the GUI thread's longest stall, measured by how late a 5 ms QTimer
  fires, from the moment the Graph tab is shown until its graph is drawn and the window is
  idle again, and from Expand all until every box is drawn open and the window is idle. The
  graph and its layout run in a worker; what the GUI thread does is making the items of the
  finished scene, indexing and painting them, drawing the overview and taking the retired
  scene apart (target: under 50 ms, about three frames at 60 Hz, so that the window stays
  responsive).

Each figure is one `measure_*` function (model -> seconds of one run) listed in MEASUREMENTS,
so that a figure needing the window (how long the GUI thread stalls while the layout runs on
a worker) slots in as one more function there. Runs are interleaved so that the drift of a
shared machine hits all figures alike; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import figure

TARGET_SECONDS = 1.0  # graph and layout of 2,000 module calls
TARGET_CALLS = 2000
TARGET_STALL_SECONDS = 0.050  # the GUI thread's longest stall while the graph is built
TICK_MS = 5
SETTLE_MS = 500  # after the graph is shown, still measured: what it leaves to do
CALLS_PER_BLOCK = 4  # the block itself, a, relu, b


@dataclass
class Model:
    """A built model and its tree; the graph is kept from the last run for the layouts."""

    calls: int
    tree: Any
    graph: Any = None


def make_gpt(layers: int) -> Model:
    """The tiny-gpt example with `layers` blocks (tok_emb tied to head)."""
    import torch

    from netexplorer.core.inputs import InputSpec
    from netexplorer.core.tree import tree_from_module
    from netexplorer.example_nets import TinyGPT

    torch.manual_seed(0)
    tree = tree_from_module(TinyGPT(layers=layers))
    tree.default_input = InputSpec((2, 8), "tokens", high=32)
    model = Model(0, tree)
    measure_graph(model)
    model.calls = sum(1 for n in model.graph.nodes if n.path is not None)
    return model


def make_model(calls: int) -> Model:
    """A stack of residual blocks with about `calls` module calls in one forward pass."""
    import torch
    from torch import nn

    from netexplorer.core.inputs import InputSpec
    from netexplorer.core.tree import tree_from_module

    class Residual(nn.Module):
        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.a = nn.Linear(width, width)
            self.act = nn.ReLU()
            self.b = nn.Linear(width, width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.b(self.act(self.a(x)))

    torch.manual_seed(0)
    blocks = max(1, round((calls - 1) / CALLS_PER_BLOCK))
    tree = tree_from_module(nn.Sequential(*(Residual() for _ in range(blocks))))
    tree.default_input = InputSpec((2, 8))
    model = Model(1 + CALLS_PER_BLOCK * blocks, tree)
    measure_graph(model)
    return model


clock = time.perf_counter  # --cpu: time.process_time, less at the mercy of other processes


def timed(work: Callable[[], Any]) -> float:
    start = clock()
    work()
    return clock() - start


def measure_graph(model: Model) -> float:
    from netexplorer.core.graph import graph_for_tree

    def build() -> None:
        model.graph = graph_for_tree(model.tree, seed=0)

    return timed(build)


def measure_forward_floor(model: Model) -> float:
    """The floor: one forward pass of the same model on the same input, nothing recorded."""
    import torch

    batch = model.tree.default_input.make(0)
    module = model.tree.module
    with torch.no_grad():
        return timed(lambda: module(batch))


def measure_first_view(model: Model) -> float:
    from netexplorer.core.layout import default_node_size
    from netexplorer.ui.graph.tasks import Screen, default_layout

    screen = Screen(1000, 560)
    return timed(lambda: default_layout(model.graph, default_node_size, screen))


def measure_layout_open(model: Model) -> float:
    from netexplorer.core.layout import layout_view

    return timed(lambda: layout_view(model.graph.view()))


def measure_layout_default_depth(model: Model) -> float:
    from netexplorer.core.layout import layout_view

    graph = model.graph
    return timed(lambda: layout_view(graph.view(depth=graph.default_depth())))


def measure_layout_nothing_alike(model: Model) -> float:
    from netexplorer.core.layout import default_node_size, layout_view

    def unique_size(node: Any) -> tuple[float, float]:
        w, h = default_node_size(node)
        return w + int(node.id[1:]) % 997 / 1000 if node.id[1:].isdigit() else w, h

    return timed(lambda: layout_view(model.graph.view(), node_size=unique_size))


def measure_total(model: Model) -> float:
    return measure_graph(model) + measure_layout_open(model)


def window_stall(model: Model, expand_all: bool) -> float:
    """The longest the GUI thread went without running a 5 ms timer while the Graph tab
    builds, lays out and draws the model's graph (at its default depth), or, with
    `expand_all`, while it lays out and draws it again with every box open; in both cases
    until the window is idle again (`SETTLE_MS` after the graph is shown: the retired
    scene taken apart, the overview drawn, the first paint done).

    The panel sits in a tab of a window already on screen, as in the app, so that the
    figure is not the making of a new top-level window."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEvent, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QTabWidget, QWidget

    from netexplorer.ui.app import make_app
    from netexplorer.ui.document import Document
    from netexplorer.ui.graph import GraphPanel
    from netexplorer.ui.session import PassSession

    make_app()
    PassSession._warmed = True  # the optimizer warm-up of a pass session is not measured here
    document = Document()
    document.set_tree(model.tree)
    window = QTabWidget()
    window.resize(1200, 800)
    window.addTab(QWidget(), "Tree")
    panel = GraphPanel(document)
    window.addTab(panel, "Graph")
    loop = QEventLoop()
    panel.graph_shown.connect(loop.quit)

    def settle() -> None:
        QTimer.singleShot(SETTLE_MS, loop.quit)
        loop.exec()

    clock = QElapsedTimer()
    gaps: list[int] = []
    last = [0]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    window.show()
    settle()
    if expand_all:
        window.setCurrentWidget(panel)
        loop.exec()  # built at the default depth
        settle()  # measured from here
    clock.start()
    timer.start()
    if expand_all:
        panel.expand_all()
    else:
        window.setCurrentWidget(panel)  # starts the build
    loop.exec()
    settle()
    timer.stop()
    window.close()
    window.deleteLater()
    document.deleteLater()
    # destroyed now, not in the next run's measured window
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return max(max(gaps, default=0) - TICK_MS, 0) / 1000


def save_screenshots(model: Model, stem: str) -> list[str]:
    """The Graph tab of `model` as PNGs: at its default depth (STEM_default.png) and after
    Expand all (STEM_expanded.png), each once the window is idle, overview included."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer

    from netexplorer.ui.app import make_app
    from netexplorer.ui.document import Document
    from netexplorer.ui.graph import GraphPanel

    make_app()
    document = Document()
    document.set_tree(model.tree)
    panel = GraphPanel(document)
    panel.resize(1200, 800)
    loop = QEventLoop()
    panel.graph_shown.connect(loop.quit)
    saved = []
    for name, action in (("default", panel.show), ("expanded", panel.expand_all)):
        action()
        loop.exec()
        QTimer.singleShot(SETTLE_MS, loop.quit)
        loop.exec()
        path = f"{stem}_{name}.png"
        panel.grab().save(path)
        saved.append(path)
    panel.close()
    panel.deleteLater()
    document.deleteLater()
    return saved


def measure_window_stall(model: Model) -> float:
    return window_stall(model, expand_all=False)


def measure_window_stall_expand_all(model: Model) -> float:
    return window_stall(model, expand_all=True)


def measure_idle_stall(model: Model) -> float:
    """The floor of the window's stalls: the longest gap of the same 5 ms timer in an idle
    window of the same kind, over one second."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QTabWidget, QWidget

    from netexplorer.ui.app import make_app

    make_app()
    window = QTabWidget()
    window.resize(1200, 800)
    window.addTab(QWidget(), "Tree")
    window.show()
    clock = QElapsedTimer()
    gaps: list[int] = []
    last = [0]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    clock.start()
    timer.start()
    QTimer.singleShot(1000, loop.quit)
    loop.exec()
    timer.stop()
    window.close()
    window.deleteLater()
    return max(max(gaps, default=0) - TICK_MS, 0) / 1000


MEASUREMENTS: dict[str, Callable[[Model], float]] = {
    "floor: the forward pass alone": measure_forward_floor,
    "window: idle (floor)": measure_idle_stall,
    "graph (recorded forward pass + data)": measure_graph,
    "layout, the window's first view": measure_first_view,
    "layout, every box open": measure_layout_open,
    "layout, default depth": measure_layout_default_depth,
    "layout, every box open, no two blocks alike": measure_layout_nothing_alike,
    "total: graph + layout, every box open": measure_total,
    "window: longest GUI-thread stall while the tab builds": measure_window_stall,
    "window: longest GUI-thread stall on Expand all": measure_window_stall_expand_all,
}


def run(model: Model, repeats: int, only: str = "") -> dict[str, float]:
    """Median seconds of each measurement (those whose name contains `only`), interleaved."""
    chosen = {name: f for name, f in MEASUREMENTS.items() if only in name}
    samples: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(repeats):
        for name, measure in chosen.items():
            samples[name].append(measure(model))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200, TARGET_CALLS])
    parser.add_argument(
        "--gpt", type=int, nargs="*", default=[96], help="layers of the GPT models measured"
    )
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (median)")
    parser.add_argument("--only", default="", help="only the figures whose name has this")
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="SECONDS",
        help="sys.setswitchinterval for the run (Python's default is 0.005): how often a "
        "worker running Python hands the GIL to the GUI thread",
    )
    parser.add_argument(
        "--screenshot",
        metavar="STEM",
        help="also save the Graph tab of the largest model as STEM_default.png and "
        "STEM_expanded.png",
    )
    parser.add_argument(
        "--cpu", action="store_true", help="CPU time of this process instead of wall time"
    )
    args = parser.parse_args(argv)
    global clock
    if args.cpu:
        clock = time.process_time
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    import networkx
    import torch

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{'CPU' if args.cpu else 'wall'} time, median of {args.repeats} runs; "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), networkx {networkx.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load}, "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms"
    )
    models = [lambda size=size: make_model(size) for size in args.sizes]
    models += [lambda layers=layers: make_gpt(layers) for layers in args.gpt]
    for make in models:
        model = make()
        medians = run(model, args.repeats, args.only)
        view = model.graph.view()
        what = f"{model.calls} calls"
        print(
            f"{what} ({len(view.nodes)} nodes and {len(view.boxes)} boxes open, "
            f"{len(view.edges)} edges):"
        )
        forward = medians.get("floor: the forward pass alone")
        idle = medians.get("window: idle (floor)")
        for name, seconds in medians.items():
            if name.startswith(("floor", "window: idle")):
                continue
            kwargs: dict[str, Any] = {}
            if name.startswith("graph") and forward is not None:
                kwargs = {"floor_name": "forward pass alone", "floor": forward}
            elif name.startswith("window") and idle is not None:
                kwargs = {"floor_name": "idle window", "floor": idle}
                kwargs |= {"target": "< 50 ms", "ok": seconds < TARGET_STALL_SECONDS}
            elif name.startswith("total") and (model.calls >= TARGET_CALLS or model.graph.folds()):
                kwargs = {"target": "< 1 s", "ok": seconds < TARGET_SECONDS}
            figure("graph", f"{name} ({what})", seconds, "s", **kwargs)
    if args.screenshot:
        print("saved", ", ".join(save_screenshots(model, args.screenshot)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
