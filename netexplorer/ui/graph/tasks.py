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

from ...core.graph import CONTAINER, Graph, GraphNode, GraphView, graph_for_tree
from ...core.layout import GraphLayout, layout_view
from ...core.tree import ModuleTree
from ..gui_gate import wait_for_gui
from .items import canonical_path, edge_path


@dataclass(frozen=True)
class Collapse:
    """Which containers are shut: every one at `depth` or deeper, except the paths in
    `expanded`, plus the paths in `collapsed` (the boxes a user clicked); and which runs of
    alike calls are open (`unfolded`: fold keys; the others are folded, "Block ×24")."""

    depth: int | None
    collapsed: frozenset[str] = frozenset()
    expanded: frozenset[str] = frozenset()
    unfolded: frozenset[str] = frozenset()

    def view(self, graph: Graph) -> GraphView:
        return graph.view(
            self.collapsed,
            depth=self.depth,
            expanded=self.expanded,
            fold=True,
            unfolded=self.unfolded,
        )

    def unfolding(self, graph: Graph, fold_key: str) -> Collapse:
        """This collapse with the runs of `fold_key` opened: each of their calls one node
        (a container shut), so that 96 blocks open to 96 nodes, not 96 open boxes."""
        calls = [graph.by_id[m] for f in graph.folds() if f.fold_key == fold_key for m in f.members]
        shut = {n.path for n in calls if n.kind == CONTAINER and n.path is not None}
        return Collapse(
            self.depth,
            self.collapsed | shut,
            self.expanded - shut,
            self.unfolded | {fold_key},
        )

    def revealing(self, graph: Graph, node_id: str) -> Collapse:
        """This collapse with whatever hides node `node_id` opened: the folds it (or a box
        around it) is in, and the boxes around it."""
        out = self
        fold_keys = {m: f.fold_key for f in graph.folds() for m in f.members}
        chain: list[GraphNode] = []
        walk: GraphNode | None = graph.by_id[node_id]
        while walk is not None:
            chain.append(walk)
            walk = graph.by_id.get(walk.parent) if walk.parent is not None else None
        for n in reversed(chain):  # outermost first: opening a fold shuts its calls
            if n.id in fold_keys and fold_keys[n.id] not in out.unfolded:
                out = out.unfolding(graph, fold_keys[n.id])
        boxes = {n.path for n in chain[1:] if n.path is not None and n.id != graph.root_id}
        return Collapse(out.depth, out.collapsed - boxes, out.expanded | boxes, out.unfolded)

    def opened(self, graph: Graph) -> Collapse:
        """Everything open: every box, every fold."""
        deepest = max((n.depth for n in graph.containers), default=0) + 1
        return Collapse(deepest, unfolded=frozenset(f.fold_key for f in graph.folds()))


@dataclass(frozen=True)
class Screen:
    """The canvas's size in scene units at the window's text scale: the default view is
    chosen, and wide layouts wrap, so that the graph fits it at a readable zoom."""

    width: float
    height: float
    readable: float = 0.85  # the zoom (relative to the text scale) a default view fits at

    @property
    def area(self) -> tuple[float, float]:
        """What fits on it at the readable zoom, in scene units: the layout's `fit`."""
        return self.width / self.readable, self.height / self.readable

    def fits(self, layout: GraphLayout) -> bool:
        width, height = self.area
        return layout.width <= width * 1.001 and layout.height <= height * 1.001


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
    screen: Screen | None = None  # what it was wrapped to


def build_graph(
    tree: ModuleTree,
    input_spec: Any,
    seed: int,
    lock: Any,
    node_size: Callable[[GraphNode], tuple[float, float]],
    screen: Screen | None = None,
) -> LaidOut:
    """Worker task: the graph (its forward pass under the pass engine's lock) and its
    default layout: runs of alike calls folded, the deepest depth (of at most 60 nodes)
    whose layout, wrapped to the screen's width, fits its height at a readable zoom."""
    start = time.perf_counter()
    with lock if lock is not None else nullcontext():
        # the pass gives way at each module call while the GUI thread works (gui_gate.py)
        graph = graph_for_tree(tree, seed=seed, input_spec=input_spec, pause=wait_for_gui)
    collapse, view, layout = default_layout(graph, node_size, screen)
    laid = _laid_out(tree, graph, collapse, view, layout)
    laid.input_spec = input_spec
    laid.screen = screen
    laid.seconds = time.perf_counter() - start
    return laid


def default_layout(
    graph: Graph,
    node_size: Callable[[GraphNode], tuple[float, float]],
    screen: Screen | None,
    max_nodes: int = 60,
) -> tuple[Collapse, GraphView, GraphLayout]:
    """The first view to show, and its layout: the deepest level of at most `max_nodes`
    nodes that fits the screen at a readable zoom, each call its own node; else with runs
    of alike calls folded ("Block ×24"), as deep as fits (at least depth 1)."""
    area = screen.area if screen is not None else None
    all_folds = frozenset(f.fold_key for f in graph.folds())
    candidates: list[Collapse] = []
    depth = graph.default_depth(max_nodes)
    if all_folds:  # unfolded first: as many calls as fit, each its own node
        for d in range(depth, 0, -1):
            unfolded = Collapse(d, unfolded=all_folds)
            if len(unfolded.view(graph).nodes) <= max_nodes:
                candidates.append(unfolded)
        depth = graph.default_depth(max_nodes, fold=True)
    candidates += [Collapse(d) for d in range(depth, 0, -1)]
    for k, collapse in enumerate(candidates):
        view = collapse.view(graph)
        layout = layout_view(view, node_size, area)
        if screen is None or screen.fits(layout) or k == len(candidates) - 1:
            return collapse, view, layout
    raise AssertionError("unreachable: the last candidate is always taken")


def lay_out(
    tree: ModuleTree,
    graph: Graph,
    collapse: Collapse,
    node_size: Callable[[GraphNode], tuple[float, float]],
    screen: Screen | None = None,
) -> LaidOut:
    """Worker task: what `collapse` shows of `graph`, laid out (wrapped to `screen`)."""
    start = time.perf_counter()
    view = collapse.view(graph)
    layout = layout_view(view, node_size, screen.area if screen else None)
    laid = _laid_out(tree, graph, collapse, view, layout)
    laid.screen = screen
    laid.seconds = time.perf_counter() - start
    return laid


def _laid_out(
    tree: ModuleTree, graph: Graph, collapse: Collapse, view: GraphView, layout: GraphLayout
) -> LaidOut:
    paths = [edge_path(route.points) for route in layout.edges if len(route.points) > 1]
    return LaidOut(graph, view, layout, collapse, node_tensors(tree, graph, view), paths)


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
