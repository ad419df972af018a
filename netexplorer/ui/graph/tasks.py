"""The Graph tab's worker tasks: plain data in, plain data out, run off the GUI thread.

`build_graph` records the model's forward pass and lays the graph out; `lay_out` lays out
what a `Collapse` shows of a graph (collapsing, expanding, the depth control);
`contribution_norms` reads the per-use gradients of shared tensors from the pass engine.
`LaidOut` is what a task hands back to the Graph tab (panel.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.graph import Graph, GraphNode, GraphView, graph_for_tree
from ...core.layout import GraphLayout, layout_view
from ...core.tree import ModuleTree
from .items import canonical_path, edge_path


@dataclass(frozen=True)
class Collapse:
    """Which containers are shut: every one at `depth` or deeper, except the paths in
    `expanded`, plus the paths in `collapsed` (the boxes a user clicked)."""

    depth: int | None
    collapsed: frozenset[str] = frozenset()
    expanded: frozenset[str] = frozenset()

    def view(self, graph: Graph) -> GraphView:
        return graph.view(self.collapsed, depth=self.depth, expanded=self.expanded)


@dataclass
class LaidOut:
    """A graph, what is visible of it, and where everything goes."""

    graph: Graph
    view: GraphView
    layout: GraphLayout
    collapse: Collapse
    node_tensors: dict[str, tuple[str, ...]]  # visible id -> parameters it stands for
    edge_paths: list[Any]  # per layout edge of two points or more: its QPainterPath
    seconds: float = 0.0
    input_spec: Any = None


def build_graph(
    tree: ModuleTree,
    input_spec: Any,
    seed: int,
    lock: Any,
    node_size: Callable[[GraphNode], tuple[float, float]],
) -> LaidOut:
    """Worker task: the graph (its forward pass under the pass engine's lock) and its
    layout at the graph's default depth."""
    start = time.perf_counter()
    with lock if lock is not None else nullcontext():
        graph = graph_for_tree(tree, seed=seed, input_spec=input_spec)
    laid = lay_out(tree, graph, Collapse(graph.default_depth()), node_size)
    laid.input_spec = input_spec
    laid.seconds = time.perf_counter() - start
    return laid


def lay_out(
    tree: ModuleTree,
    graph: Graph,
    collapse: Collapse,
    node_size: Callable[[GraphNode], tuple[float, float]],
) -> LaidOut:
    """Worker task: what `collapse` shows of `graph`, laid out."""
    start = time.perf_counter()
    view = collapse.view(graph)
    layout = layout_view(view, node_size)
    paths = [edge_path(route.points) for route in layout.edges if len(route.points) > 1]
    laid = LaidOut(graph, view, layout, collapse, node_tensors(tree, graph, view), paths)
    laid.seconds = time.perf_counter() - start
    return laid


def node_tensors(tree: ModuleTree, graph: Graph, view: GraphView) -> dict[str, tuple[str, ...]]:
    """Visible node id -> the parameters it uses (a collapsed box: everything inside),
    each tensor once, named by the first path of its tie group."""
    out: dict[str, dict[str, None]] = {}
    for t in tree.tensors.values():
        if t.kind != "parameter":
            continue
        key = canonical_path(tree, t)
        for node_id in graph.nodes_using(t.path):
            shown = view.representative.get(node_id)
            if shown is not None:
                out.setdefault(shown, {})[key] = None
    return {k: tuple(v) for k, v in out.items()}


def contribution_norms(engine: Any) -> dict[str, list[tuple[str, int, float]]]:
    """Worker task: parameter path -> (site, call, norm of the gradient through that use)."""
    out: dict[str, list[tuple[str, int, float]]] = {}
    done: dict[int, list[tuple[str, int, float]]] = {}
    for path, uses in engine.contributions.items():  # waits for a running action
        if id(uses) not in done:  # every path of a tied tensor has the same list
            done[id(uses)] = [(c.site, c.call, float(np.linalg.norm(c.values))) for c in uses]
        out[path] = done[id(uses)]
    return out
