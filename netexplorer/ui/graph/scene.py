"""`GraphScene`: the items of one laid-out graph view (items.py draws each kind),
and what changes on them without a new layout: the highlight of a selection and its tie
partners, the gradient tint, the tie links' labels with each use's contribution, tooltips.

Thousands of items are made a batch at a time (`populate`), and a retired scene is taken
apart a batch at a time (`dispose`), so that neither stalls the GUI thread."""

from __future__ import annotations

import html
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import (
    QColor,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsScene,
)

from ...core.graph import (
    INPUT,
    LOOP,
    OUTPUT,
    STATELESS,
    TIED_TENSOR,
    GraphNode,
)
from ...core.text import shape_text
from ...core.tree import ModuleTree
from .items import (
    BOUNDS_MARGIN,
    HIGHLIGHT,
    KIND_EXPLANATIONS,
    KIND_NAMES,
    MAX_LABEL_TENSORS,
    MAX_LABEL_VALUES,
    SELECTED_COLOR,
    BoxItem,
    EdgeItem,
    GradScale,
    LabelMetrics,
    LegendContent,
    LinkLabelItem,
    NodeItem,
    TieLinkItem,
    canonical_path,
    format_norm,
    link_color,
    to_qrect,
)

if TYPE_CHECKING:
    from ...core.graph import TieLink
    from .tasks import LaidOut

# -- look -----------------------------------------------------------------------------------


@dataclass
class LinkGroup:
    """Tie links labelled together: one link, or a loop's chain over its calls."""

    kind: str
    color: QColor
    links: list[TieLink]
    nodes: list[str]  # the chain, in call order
    items: list[TieLinkItem] = field(default_factory=list)
    label: LinkLabelItem | None = None
    use_norms: list[float | None] = field(default_factory=list)


class GraphScene(QGraphicsScene):
    """The items of one laid-out view, and their highlight, tint and labels.

    `GraphScene(...)` makes every item at once; `GraphScene(..., populate=False)` then
    `populate()`, a generator, makes them a batch at a time so that the GUI thread can
    breathe between batches while thousands of items are made."""

    def __init__(
        self,
        laid: LaidOut,
        tree: ModuleTree,
        metrics: LabelMetrics,
        parent=None,
        *,
        populate: bool = True,
    ):
        super().__init__(parent)
        self.laid = laid
        self.tree = tree
        self.metrics = metrics
        self.setBackgroundBrush(QColor("#fbfcfd"))
        self.nodes: dict[str, NodeItem] = {}
        self.boxes: dict[str, BoxItem] = {}
        self.edges: list[tuple[EdgeItem, str, str]] = []
        self.groups: list[LinkGroup] = []
        self.grad_scale: GradScale | None = None
        self.use_norms: dict[str, dict[str, float]] = {}  # visible id -> tensor -> sum sq
        self._leftovers: list[QGraphicsItem] | None = None  # once retired: still to remove
        if populate:
            for _ in self.populate():
                pass

    def populate(self, batch: int = 100) -> Iterator[None]:
        """Make the items, yielding after every `batch` of them.

        The tie links come first: placing them gives the scene its final extent, and a
        scene that knows its extent before the other items arrive indexes each batch as
        it comes (a scene whose extent grows indexes every item again as it grows)."""
        self.groups = self._link_groups(self.laid.view.tie_links)
        self.place_links()
        for made, _ in enumerate(self._make_items(), 1):
            if made % batch == 0:
                self._index_new_items()
                yield
        self._index_new_items()

    def _index_new_items(self) -> None:
        # Qt puts new items in its index (BSP tree) on a timer that each new item restarts:
        # while items keep coming it waits, then indexes thousands at once at the first
        # paint. Any query of the index brings it up to date: a batch at a time, here.
        self.items(QRectF(0, 0, 1, 1))

    def _make_items(self) -> Iterator[None]:
        """Boxes, nodes and edges, yielding after each one."""
        view, layout, metrics = self.laid.view, self.laid.layout, self.metrics
        for box in view.boxes:
            self.boxes[box.id] = self._add(BoxItem(box, layout.boxes[box.id], metrics))
            yield
        for node in view.nodes:
            self.nodes[node.id] = self._add(NodeItem(node, layout.nodes[node.id], metrics))
            yield
        routes = [route for route in layout.edges if len(route.points) > 1]
        for route, path in zip(routes, self.laid.edge_paths, strict=True):
            self.edges.append((self._add(EdgeItem(path)), route.edge.source, route.edge.target))
            yield

    def item_count(self) -> int:
        """How many items the scene holds (without asking Qt for the list of them)."""
        links = sum(len(g.items) + (g.label is not None) for g in self.groups)
        return len(self.nodes) + len(self.boxes) + len(self.edges) + links

    def _add(self, item: QGraphicsItem) -> Any:
        self.addItem(item)
        return item

    def dispose(self, budget: int) -> bool:
        """Remove up to `budget` items (a retired scene is taken apart a little at a time:
        deleting thousands of items at once would stall the GUI). True once empty."""
        if self._leftovers is None:
            self._leftovers = [
                *(e for e, _, _ in self.edges),
                *self.nodes.values(),
                *self.boxes.values(),
                *(i for g in self.groups for i in (*g.items, g.label) if i is not None),
            ]
            self.nodes, self.boxes, self.edges, self.groups = {}, {}, [], []
        for _ in range(min(budget, len(self._leftovers))):
            self.removeItem(self._leftovers.pop())  # back to Python, deleted with its last ref
        return not self._leftovers

    # -- tie links --------------------------------------------------------------------------

    def _tie_group(self, link: TieLink) -> int | None:
        for path, _ in link.paths:
            t = self.tree.tensors.get(path)
            if t is not None and t.tie is not None:
                return t.tie
        return None

    def _link_groups(self, links: list[TieLink]) -> list[LinkGroup]:
        groups: list[LinkGroup] = []
        for link in links:
            last = groups[-1] if groups else None
            if (
                link.kind == LOOP
                and last is not None
                and last.kind == LOOP
                and last.nodes[-1] == link.a
                and last.links[-1].tensors == link.tensors
            ):
                last.links.append(link)
                last.nodes.append(link.b)
            else:
                color = link_color(link.kind, self._tie_group(link))
                groups.append(LinkGroup(link.kind, color, [link], [link.a, link.b]))
        for group in groups:
            for _ in group.links:
                item = TieLinkItem(group.kind, group.color)
                group.items.append(item)
                self.addItem(item)
            group.label = LinkLabelItem(self._label_lines(group), group.color, self.metrics)
            self.addItem(group.label)
        return groups

    def to_qrect(self, item_id: str) -> QRectF:
        """Where the layout puts a node or box (whether or not its item is made yet)."""
        layout = self.laid.layout
        rect = layout.nodes.get(item_id) or layout.boxes.get(item_id)
        return to_qrect(rect) if rect is not None else QRectF()

    def _label_lines(self, group: LinkGroup) -> list[str]:
        tensors = group.links[0].tensors
        if group.kind == STATELESS:
            first = "same object, no parameters"
        else:
            shown = tensors[:MAX_LABEL_TENSORS]
            more = len(tensors) - len(shown)
            first = ", ".join(shown) + (f" +{more} more" if more else "")
        lines = [first]
        norms = group.use_norms
        if norms and any(n is not None for n in norms):
            values = ["—" if n is None else format_norm(n) for n in norms]
            if group.kind == LOOP:
                more = len(values) > MAX_LABEL_VALUES
                lines.append("grad per call: " + " · ".join(values[:MAX_LABEL_VALUES]))
                if more:
                    lines[-1] += " …"
            else:
                names = [self._short_name(n) for n in group.nodes]
                pairs = zip(names, values, strict=True)
                lines.append("grad " + " · ".join(f"via {a}: {v}" for a, v in pairs))
        return lines

    def _short_name(self, node_id: str) -> str:
        node = self.laid.view.node(node_id)
        return node.path or "(model)"

    def place_links(self) -> None:
        """Brackets over the graph, nested by span: a longer link runs higher, and labels
        whose extents overlap go to different heights. In a graph wrapped into rows, a
        bracket runs over its own row, and one between rows goes round the right end of
        the rows and into the gap above the later one."""
        layout = self.laid.layout
        boxes = (*layout.nodes.values(), *layout.boxes.values()) if self.groups else ()
        rects = [to_qrect(r) for r in boxes]  # what the links go over
        rows = layout.rows or [(0.0, layout.height)]

        def row_of(rect: QRectF) -> int:
            middle = rect.center().y()
            return next((k for k, (_t, bottom) in enumerate(rows) if middle <= bottom), 0)

        label_h = max((g.label.size().height() for g in self.groups if g.label), default=0.0)
        rise, level_gap = label_h / 2 + 16, label_h + 10
        placed: list[tuple[float, float, int, int]] = []  # (left, right, level, row)
        right_levels = 0  # links between rows, each further right of the rows
        spans = []
        for group in self.groups:
            xs = [self.to_qrect(n).center().x() for n in group.nodes]
            spans.append((max(xs) - min(xs), group))
        for _, group in sorted(spans, key=lambda s: s[0]):
            ends = [(self.to_qrect(link.a), self.to_qrect(link.b)) for link in group.links]
            row = row_of(ends[0][0])
            if any(row_of(r) != row for pair in ends for r in pair):
                anchor = self._place_across_rows(group, ends, rows, row_of, rise, right_levels)
                right_levels += 1
                if group.label is not None:
                    group.label.setPos(anchor)
                continue
            left = min(min(a.center().x(), b.center().x()) for a, b in ends)
            right = max(max(a.center().x(), b.center().x()) for a, b in ends)
            label_x = (left + right) / 2
            half = group.label.size().width() / 2 if group.label else 0.0
            left, right = min(left, label_x - half), max(right, label_x + half)
            under = [
                r.top()
                for r in rects
                if r.right() >= left and r.left() <= right and row_of(r) == row
            ]
            top = min(under, default=0.0)
            level = 1 + max(
                (lv for lo, hi, lv, rw in placed if rw == row and lo < right and left < hi),
                default=-1,
            )
            chain = len(ends) > 1  # its label goes above its brackets: two levels
            placed.append((left, right, level + (1 if chain else 0), row))
            apex = top - rise - level * level_gap
            sideways, anchor = False, QPointF(label_x, apex)
            for item, (a, b) in zip(group.items, ends, strict=True):
                sideways, anchor = item.set_bracket(a, b, apex)
            if group.label is not None:
                if chain:
                    anchor = QPointF(label_x, apex - group.label.size().height() / 2 - 6)
                elif sideways:  # beside the bracket, not on it
                    anchor += QPointF(group.label.size().width() / 2 + 8, 0)
                group.label.setPos(anchor)
        # the scene knows its extent: Qt would otherwise ask every item for its bounds
        bounds = QRectF(0, 0, layout.width, layout.height)
        for group in self.groups:
            for item in group.items:
                bounds = bounds.united(item.path().boundingRect())
            if group.label is not None:
                bounds = bounds.united(group.label.sceneBoundingRect())
        self.bounds = bounds.adjusted(-BOUNDS_MARGIN, -BOUNDS_MARGIN, BOUNDS_MARGIN, BOUNDS_MARGIN)
        self.setSceneRect(self.bounds)

    def _place_across_rows(self, group, ends, rows, row_of, rise: float, level: int) -> QPointF:
        layout = self.laid.layout
        side = layout.width + 30.0 + 18.0 * level
        anchor = QPointF()
        for item, (a, b) in zip(group.items, ends, strict=True):
            if row_of(a) > row_of(b):
                a, b = b, a
            top = rows[row_of(a)][0] - rise - 8.0 * level
            above_b = rows[row_of(b)][0] - 14.0 - 8.0 * level
            anchor = item.set_across_rows(a, b, top, side, above_b)
        return anchor

    # -- selection --------------------------------------------------------------------------

    def set_line_width(self, width: float) -> None:
        """Highlights this thick (the window's look: thicker when presenting)."""
        if HIGHLIGHT.node != 1.75 * width:
            HIGHLIGHT.set(width)
            self.update()

    def highlight(self, primary: list[str]) -> None:
        """Mark `primary` as selected, and every node joined to them by tie links (in the
        colour of the link that reaches it)."""
        for item in self.nodes.values():
            item.set_highlight(None)
        for box in self.boxes.values():
            box.set_highlight(None)
        reached: dict[str, QColor] = {}
        queue = deque(primary)
        for node_id in primary:
            reached[node_id] = SELECTED_COLOR
        touching: set[int] = set()
        while queue:
            current = queue.popleft()
            for group in self.groups:
                for k, link in enumerate(group.links):
                    if current not in (link.a, link.b):
                        continue
                    touching.add(id(group.items[k]))
                    other = link.b if current == link.a else link.a
                    if other not in reached:
                        reached[other] = group.color
                        queue.append(other)
        for node_id, color in reached.items():
            if node_id in self.nodes:
                self.nodes[node_id].set_highlight(color, selected=node_id in primary)
            elif node_id in self.boxes:
                self.boxes[node_id].set_highlight(color)
        for group in self.groups:
            for item in group.items:
                # the others fade only when the selection has links of its own
                item.set_emphasis(0 if not touching else 1 if id(item) in touching else -1)
        ends = set(primary)
        for edge, source, target in self.edges:
            edge.set_emphasis(SELECTED_COLOR if source in ends or target in ends else None)

    # -- gradients --------------------------------------------------------------------------

    def set_grad_norms(self, norms: dict[str, float | None]) -> None:
        """Tint each node by the norm of its parameters' gradients (root of the sum of
        squares over its tensors; a collapsed box: everything inside it)."""
        values: dict[str, float | None] = {}
        tensors = self.laid.node_tensors
        for node_id in self.nodes:
            total, seen = 0.0, False
            for path in tensors.get(node_id, ()):
                n = norms.get(path)
                if n is not None:
                    total += n * n
                    seen = True
            values[node_id] = math.sqrt(total) if seen else None
        self.grad_scale = GradScale.over(v for v in values.values() if v is not None)
        for node_id, item in self.nodes.items():
            item.set_grad(values[node_id], self.grad_scale)

    def set_contributions(self, norms: dict[str, list[tuple[str, int, float]]]) -> None:
        """Show on each tie link the gradient that arrived through each of its ends."""
        graph, view = self.laid.graph, self.laid.view
        per_node: dict[str, dict[str, float]] = {}  # visible id -> tensor -> sum of squares
        done: set[str] = set()
        for path, uses in norms.items():
            tensor = self.tree.tensors.get(path)
            if tensor is None:
                continue
            key = canonical_path(self.tree, tensor)
            if key in done:
                continue
            done.add(key)
            for site, call, norm in uses:
                node_id = graph.node_for_call(site, call)
                if node_id is None:
                    continue
                shown = view.representative.get(node_id, node_id)
                tensors = per_node.setdefault(shown, {})
                tensors[key] = tensors.get(key, 0.0) + norm * norm
        self.use_norms = per_node
        changed = False
        for group in self.groups:
            keys = {
                canonical_path(self.tree, self.tree.tensors[p])
                for link in group.links
                for pair in link.paths
                for p in pair
                if p in self.tree.tensors
            }
            values: list[float | None] = []
            for node_id in group.nodes:
                mine = per_node.get(node_id, {})
                squares = [mine[k] for k in keys if k in mine]
                values.append(math.sqrt(sum(squares)) if squares else None)
            if values != group.use_norms:
                group.use_norms = values
                if group.label is not None:
                    group.label.set_lines(self._label_lines(group))
                changed = True
        if changed:
            self.place_links()

    # -- tooltips ---------------------------------------------------------------------------

    def tooltip(self, item: Any) -> str:
        if isinstance(item, NodeItem):
            return self._node_tooltip(item)
        if isinstance(item, BoxItem):
            return (
                f"<b>{html.escape(item.title)}</b><br>{self._module_lines(item.node)}"
                "<br><i>Click the header (or double-click) to collapse this box.</i>"
            )
        if isinstance(item, TieLinkItem):
            group = next(g for g in self.groups if item in g.items)
            return self._link_tooltip(group, group.items.index(item))
        if isinstance(item, LinkLabelItem):
            group = next(g for g in self.groups if g.label is item)
            return self._link_tooltip(group, len(group.links) // 2)
        if isinstance(item, EdgeItem):
            _, source, target = next(e for e in self.edges if e[0] is item)
            return f"data flow: {self._name(source)} → {self._name(target)}"
        return ""

    def _name(self, node_id: str) -> str:
        node = self.laid.view.node(node_id)
        if node.kind in (INPUT, OUTPUT):
            return node.kind
        return f"{node.type} {node.path or '(model)'}".strip()

    def _module_lines(self, node: GraphNode) -> str:
        module = self.tree.modules.get(node.path or "")
        lines = []
        if module is not None:
            lines.append(f"<code>{html.escape(module.access)}</code>")
            if module.shared_with:
                lines.append(f"same object as {html.escape(', '.join(module.shared_with))}")
        return "<br>".join(lines)

    def _node_tooltip(self, item: NodeItem) -> str:
        node = item.node
        if node.kind in (INPUT, OUTPUT):
            shapes = ", ".join(shape_text(s, "pretty") for s in node.shapes) or "unknown shape"
            return f"<b>model {node.kind}</b><br>{html.escape(shapes)}"
        lines = [f"<b>{html.escape(node.type or 'module')}</b> {html.escape(node.path or '')}"]
        if extra := self._module_lines(node):
            lines.append(extra)
        if node.calls_at_site > 1:
            lines.append(f"call {(node.call or 0) + 1} of {node.calls_at_site} (a loop)")
        if node.shapes:
            lines.append("output " + ", ".join(shape_text(s, "pretty") for s in node.shapes[:3]))
        tensors = self.laid.node_tensors.get(node.id, ())
        if tensors:
            shown = ", ".join(tensors[:6]) + (" …" if len(tensors) > 6 else "")
            lines.append(f"{len(tensors)} parameter tensor(s): {html.escape(shown)}")
        if item.grad_norm is not None:
            lines.append(f"‖grad‖ = {format_norm(item.grad_norm)}")
        uses = self.use_norms.get(node.id)
        if uses:
            through = math.sqrt(sum(uses.values()))
            lines.append(f"gradient through this use of shared tensors: {format_norm(through)}")
        if item.is_collapsed:
            lines.append("<i>Click + (or double-click) to expand.</i>")
        return "<br>".join(lines)

    def _link_tooltip(self, group: LinkGroup, index: int) -> str:
        link = group.links[index]
        lines = [f"<b>{KIND_NAMES[group.kind]}</b>: {self._name(link.a)} — {self._name(link.b)}"]
        lines.append(KIND_EXPLANATIONS[group.kind])
        if link.tensors:
            lines.append("shared: " + html.escape(", ".join(link.tensors)))
        if group.use_norms and any(n is not None for n in group.use_norms):
            for node_id, norm in zip(group.nodes, group.use_norms, strict=True):
                value = "—" if norm is None else format_norm(norm)
                lines.append(f"‖gradient via {html.escape(self._name(node_id))}‖ = {value}")
        return "<br>".join(lines)

    # -- legend -----------------------------------------------------------------------------

    def legend(self) -> LegendContent:
        kinds = tuple(k for k in KIND_NAMES if any(g.kind == k for g in self.groups))
        tied = next((g.color for g in self.groups if g.kind == TIED_TENSOR), None)
        return LegendContent(
            data_flow=bool(self.edges), kinds=kinds, tied_color=tied, grad=self.grad_scale
        )
