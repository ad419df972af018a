"""Benchmark (not a test): building and laying out the graph view of deep models.

    .venv/bin/python bench/graph.py [--sizes 200 2000] [--repeats R]

The models are deep stacks of small residual blocks (`x + b(relu(a(x)))`: four module calls
per block), of about 200 and 2,000 module calls. For each size, medians over R runs of:

- the graph: one recorded forward pass and the graph data (`graph_for_tree`);
- its layout with every box open (`layout_view(graph.view())`), and at the default depth;
- its layout with every box open when no two blocks are alike (the layout reuses the
  arrangement of identical boxes; this is the case where it cannot);
- the total the window waits for: graph plus layout with every box open (target: under 1 s
  for 2,000 calls on this 2-core machine).

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

TARGET_SECONDS = 1.0  # graph and layout of 2,000 module calls
TARGET_CALLS = 2000
CALLS_PER_BLOCK = 4  # the block itself, a, relu, b


@dataclass
class Model:
    """A built model and its tree; the graph is kept from the last run for the layouts."""

    calls: int
    tree: Any
    graph: Any = None


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


MEASUREMENTS: dict[str, Callable[[Model], float]] = {
    "graph (recorded forward pass + data)": measure_graph,
    "layout, every box open": measure_layout_open,
    "layout, default depth": measure_layout_default_depth,
    "layout, every box open, no two blocks alike": measure_layout_nothing_alike,
    "total: graph + layout, every box open": measure_total,
}


def run(model: Model, repeats: int) -> dict[str, float]:
    """Median seconds of each measurement, runs interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    for _ in range(repeats):
        for name, measure in MEASUREMENTS.items():
            samples[name].append(measure(model))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, TARGET_CALLS])
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (median)")
    parser.add_argument(
        "--cpu", action="store_true", help="CPU time of this process instead of wall time"
    )
    args = parser.parse_args(argv)
    global clock
    if args.cpu:
        clock = time.process_time

    import networkx
    import torch

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{'CPU' if args.cpu else 'wall'} time, median of {args.repeats} runs; "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), networkx {networkx.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    for size in args.sizes:
        model = make_model(size)
        medians = run(model, args.repeats)
        view = model.graph.view()
        print(
            f"{model.calls} module calls ({len(view.nodes)} nodes and {len(view.boxes)} boxes "
            f"open, {len(view.edges)} edges):"
        )
        width = max(len(name) for name in medians)
        for name, seconds in medians.items():
            print(f"  {name:<{width}}  {seconds * 1000:8.1f} ms")
        if model.calls >= TARGET_CALLS:
            total = medians["total: graph + layout, every box open"]
            verdict = "ok" if total < TARGET_SECONDS else "OVER TARGET"
            print(f"  target: under {TARGET_SECONDS:.0f} s for {TARGET_CALLS:,} calls: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
