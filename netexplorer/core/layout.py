"""Where the graph view draws things: a layered layout along the data flow, left to right.

Expanded containers are laid out inside out. Each box's contents are laid out on their own,
with the box's input port on its left edge and its output port on its right edge; the box is
then one item, of its final size, in its parent's layout. So a box never overlaps anything
outside it, and nothing overlaps within a box. Within one box (or the top level):

- layers are networkx's topological generations (the longest path from a source); a node that
  needs no input (a position embedding) moves to just before its first consumer;
- an edge that skips layers runs through waypoints, one per layer, shared by all edges from
  the same source, so a residual stream is one lane beside the nodes rather than a fan of
  lines through them;
- each layer is ordered by barycentre sweeps (a simple crossing reduction);
- vertical positions are the least-squares fit to the neighbours' positions under the
  no-overlap constraints (isotonic regression), so chains come out straight.

A graph without data flow (a checkpoint) lays each box's children out in a row, in order.
Everything is plain data in abstract units (a node is about 50 high); the Qt view scales and
draws, and may pass its own `node_size` from its font metrics.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .graph import INPUT_ID, OUTPUT_ID, DataEdge, GraphNode, GraphView, paused_gc

CHAR_W = 7.5  # width of one character of a node's label
LINE_H = 16.0
TEXT_PAD = 8.0
MIN_NODE_W = 64.0
WIDTH_STEP = 16.0
LAYER_GAP = 48.0  # horizontal space between layers, where edges run
NODE_GAP = 20.0  # vertical space between nodes of one layer
LANE_GAP = 12.0  # vertical space beside an edge passing through a layer
ROW_GAP = 64.0  # vertical space between the rows of a wrapped layout
MAX_ROWS = 40  # the most rows the top level is wrapped into
BOX_WRAP = 2.0  # a box wraps when it is this many times wider than the area to fit
BOX_PAD = 12.0  # space inside a box around its contents
BOX_TITLE_H = 22.0  # the box's title line, above its contents
SWEEPS = 4
SETTLED = 2.0  # vertical moves smaller than this end the fitting
LANE_PULL = 0.2  # how much nodes and passing lanes pull at each other (nodes pull nodes: 1)

NodeSize = Callable[[GraphNode], tuple[float, float]]
Point = tuple[float, float]

_ENTRY = "\x00entry"  # a box's input port, on its left edge
_EXIT = "\x00exit"  # its output port, on its right edge


def default_node_size(node: GraphNode) -> tuple[float, float]:
    """Width and height that fit the node's label lines (widths in steps of `WIDTH_STEP`:
    tidier columns, and boxes whose labels differ by a character are laid out once)."""
    lines = node.label_lines()
    width = max(MIN_NODE_W, CHAR_W * max(len(line) for line in lines) + 2 * TEXT_PAD)
    return WIDTH_STEP * math.ceil(width / WIDTH_STEP), LINE_H * len(lines) + 2 * TEXT_PAD


def box_title(node: GraphNode) -> str:
    """The title a box shows on its top edge."""
    return f"{node.path or '(model)'}: {node.type}" if node.type else node.path or "(model)"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def center(self) -> Point:
        return self.x + self.w / 2, self.y + self.h / 2

    def overlaps(self, other: Rect) -> bool:
        """Whether the two share any area (touching edges do not count)."""
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def contains(self, other: Rect) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )

    def moved(self, dx: float, dy: float) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def as_list(self) -> list[float]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class EdgeRoute:
    """The polyline an edge is drawn along, from its source's right side to its target's
    left side (or a box's port)."""

    edge: DataEdge
    points: list[Point]


@dataclass
class GraphLayout:
    """Rectangles of the visible nodes and of the boxes, and the edges' routes."""

    nodes: dict[str, Rect]
    boxes: dict[str, Rect]
    edges: list[EdgeRoute]
    width: float
    height: float
    rows: list[tuple[float, float]] = field(default_factory=list)  # top level: (top, bottom)

    def row_of(self, rect: Rect) -> int:
        """Which row of the top level a rectangle is in (0 when it does not wrap)."""
        middle = rect.y + rect.h / 2
        for k, (_top, bottom) in enumerate(self.rows):
            if middle <= bottom:
                return k
        return max(0, len(self.rows) - 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": {k: r.as_list() for k, r in self.nodes.items()},
            "boxes": {k: r.as_list() for k, r in self.boxes.items()},
            "edges": [
                {**route.edge.as_dict(), "points": [list(p) for p in route.points]}
                for route in self.edges
            ],
            "width": self.width,
            "height": self.height,
            "rows": [list(r) for r in self.rows],
        }


def layout_view(
    view: GraphView,
    node_size: NodeSize = default_node_size,
    fit: tuple[float, float] | None = None,
) -> GraphLayout:
    """Lay out what `view` shows. Plain data in, plain data out: safe off the GUI thread.

    With `fit`, the (width, height) of the area the graph is to fit, wide layouts wrap:
    their layers go into rows read like text, left to right and then the next row down,
    each row about as wide as the others, and the flow from the end of one row runs
    through the gap below it to the start of the next. The top level takes the number of
    rows that lets it fit the area at the largest zoom; a box wraps only when it is
    BOX_WRAP times wider than the area by itself."""
    with paused_gc():
        return _layout(view, node_size, fit)


def _layout(view: GraphView, node_size: NodeSize, fit: tuple[float, float] | None) -> GraphLayout:
    graph = view.graph
    order = view.order
    chain = not graph.has_data_flow

    scopes: dict[str | None, _Scope] = {None: _Scope(None)}
    for box in view.boxes:
        scopes[box.id] = _Scope(box.id)
    for item in sorted((*view.boxes, *view.nodes), key=lambda n: order(n.id)):
        scopes[view.box_of(item.id)].items.append(item.id)

    box_ids = {b.id for b in view.boxes}
    segments = [_segments(view, e, box_ids) for e in view.edges]
    for route in segments:
        for scope, a, b in route:
            scopes[scope].edges[(a, b)] = None

    sizes: dict[str, tuple[float, float]] = {n.id: node_size(n) for n in view.nodes}
    ports: dict[str, tuple[float, float]] = {}
    arranged: dict[str | None, _Arrangement] = {}
    alike: dict[Hashable, _Arrangement] = {}  # the twelve blocks of a transformer: once
    for box in sorted(view.boxes, key=lambda b: -b.depth):  # contents before their box
        done = _arrange_alike(scopes[box.id], sizes, ports, chain, True, alike, fit)
        arranged[box.id] = done
        sizes[box.id] = (done.width, done.height)
        ports[box.id] = (
            done.entry_y - done.height / 2 if done.entry_y is not None else 0.0,
            done.exit_y - done.height / 2 if done.exit_y is not None else 0.0,
        )
    arranged[None] = _arrange_alike(scopes[None], sizes, ports, chain, False, alike, fit)

    origin: dict[str | None, Point] = {None: (0.0, 0.0)}
    node_rects: dict[str, Rect] = {}
    box_rects: dict[str, Rect] = {}
    for box in sorted(view.boxes, key=lambda b: b.depth):  # boxes before their contents
        parent = view.box_of(box.id)
        ox, oy = origin[parent]
        rect = arranged[parent].rects[box.id].moved(ox, oy)
        box_rects[box.id] = rect
        origin[box.id] = (rect.x, rect.y)
    for node in view.nodes:
        parent = view.box_of(node.id)
        ox, oy = origin[parent]
        node_rects[node.id] = arranged[parent].rects[node.id].moved(ox, oy)

    routes = []
    for edge, route in zip(view.edges, segments, strict=True):
        points: list[Point] = []
        for scope, a, b in route:
            ox, oy = origin[scope]
            for x, y in arranged[scope].routes[(a, b)]:
                point = (x + ox, y + oy)
                if not points or _far(points[-1], point):
                    points.append(point)
        routes.append(EdgeRoute(edge, points))
    top = arranged[None]
    return GraphLayout(node_rects, box_rects, routes, top.width, top.height, top.rows)


def _far(p: Point, q: Point) -> bool:
    return abs(p[0] - q[0]) > 1e-6 or abs(p[1] - q[1]) > 1e-6


# -- one box at a time ----------------------------------------------------------------------


@dataclass
class _Scope:
    box: str | None  # None: the top level
    items: list[str] = field(default_factory=list)  # visible nodes and boxes, in call order
    edges: dict[tuple[str, str], None] = field(default_factory=dict)  # may use the ports


@dataclass
class _Arrangement:
    width: float
    height: float
    rects: dict[str, Rect]  # items, in the box's own coordinates (its top-left is 0, 0)
    routes: dict[tuple[str, str], list[Point]]
    entry_y: float | None
    exit_y: float | None
    rows: list[tuple[float, float]] = field(default_factory=list)  # (top, bottom) of each


def _segments(
    view: GraphView, edge: DataEdge, box_ids: set[str]
) -> list[tuple[str | None, str, str]]:
    """An edge as pieces within one box each: out of the boxes around its source through
    their output ports, across the innermost box holding both ends, into the boxes around its
    target through their input ports."""
    if edge.source_port == "in" and edge.source in box_ids:
        scope, item = edge.source, _ENTRY
    else:
        scope, item = view.box_of(edge.source), edge.source
    if edge.target_port == "out" and edge.target in box_ids:
        target_scope, target_item = edge.target, _EXIT
    else:
        target_scope, target_item = view.box_of(edge.target), edge.target

    def outward(start: str | None) -> list[str | None]:
        chain = [start]
        while chain[-1] is not None:
            chain.append(view.box_of(chain[-1]))
        return chain

    target_chain = outward(target_scope)
    common = next(s for s in outward(scope) if s in target_chain)
    pieces: list[tuple[str | None, str, str]] = []
    while scope != common:
        pieces.append((scope, item, _EXIT))
        item, scope = scope, view.box_of(scope)
    inward: list[tuple[str | None, str, str]] = []
    while target_scope != common:
        inward.append((target_scope, _ENTRY, target_item))
        target_item, target_scope = target_scope, view.box_of(target_scope)
    if item != target_item:
        pieces.append((common, item, target_item))
    return pieces + inward[::-1]


def _arrange_alike(
    scope: _Scope,
    sizes: dict[str, tuple[float, float]],
    ports: dict[str, tuple[float, float]],
    chain: bool,
    framed: bool,
    alike: dict[Hashable, _Arrangement],
    fit: tuple[float, float] | None = None,
) -> _Arrangement:
    """Arrange one box, reusing the arrangement of an earlier box of the same shape (items
    of the same sizes and ports, joined the same way)."""
    items = scope.items
    index: dict[str, Hashable] = {item: k for k, item in enumerate(items)}
    index[_ENTRY], index[_EXIT] = _ENTRY, _EXIT
    item_sizes = {k: sizes[item] for k, item in enumerate(items)}
    item_ports = {k: ports[item] for k, item in enumerate(items) if item in ports}
    at = {_ENTRY: -1, _EXIT: len(items)}  # a fixed order, so that the layout is too
    edges = tuple(
        sorted(
            ((index[a], index[b]) for a, b in scope.edges),
            key=lambda e: (at.get(e[0], e[0]), at.get(e[1], e[1])),
        )
    )
    ends = (index.get(INPUT_ID), index.get(OUTPUT_ID))
    key = (
        tuple(item_sizes.values()),
        tuple(sorted(item_ports.items())),
        edges,
        chain,
        framed,
        ends,
        fit,
    )
    done = alike.get(key)
    if done is None:
        done = alike[key] = _arrange(
            list(item_sizes), edges, item_sizes, item_ports, chain, framed, ends, fit
        )

    def name(k: Hashable) -> str:
        return items[k] if isinstance(k, int) else str(k)

    return _Arrangement(
        width=done.width,
        height=done.height,
        rects={items[k]: rect for k, rect in done.rects.items()},
        routes={(name(a), name(b)): points for (a, b), points in done.routes.items()},
        entry_y=done.entry_y,
        exit_y=done.exit_y,
        rows=done.rows,
    )


def _arrange(
    items: list[Any],
    edges: Iterable[tuple[Any, Any]],
    sizes: dict[Any, tuple[float, float]],
    ports: dict[Any, tuple[float, float]],
    chain: bool,
    framed: bool,
    ends: tuple[Any, Any],
    fit: tuple[float, float] | None = None,
) -> _Arrangement:
    """Lay out one box's items (and its ports) in its own coordinates."""
    import networkx as nx

    edges = list(edges)
    model_input, model_output = ends
    rank: dict[Hashable, float] = {item: k for k, item in enumerate(items)}
    uses_entry = any(a == _ENTRY for a, _ in edges)
    uses_exit = any(b == _EXIT for _, b in edges)
    if uses_entry:
        rank[_ENTRY] = -1
    if uses_exit:
        rank[_EXIT] = len(items)

    # layers along the flow (edges against call order cannot happen; they are left out)
    flow = nx.DiGraph()
    flow.add_nodes_from(rank)
    flow.add_edges_from((a, b) for a, b in edges if rank[a] < rank[b])
    if chain:
        flow.add_edges_from(itertools.pairwise(items))
    layer: dict[Hashable, int] = {}
    for k, generation in enumerate(nx.topological_generations(flow)):
        for n in generation:
            layer[n] = k
    previous = 0
    for n in items:
        if flow.degree(n) == 0:  # unconnected: beside the call before it
            layer[n] = previous
        elif flow.in_degree(n) == 0 and n != model_input:
            layer[n] = min(layer[s] for s in flow.successors(n)) - 1
        previous = layer[n]
    inner = [n for n in layer if n not in (_ENTRY, _EXIT)]
    if inner:
        low = min(layer[n] for n in inner)
        for n in inner:  # the input port alone in the first layer
            layer[n] += (1 if uses_entry else 0) - low
    if uses_entry:
        layer[_ENTRY] = 0
    for end in (model_output, _EXIT):  # the output last, alone
        others = [layer[n] for n in layer if n not in (model_output, _EXIT)]
        if end in layer and others:
            layer[end] = max(layer[end], max(others) + 1)

    # waypoints: one per layer skipped, shared by every edge from the same source
    layered: dict[tuple[Hashable, Hashable], None] = {}
    paths: dict[tuple[Any, Any], list[Hashable]] = {}
    for a, b in edges:
        la, lb = layer[a], layer[b]
        if lb <= la:
            paths[(a, b)] = [a, b]
            continue
        path = [a, *(("waypoint", a, k) for k in range(la + 1, lb)), b]
        paths[(a, b)] = path
        for step in itertools.pairwise(path):
            layered[step] = None
    waypoints = sorted(
        {n for step in layered for n in step if isinstance(n, tuple)},
        key=lambda w: (rank[w[1]], w[2]),
    )
    count = max(layer.values(), default=-1) + 1
    layers: list[list[Hashable]] = [[] for _ in range(count)]
    for n in sorted(layer, key=lambda n: rank[n]):
        layers[layer[n]].append(n)
    for w in waypoints:
        layers[w[2]].append(w)

    before: dict[Hashable, list[Hashable]] = {}
    after: dict[Hashable, list[Hashable]] = {}
    for a, b in layered:
        after.setdefault(a, []).append(b)
        before.setdefault(b, []).append(a)

    # order within layers: barycentre sweeps, down then up
    index = {n: i for nodes in layers for i, n in enumerate(nodes)}
    for _ in range(SWEEPS):
        for nodes in layers[1:]:
            _reorder(nodes, before, index)
        for nodes in reversed(layers[:-1]):
            _reorder(nodes, after, index)

    def height(n: Hashable) -> float:
        return sizes[n][1] if n in sizes else 0.0

    def port_dy(n: Hashable) -> tuple[float, float]:
        return ports.get(n, (0.0, 0.0))

    def gap(a: Hashable, b: Hashable) -> float:
        real = a in sizes and b in sizes
        return (height(a) + height(b)) / 2 + (NODE_GAP if real else LANE_GAP)

    # what each node's vertical position aims at: a neighbour's position plus an offset
    # (port to port), weighted: nodes pull nodes, lanes pull lanes, each other only a little
    aims: dict[Hashable, list[tuple[Hashable, float, float]]] = {}
    for a, b in layered:
        offset = port_dy(a)[1] - port_dy(b)[0]
        weight = LANE_PULL if isinstance(a, tuple) != isinstance(b, tuple) else 1.0
        aims.setdefault(b, []).append((a, offset, weight))
        aims.setdefault(a, []).append((b, -offset, weight))

    def aim(n: Hashable) -> float:
        around = aims.get(n)
        if not around:
            return y[n]
        weighted = total = 0.0
        for m, offset, w in around:
            weighted += (y[m] + offset) * w
            total += w
        return weighted / total

    # vertical positions: stacked, then fitted to the neighbours' until they settle
    y: dict[Hashable, float] = {}
    packed = [_offsets(nodes, gap) for nodes in layers]
    for nodes, offsets in zip(layers, packed, strict=True):
        middle = offsets[-1] / 2 if offsets else 0.0
        for n, off in zip(nodes, offsets, strict=True):
            y[n] = off - middle
    for sweep in range(2 * SWEEPS):
        shifts = []
        order = range(count) if sweep % 2 == 0 else range(count - 1, -1, -1)
        for k in order:
            nodes = layers[k]
            if len(nodes) == 1:
                n = nodes[0]
                new = [aim(n)]
            else:
                weights = [1.0 if n in aims else 0.01 for n in nodes]
                new = _fit([aim(n) for n in nodes], weights, packed[k])
            for n, value in zip(nodes, new, strict=True):
                shifts.append(value - y[n])
                y[n] = value
        # settled when nothing moves relative to the rest (the whole may drift: no matter)
        drift = statistics.median(shifts) if shifts else 0.0
        if all(abs(d - drift) < SETTLED for d in shifts):
            break

    # rows: a layout wider than the area to fit wraps its layers into rows
    widths = [max((sizes[n][0] for n in nodes if n in sizes), default=0.0) for nodes in layers]

    def layer_of(n: Hashable) -> int:
        return n[2] if isinstance(n, tuple) else layer[n]

    def crossings(band: list[int]) -> dict[int, list[tuple[Hashable, Hashable]]]:
        out: dict[int, list[tuple[Hashable, Hashable]]] = {}  # row -> steps into the next
        for a, b in layered:
            if band[layer_of(a)] != band[layer_of(b)]:
                out.setdefault(band[layer_of(a)], []).append((a, b))
        return out

    def row_offsets(band: list[int], crossing: dict[int, list]) -> tuple[list[float], float]:
        """How far down each row goes (each below the one before, with room for the flow
        between them), and the height of them all."""
        rows = band[-1] + 1
        extent: list[list[float]] = [[math.inf, -math.inf] for _ in range(rows)]
        for n, value in y.items():
            e = extent[band[layer_of(n)]]
            e[0] = min(e[0], value - height(n) / 2)
            e[1] = max(e[1], value + height(n) / 2)
        dy = [0.0] * rows
        for k in range(1, rows):
            gap = ROW_GAP + len(crossing.get(k - 1, ())) * LANE_GAP
            dy[k] = dy[k - 1] + extent[k - 1][1] - extent[k][0] + gap
        return dy, dy[-1] + extent[-1][1] - extent[0][0]

    band = [0] * len(widths)
    if fit is not None and len(widths) > 1:
        total = sum(widths) + LAYER_GAP * (len(widths) - 1)
        if framed:  # a box wraps only when it alone is far wider than the area: its
            # residual lanes would cross every row, so a box a little too wide is scrolled
            if total > BOX_WRAP * fit[0]:
                band = _bands(widths, math.ceil(total / fit[0]))
        elif total > fit[0]:  # the top level: as many rows as let it fit at the largest
            # zoom; when it cannot fit at all, rows as wide as the area (scrolled down only)
            best = -1.0
            for count in range(1, min(len(widths), MAX_ROWS) + 1):
                trial = _bands(widths, count)
                crossing = crossings(trial)
                lanes = max((len(steps) for steps in crossing.values()), default=0)
                row_width = max(_row_widths(widths, trial)) + LAYER_GAP + 2 * lanes * LANE_GAP
                zoom = min(fit[0] / row_width, fit[1] / row_offsets(trial, crossing)[1])
                if zoom > best * 1.02:  # fewer rows unless more are clearly better
                    band, best = trial, zoom
            if best < 1.0:
                band = _fill(widths, fit[0] - 2 * LAYER_GAP)
    rows = band[-1] + 1 if band else 1
    crossing = crossings(band)
    for steps in crossing.values():
        steps.sort(key=lambda step: (y[step[0]], y[step[1]]))
    lanes = max((len(steps) for steps in crossing.values()), default=0)
    margin = LAYER_GAP / 2 + lanes * LANE_GAP if rows > 1 else 0.0
    if rows > 1:
        dy, _ = row_offsets(band, crossing)
        for n in y:
            y[n] += dy[band[layer_of(n)]]

    # horizontal positions: one column per layer, as wide as its widest item
    first_x = (BOX_PAD if framed and not uses_entry else 0.0) + margin
    columns: list[float] = []
    row_right = [0.0] * rows
    x = first_x
    for k, w in enumerate(widths):
        if k and band[k] != band[k - 1]:
            x = first_x
        columns.append(x)
        row_right[band[k]] = x + w
        x += w + LAYER_GAP
    right = max(row_right) + margin if columns else 0.0
    width = right + BOX_PAD if framed and not uses_exit else right

    tops = [y[n] - height(n) / 2 for n in y]
    bottoms = [y[n] + height(n) / 2 for n in y]
    shift = (BOX_TITLE_H + BOX_PAD if framed else 0.0) - min(tops, default=0.0)
    rects: dict[Any, Rect] = {}
    for n in items:  # rounded: no -1e-14 from the arithmetic
        w, h = sizes[n]
        column = layer[n]
        left = columns[column] + (widths[column] - w) / 2
        rects[n] = Rect(round(left, 3), round(y[n] + shift - h / 2, 3), w, h)
    bottom = max([max(bottoms, default=0.0) + shift, *(r.bottom for r in rects.values())])
    total = bottom + (BOX_PAD if framed else 0.0)
    row_extent: list[tuple[float, float]] = []
    for k in range(rows):
        inside = [n for n in y if band[layer_of(n)] == k]
        row_extent.append(
            (
                min((y[n] - height(n) / 2 + shift for n in inside), default=0.0),
                max((y[n] + height(n) / 2 + shift for n in inside), default=0.0),
            )
        )

    def start(n: Hashable) -> Point:
        if n == _ENTRY:
            return 0.0, y[n] + shift
        rect = rects[n]
        return rect.right, rect.y + rect.h / 2 + port_dy(n)[1]

    def end(n: Hashable) -> Point:
        if n == _EXIT:
            return width, y[n] + shift
        rect = rects[n]
        return rect.x, rect.y + rect.h / 2 + port_dy(n)[0]

    def carry(a: Hashable, b: Hashable, p: Point, q: Point) -> list[Point]:
        """From the end of one row to the start of the next: out to the right of the row,
        down into the gap below it, back to the left, down to the next row."""
        row = band[layer_of(a)]
        steps = crossing[row]
        lane = len(steps) - 1 - steps.index((a, b))  # the top one outermost: no crossings
        out_x = row_right[row] + LAYER_GAP / 2 + lane * LANE_GAP
        gap_y = row_extent[row][1] + ROW_GAP / 2 + lane * LANE_GAP
        in_x = first_x - LAYER_GAP / 2 - (len(steps) - 1 - lane) * LANE_GAP
        return [(out_x, p[1]), (out_x, gap_y), (in_x, gap_y), (in_x, q[1])]

    routes: dict[tuple[Any, Any], list[Point]] = {}
    for key, path in paths.items():
        points = [start(path[0])]
        for i in range(1, len(path)):
            previous, w = path[i - 1], path[i]
            if i == len(path) - 1:
                here = [end(w)]
            else:
                column = w[2]
                here = [
                    (columns[column], y[w] + shift),
                    (columns[column] + widths[column], y[w] + shift),
                ]
            if (previous, w) in crossing.get(band[layer_of(previous)], ()):
                points += carry(previous, w, points[-1], here[0])
            points += here
        routes[key] = points
    return _Arrangement(
        width=width,
        height=total,
        rects=rects,
        routes=routes,
        entry_y=y[_ENTRY] + shift if uses_entry else None,
        exit_y=y[_EXIT] + shift if uses_exit else None,
        rows=row_extent,
    )


def _fill(widths: list[float], capacity: float) -> list[int]:
    """The row of each layer, in order, each row filled up to `capacity` wide (a layer is
    never split: one wider than that has a row of its own)."""
    out: list[int] = []
    row, used = 0, -1.0  # -1: the row is empty
    for w in widths:
        if used >= 0 and used + LAYER_GAP + w > capacity:
            row, used = row + 1, -1.0
        used = w if used < 0 else used + LAYER_GAP + w
        out.append(row)
    return out


def _bands(widths: list[float], rows: int) -> list[int]:
    """The row of each layer, in order, for at most `rows` rows whose widest is as narrow
    as it can be: the fill of the least width that needs no more rows, by bisection."""
    low = max(widths, default=0.0)
    high = sum(widths) + LAYER_GAP * max(0, len(widths) - 1)
    best = _fill(widths, high)
    for _ in range(40):
        middle = (low + high) / 2
        trial = _fill(widths, middle)
        if trial[-1] + 1 <= rows:
            best, high = trial, middle
        else:
            low = middle
        if high - low < 1.0:
            break
    return best


def _row_widths(widths: list[float], band: list[int]) -> list[float]:
    out = [-LAYER_GAP] * (band[-1] + 1 if band else 1)
    for w, row in zip(widths, band, strict=True):
        out[row] += w + LAYER_GAP
    return out


def _reorder(
    nodes: list[Hashable], neighbours: dict[Hashable, list[Hashable]], index: dict
) -> None:
    if len(nodes) < 2:
        return

    def barycentre(n: Hashable) -> float:
        around = neighbours.get(n)
        return sum(index[m] for m in around) / len(around) if around else index[n]

    nodes.sort(key=barycentre)  # stable: ties keep their order
    for i, n in enumerate(nodes):
        index[n] = i


def _offsets(nodes: list[Hashable], gap: Callable[[Hashable, Hashable], float]) -> list[float]:
    """Centre of each node relative to the first's, packed as tightly as allowed."""
    out = [0.0] if nodes else []
    for a, b in itertools.pairwise(nodes):
        out.append(out[-1] + gap(a, b))
    return out


def _fit(wanted: Iterable[float], weights: Iterable[float], offsets: list[float]) -> list[float]:
    """Positions closest (weighted least squares) to `wanted`, in the same order, at least
    as far apart as `offsets` packs them: pool-adjacent-violators on `wanted - offsets`."""
    targets = [aim - off for aim, off in zip(wanted, offsets, strict=True)]
    if all(a <= b for a, b in itertools.pairwise(targets)):
        return list(wanted)  # nothing in the way: everyone where they want to be
    blocks: list[list[float]] = []  # [value, weight, count]
    for aim, weight, off in zip(wanted, weights, offsets, strict=True):
        blocks.append([aim - off, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    values = [v for v, _, n in blocks for _ in range(int(n))]
    return [v + off for v, off in zip(values, offsets, strict=True)]
