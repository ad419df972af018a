"""Benchmark (not a test): a 7B-shaped model on the meta device, structure without memory.

    .venv/bin/python bench/meta.py [--runs N]

The model is `netexplorer.example_nets:llama_7b` (LLaMA-7B's names and shapes: 32 layers of
width 4096, 6.7 billion parameters, 27 GB in float32), which builds itself on the meta
device. Medians of N runs, each in a fresh interpreter, of:

- time to the tree (`open_source` of the factory: import torch, build on meta, walk the
  module tree, find ties), against the floor: importing torch and building the same model on
  the meta device with nothing else (`LlamaShaped()` under `torch.device("meta")`);
- time to the graph (`graph_for_tree`: the recorded forward pass on the meta device, the
  graph data, and the window's first view laid out), against the floor: the same forward
  pass on the meta device, nothing recorded;
- peak resident memory of the whole run (the model's 27 GB are never allocated).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # first statement: child figures count from interpreter start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from report import figure  # noqa: E402

SPEC = "netexplorer.example_nets:llama_7b"
TARGET_TREE_S = 5.0
TARGET_GRAPH_S = 2.0


def child_tree() -> dict:
    from netexplorer.core.sources import open_source

    tree = open_source(SPEC)
    tree_s = time.perf_counter() - START
    from netexplorer.core.graph import graph_for_tree
    from netexplorer.core.layout import default_node_size
    from netexplorer.ui.graph.tasks import Screen, default_layout

    start = time.perf_counter()
    graph = graph_for_tree(tree)
    default_layout(graph, default_node_size, Screen(1000, 560))
    graph_s = time.perf_counter() - start
    return {
        "tree": tree_s,
        "graph": graph_s,
        "parameters": tree.total_parameters,
        "calls": sum(1 for n in graph.nodes if n.path is not None),
        "rss_mb": common.peak_rss_mb(),
    }


def child_floor() -> dict:
    import torch

    from netexplorer.example_nets import LlamaShaped

    with torch.device("meta"):
        model = LlamaShaped()
    build_s = time.perf_counter() - START
    tokens = torch.randint(0, 32000, (2, 8)).to("meta")
    start = time.perf_counter()
    with torch.no_grad():
        model(tokens)
    forward_s = time.perf_counter() - start
    return {"tree": build_s, "graph": forward_s}


def run_child(kind: str) -> dict:
    common.compile_sources()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_tree() if args.child == "tree" else child_floor()))
        return 0
    ours: list[dict] = []
    floors: list[dict] = []
    for _ in range(args.runs):  # interleaved: the drift of a shared machine hits both
        ours.append(run_child("tree"))
        floors.append(run_child("floor"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{SPEC}: {ours[0]['parameters']:,} parameters, {ours[0]['calls']} module calls; "
        f"medians of {args.runs} fresh interpreters; load average {load}"
    )

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    tree = median(ours, "tree")
    figure(
        "meta",
        "7B-shaped model on meta: time to tree (from interpreter start)",
        tree,
        "s",
        floor_name="import torch + build on meta",
        floor=median(floors, "tree"),
        target=f"< {TARGET_TREE_S:.0f} s",
        ok=tree < TARGET_TREE_S,
    )
    graph = median(ours, "graph")
    figure(
        "meta",
        "7B-shaped model on meta: time to graph (recorded forward + first view)",
        graph,
        "s",
        floor_name="forward on meta, nothing recorded",
        floor=median(floors, "graph"),
        target=f"< {TARGET_GRAPH_S:.0f} s",
        ok=graph < TARGET_GRAPH_S,
    )
    figure("meta", "7B-shaped model on meta: peak memory", median(ours, "rss_mb"), "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
