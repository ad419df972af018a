"""What the graph view draws: nodes, container boxes, data-flow edges, tie links and the
legend (`GraphScene` in scene.py holds the items of one laid-out view).

Scene units are the layout's units (core/layout.py); at zoom 1 one unit is one pixel. Node
sizes come from `LabelMetrics`, measured once on the GUI thread from the real fonts and
then used by the layout in a worker (plain dictionaries: safe in any thread).

The three kinds of sharing look as they do in the tree (ui/icons.py), plus the loop:
- a tensor tied across modules: dashed arc in its tie group's colour (TIE_COLORS);
- one module object at several places: solid purple arc (ALIAS_COLOR);
- a module called in a loop: dash-dot teal arc, and a badge with the number of calls;
- a parameter-free module reused: dotted grey arc (EMPTY_ALIAS_COLOR), naming no tensor.
Data flow is a solid dark grey arrow; a tie link has no arrowhead, only a dot at each end.

After a backward pass a node is filled by the gradient norm of its parameters on a
sequential, logarithmic scale (light yellow to dark red), explained by the legend.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QStyleOptionGraphicsItem,
)

from ...core.graph import (
    CONTAINER,
    FOLD,
    INPUT,
    LOOP,
    OUTPUT,
    SHARED_MODULE,
    STATELESS,
    TIED_TENSOR,
    GraphNode,
)
from ...core.layout import BOX_TITLE_H, WIDTH_STEP, Rect, box_title
from ...core.tree import ModuleTree, TensorNode
from ..icons import ALIAS_COLOR, EMPTY_ALIAS_COLOR, TIE_COLORS

# -- look -----------------------------------------------------------------------------------

TYPE_PX = 16.0  # the node's first line (its type), bold
PATH_PX = 14.0  # its second line (where it is)
BOX_PX = 14.0  # a box's title, bold; fits BOX_TITLE_H
LABEL_PX = 14.0  # a tie link's label
BADGE_PX = 13.0
LINE_H = 21.0
PAD_X = 12.0
PAD_Y = 8.0
MARKER = 14.0  # the expand/collapse square
MARKER_SPACE = MARKER + 8.0  # room left of a collapsed container's text for its marker

INK = QColor("#1f2a30")
SUBTLE_INK = QColor("#455a64")
NODE_FILL = QColor("#ffffff")
NODE_BORDER = QColor("#546e7a")
COLLAPSED_FILL = QColor("#e8eaf6")
COLLAPSED_BORDER = QColor("#3949ab")
IO_FILL = QColor("#e3f2fd")
IO_BORDER = QColor("#1e88e5")
BOX_FILLS = (QColor("#f4f6f8"), QColor("#e9edf1"))
BOX_BORDER = QColor("#90a4ae")
BOX_HEADER = QColor("#cfd8dc")
EDGE_COLOR = QColor("#4a5459")
SELECTED_COLOR = QColor("#1565c0")
LOOP_COLOR = "#00796b"

KIND_NAMES = {
    TIED_TENSOR: "tensor tied across modules",
    SHARED_MODULE: "one module at several places",
    LOOP: "module called in a loop",
    STATELESS: "parameter-free module reused",
}
KIND_EXPLANATIONS = {
    TIED_TENSOR: (
        "One tensor held by different modules (e.g. an embedding and an output head): both "
        "use the same values, and in backward their gradients add up."
    ),
    SHARED_MODULE: (
        "One module object placed at several paths: its parameters are tied between those "
        "places, and its gradient is the sum of one contribution per place."
    ),
    LOOP: (
        "One module called several times in one forward pass (a loop): every call uses the "
        "same parameters, and their gradient is the sum of one contribution per call."
    ),
    STATELESS: (
        "One parameter-free module object (such as a ReLU) used at several places: reused, "
        "but there is no tensor to tie."
    ),
}

# gradient norm: a sequential map (ColorBrewer YlOrRd), light for small, dark for large
GRAD_STOPS = ("#ffffcc", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026", "#800026")
NO_GRAD_FILL = QColor("#ffffff")


def link_color(kind: str, tie_group: int | None) -> QColor:
    """The colour a tie link of this kind is drawn in (a tied tensor: its group's)."""
    if kind == TIED_TENSOR:
        return QColor(TIE_COLORS[(tie_group or 0) % len(TIE_COLORS)])
    if kind == SHARED_MODULE:
        return QColor(ALIAS_COLOR)
    if kind == LOOP:
        return QColor(LOOP_COLOR)
    return QColor(EMPTY_ALIAS_COLOR)


def link_pen(kind: str, color: QColor, width: float = 3.0) -> QPen:
    pen = QPen(color, width)
    pen.setCapStyle(Qt.PenCapStyle.FlatCap)
    if kind == TIED_TENSOR:
        pen.setDashPattern([3.0, 1.6])  # in units of the pen width
    elif kind == LOOP:
        pen.setDashPattern([3.5, 1.3, 0.6, 1.3])
    elif kind == STATELESS:
        pen.setWidthF(width * 0.8)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setDashPattern([0.1, 1.8])
    return pen


def grad_color(t: float) -> QColor:
    """The colour at `t` in [0, 1] on the gradient-norm scale."""
    t = min(1.0, max(0.0, t))
    stops = [QColor(c) for c in GRAD_STOPS]
    x = t * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    a, b = stops[i], stops[i + 1]
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * f,
        a.greenF() + (b.greenF() - a.greenF()) * f,
        a.blueF() + (b.blueF() - a.blueF()) * f,
    )


def ink_on(fill: QColor) -> QColor:
    """Dark text on light fills, white on dark ones."""
    luminance = 0.2126 * fill.redF() + 0.7152 * fill.greenF() + 0.0722 * fill.blueF()
    return QColor("#ffffff") if luminance < 0.45 else INK


@dataclass(frozen=True)
class GradScale:
    """Maps gradient norms to [0, 1] on a log scale between the smallest and largest
    positive norm shown."""

    low: float
    high: float

    @classmethod
    def over(cls, norms: Iterable[float]) -> GradScale | None:
        positive = [n for n in norms if n > 0 and math.isfinite(n)]
        if not positive:
            return None
        return cls(min(positive), max(positive))

    def position(self, norm: float) -> float:
        if not math.isfinite(norm):
            return 1.0
        if norm <= 0:
            return 0.0
        if self.high <= self.low:
            return 1.0
        span = math.log10(self.high) - math.log10(self.low)
        return (math.log10(norm) - math.log10(self.low)) / span

    def color(self, norm: float) -> QColor:
        return grad_color(self.position(norm))


def format_norm(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


# -- fonts and sizes ------------------------------------------------------------------------


class HighlightWidths:
    """Border widths of selected and tie-linked nodes and boxes: thicker in presentation
    mode (one setting for every scene: the window has one look)."""

    def __init__(self) -> None:
        self.set(2.0)

    def set(self, line_width: float) -> None:
        self.node = 1.75 * line_width
        self.box = 1.5 * line_width


HIGHLIGHT = HighlightWidths()


def _font(px: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPixelSize(round(px))
    font.setBold(bold)
    return font


class LabelMetrics:
    """Text widths of the view's fonts as plain per-character tables, so that node sizes
    can be computed in a worker thread (QFontMetrics belongs to the GUI thread)."""

    def __init__(self) -> None:
        self.type_font = _font(TYPE_PX, bold=True)
        self.path_font = _font(PATH_PX)
        self.box_font = _font(BOX_PX, bold=True)
        self.label_font = _font(LABEL_PX)
        self.badge_font = _font(BADGE_PX, bold=True)
        chars = [chr(c) for c in range(32, 127)] + list("×↻…·‖")
        self._tables = {}
        for name, font in (("type", self.type_font), ("path", self.path_font)):
            metrics = QFontMetricsF(font)
            table = {c: metrics.horizontalAdvance(c) for c in chars}
            table[""] = metrics.horizontalAdvance("W")  # anything else
            self._tables[name] = table

    def width(self, text: str, which: str) -> float:
        table = self._tables[which]
        fallback = table[""]
        return sum(table.get(c, fallback) for c in text)

    def node_size(self, node: GraphNode) -> tuple[float, float]:
        """Width and height of a node's box (the layout's `node_size`): its label lines,
        padding, and room for the expand marker of a collapsed container."""
        lines = node.label_lines()
        widths = [self.width(lines[0], "type")] + [self.width(t, "path") for t in lines[1:]]
        marker = MARKER_SPACE if node.kind in (CONTAINER, FOLD) else 0.0
        width = max(widths) + 2 * PAD_X + marker
        width = WIDTH_STEP * math.ceil(max(width, 72.0) / WIDTH_STEP)
        return width, LINE_H * len(lines) + 2 * PAD_Y


def to_qrect(r: Rect) -> QRectF:
    return QRectF(r.x, r.y, r.w, r.h)


# enum members looked up once: each lookup costs microseconds, and a scene has thousands of items
NO_PEN = QPen(Qt.PenStyle.NoPen)
HAND = Qt.CursorShape.PointingHandCursor

FAR = 0.3  # below this zoom items are drawn as plain blocks: fast for thousands of them


def _lod(painter: QPainter) -> float:
    return QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())


# -- nodes and boxes ------------------------------------------------------------------------


class NodeItem(QGraphicsItem):
    """One visible node: a module call, a collapsed container, or the model input/output."""

    Z = 10

    def __init__(self, node: GraphNode, rect: Rect, metrics: LabelMetrics) -> None:
        super().__init__()
        self.node = node
        self.metrics = metrics
        self.rect = to_qrect(rect)
        self.lines = node.label_lines()
        self.fill = IO_FILL if node.kind in (INPUT, OUTPUT) else NODE_FILL
        if node.kind in (CONTAINER, FOLD):
            self.fill = COLLAPSED_FILL
        self.ink = INK
        self.grad_norm: float | None = None
        self.highlight: QColor | None = None  # selected or linked to the selection
        self.selected = False
        self.hovered = False
        # asked for on every index update and paint: computed once
        self._badge = self._badge_rect()
        bounds = self.rect.adjusted(-8, -8, 10, 10)
        self._bounds = bounds.united(self._badge.adjusted(-2, -2, 2, 2)) if self._badge else bounds
        self.setZValue(self.Z)
        self.setAcceptHoverEvents(True)

    @property
    def node_id(self) -> str:
        return self.node.id

    @property
    def is_collapsed(self) -> bool:
        """A collapsed container or a fold: there is more inside, a click away."""
        return self.node.kind in (CONTAINER, FOLD)

    @property
    def is_fold(self) -> bool:
        return self.node.kind == FOLD

    def marker_rect(self) -> QRectF:
        """The expand marker of a collapsed container (empty for other nodes)."""
        if not self.is_collapsed:
            return QRectF()
        r = self.rect
        return QRectF(r.x() + 8, r.center().y() - MARKER / 2, MARKER, MARKER)

    def badge_rect(self) -> QRectF:
        """The loop badge (`↻ 5`) of a module called in a loop (empty for others)."""
        return QRectF(self._badge)

    def _badge_rect(self) -> QRectF:
        if self.node.calls_at_site <= 1:
            return QRectF()
        text = f"↻ {self.node.calls_at_site}"
        width = QFontMetricsF(self.metrics.badge_font).horizontalAdvance(text) + 12
        return QRectF(self.rect.right() - width + 6, self.rect.top() - 11, width, 20)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.rect.united(self._badge) if self._badge else self.rect)
        return path

    def set_grad(self, norm: float | None, scale: GradScale | None) -> None:
        """Fill by gradient norm (None: the plain fill)."""
        if self.node.kind in (INPUT, OUTPUT):
            return
        self.grad_norm = norm
        if norm is None or scale is None:
            self.fill = COLLAPSED_FILL if self.is_collapsed else NODE_FILL
        else:
            self.fill = scale.color(norm)
        self.ink = ink_on(self.fill)
        self.update()

    def set_highlight(self, color: QColor | None, selected: bool = False) -> None:
        if color == self.highlight and selected == self.selected:
            return
        self.highlight = color
        self.selected = selected
        self.update()

    def hoverEnterEvent(self, event) -> None:
        self.hovered = True
        self.setCursor(HAND)  # here rather than for each of thousands of nodes up front
        self.update()

    def hoverLeaveEvent(self, event) -> None:
        self.hovered = False
        self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        r = self.rect
        if _lod(painter) < FAR:  # zoomed far out: a coloured block is all one can see
            painter.setPen(QPen(self.highlight or NODE_BORDER, 0))
            painter.setBrush(self.highlight or self.fill)
            painter.drawRect(r)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        io = self.node.kind in (INPUT, OUTPUT)
        radius = r.height() / 2 if io else 7.0
        if self.highlight is not None:  # a halo: visible even when zoomed far out
            halo = QColor(self.highlight)
            halo.setAlpha(90)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(halo)
            painter.drawRoundedRect(r.adjusted(-7, -7, 7, 7), radius + 5, radius + 5)
        if self.is_collapsed:  # a stack of cards: there is more inside (a fold: many more)
            painter.setPen(QPen(COLLAPSED_BORDER, 1.5))
            for depth in (2, 1) if self.is_fold else (1,):
                painter.setBrush(self.fill.darker(100 + 8 * depth))
                painter.drawRoundedRect(r.translated(4 * depth, 4 * depth), radius, radius)
        border = IO_BORDER if io else COLLAPSED_BORDER if self.is_collapsed else NODE_BORDER
        width = 1.6
        if self.highlight is not None:
            border, width = self.highlight, HIGHLIGHT.node
        elif self.hovered:
            border, width = SELECTED_COLOR, 2.5
        painter.setPen(QPen(border, width))
        painter.setBrush(self.fill)
        painter.drawRoundedRect(r, radius, radius)
        lod = _lod(painter)
        if lod * TYPE_PX >= 4:
            self._paint_text(painter)
        if self.is_collapsed:
            paint_marker(painter, self.marker_rect(), expanded=False)
        badge = self._badge
        if not badge.isEmpty():
            painter.setPen(QPen(QColor("#ffffff"), 1.5))
            painter.setBrush(QColor(LOOP_COLOR))
            painter.drawRoundedRect(badge, 10, 10)
            painter.setFont(self.metrics.badge_font)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, f"↻ {self.node.calls_at_site}")

    def _paint_text(self, painter: QPainter) -> None:
        r = self.rect
        left = r.x() + PAD_X + (MARKER_SPACE if self.is_collapsed else 0.0)
        width = r.right() - PAD_X - left
        top = r.center().y() - LINE_H * len(self.lines) / 2
        for k, line in enumerate(self.lines):
            font = self.metrics.type_font if k == 0 else self.metrics.path_font
            painter.setFont(font)
            ink = self.ink if k == 0 else (SUBTLE_INK if self.ink == INK else self.ink)
            painter.setPen(ink)
            text = QFontMetricsF(font).elidedText(line, Qt.TextElideMode.ElideMiddle, width)
            painter.drawText(
                QRectF(left, top + k * LINE_H, width, LINE_H),
                Qt.AlignmentFlag.AlignCenter,
                text,
            )


def paint_marker(painter: QPainter, rect: QRectF, *, expanded: bool) -> None:
    """The square with − (expanded: click to collapse) or + (collapsed: click to expand)."""
    painter.setPen(QPen(COLLAPSED_BORDER, 1.4))
    painter.setBrush(QColor("#ffffff"))
    painter.drawRoundedRect(rect, 3, 3)
    c = rect.center()
    arm = rect.width() / 2 - 3.5
    painter.setPen(QPen(COLLAPSED_BORDER, 2.0))
    painter.drawLine(QPointF(c.x() - arm, c.y()), QPointF(c.x() + arm, c.y()))
    if not expanded:
        painter.drawLine(QPointF(c.x(), c.y() - arm), QPointF(c.x(), c.y() + arm))


class BoxItem(QGraphicsItem):
    """An expanded container: a frame around its contents, with a header that collapses it."""

    def __init__(self, node: GraphNode, rect: Rect, metrics: LabelMetrics) -> None:
        super().__init__()
        self.node = node
        self.metrics = metrics
        self.rect = to_qrect(rect)
        self.title = box_title(node)
        self._bounds = self.rect.adjusted(-4, -4, 4, 4)
        self.highlight: QColor | None = None
        self.setZValue(BOX_Z + node.depth)  # below everything; outer boxes below inner ones

    @property
    def node_id(self) -> str:
        return self.node.id

    def header_rect(self) -> QRectF:
        return QRectF(self.rect.x(), self.rect.y(), self.rect.width(), BOX_TITLE_H)

    def marker_rect(self) -> QRectF:
        h = self.header_rect()
        return QRectF(h.x() + 5, h.center().y() - MARKER / 2, MARKER, MARKER)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.rect)
        return path

    def set_highlight(self, color: QColor | None) -> None:
        if color != self.highlight:
            self.highlight = color
            self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        fill = BOX_FILLS[self.node.depth % 2]
        border = self.highlight if self.highlight is not None else BOX_BORDER
        if _lod(painter) < FAR:
            painter.setPen(QPen(border, 0))
            painter.setBrush(fill)
            painter.drawRect(self.rect)
            painter.fillRect(self.header_rect(), BOX_HEADER)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(border, HIGHLIGHT.box if self.highlight is not None else 1.4))
        painter.setBrush(fill)
        painter.drawRoundedRect(self.rect, 9, 9)
        header = self.header_rect()
        clip = QPainterPath()
        clip.addRoundedRect(self.rect, 9, 9)
        painter.save()
        painter.setClipPath(clip)
        painter.fillRect(header, BOX_HEADER)
        painter.restore()
        paint_marker(painter, self.marker_rect(), expanded=True)
        if _lod(painter) * BOX_PX >= 4:
            painter.setFont(self.metrics.box_font)
            painter.setPen(INK)
            left = self.marker_rect().right() + 6
            text_rect = QRectF(left, header.y(), header.right() - left - 6, header.height())
            text = QFontMetricsF(self.metrics.box_font).elidedText(
                self.title, Qt.TextElideMode.ElideMiddle, text_rect.width()
            )
            painter.drawText(
                text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text
            )


# -- edges ----------------------------------------------------------------------------------

ARROW = 9.0


def edge_path(points: Sequence[tuple[float, float]]) -> QPainterPath:
    """A route as a smooth path (straight along a lane, an S-curve where it changes
    height) ending in an open arrowhead. QPainterPath is a plain value: this runs in the
    layout's worker, so that drawing thousands of edges costs the GUI thread little."""
    path = QPainterPath(QPointF(*points[0]))
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if abs(y1 - y0) < 0.5:
            path.lineTo(x1, y1)
        else:
            mid = (x0 + x1) / 2
            path.cubicTo(mid, y0, mid, y1, x1, y1)
    tip_x, tip_y = points[-1]
    path.moveTo(tip_x - ARROW, tip_y - ARROW * 0.6)
    path.lineTo(tip_x, tip_y)
    path.lineTo(tip_x - ARROW, tip_y + ARROW * 0.6)
    return path


class EdgeItem(QGraphicsPathItem):
    """A data-flow arrow along the route the layout gave: one item drawn by Qt itself (no
    Python paint), since a big graph has thousands, all on screen when zoomed out."""

    Z = 0.0  # the default: above boxes, below nodes (no setZValue for thousands of edges)

    def __init__(self, path: QPainterPath) -> None:
        super().__init__(path)
        self.setPen(EDGE_PEN)
        self.emphasis: QColor | None = None

    def set_emphasis(self, color: QColor | None) -> None:
        if color == self.emphasis:
            return
        self.emphasis = color
        self.setPen(edge_pen(color, 3.0) if color is not None else EDGE_PEN)
        self.setZValue(self.Z + (1 if color is not None else 0))


def edge_pen(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)  # a sharp arrow tip
    return pen


EDGE_PEN = edge_pen(EDGE_COLOR, 2.0)


# -- tie links ------------------------------------------------------------------------------

BOUNDS_MARGIN = 20.0  # around the layout: halos, badges, arrowheads
MAX_LABEL_TENSORS = 3  # names on a link's label; the tooltip lists them all
MAX_LABEL_VALUES = 8  # per-use gradients on a loop's label
BOX_Z = -1000.0
BRACKET_RADIUS = 22.0  # corners of a tie link
SIDE_GAP = 36.0  # how far right of a column a link between its nodes runs
LINK_Z = 20
LABEL_Z = 30


class TieLinkItem(QGraphicsPathItem):
    """A bracket over the graph between two nodes that share tensors."""

    def __init__(self, kind: str, color: QColor) -> None:
        super().__init__()
        self.kind = kind
        self.color = color
        self.ends: tuple[QPointF, QPointF] = (QPointF(), QPointF())
        self.emphasis = 0  # 0 normal, 1 on the selection, -1 faded (another one selected)
        self.setZValue(LINK_Z)
        self._apply_pen()

    def _apply_pen(self) -> None:
        color = QColor(self.color)
        width = 3.0
        if self.emphasis > 0:
            width = 4.5
        elif self.emphasis < 0:
            color.setAlpha(110)
        self.setPen(link_pen(self.kind, color, width))

    def set_emphasis(self, emphasis: int) -> None:
        if emphasis != self.emphasis:
            self.emphasis = emphasis
            self.setZValue(LINK_Z + (1 if emphasis > 0 else 0))
            self._apply_pen()

    def set_bracket(self, a: QRectF, b: QRectF, top: float) -> tuple[bool, QPointF]:
        """Up from the top of `a`, across at height `top` (above whatever lies between), down
        into the top of `b`, with rounded corners; for two nodes in one column, out of their
        right sides instead. Returns whether it went sideways, and where its label goes."""
        ax, bx = a.center().x(), b.center().x()
        if abs(bx - ax) < min(a.width(), b.width()) / 2:  # one above the other
            start, end = QPointF(a.right(), a.center().y()), QPointF(b.right(), b.center().y())
            side = max(a.right(), b.right()) + SIDE_GAP
            sign = 1.0 if end.y() > start.y() else -1.0
            r = max(0.0, min(BRACKET_RADIUS, abs(end.y() - start.y()) / 2, SIDE_GAP))
            path = QPainterPath(start)
            path.lineTo(side - r, start.y())
            path.quadTo(side, start.y(), side, start.y() + sign * r)
            path.lineTo(side, end.y() - sign * r)
            path.quadTo(side, end.y(), side - r, end.y())
            path.lineTo(end)
            anchor, sideways = QPointF(side, (start.y() + end.y()) / 2), True
        else:
            start, end = QPointF(ax, a.top()), QPointF(bx, b.top())
            sign = 1.0 if bx > ax else -1.0
            r = max(0.0, min(BRACKET_RADIUS, abs(bx - ax) / 2, a.top() - top, b.top() - top))
            path = QPainterPath(start)
            path.lineTo(ax, top + r)
            path.quadTo(ax, top, ax + sign * r, top)
            path.lineTo(bx - sign * r, top)
            path.quadTo(bx, top, bx, top + r)
            path.lineTo(end)
            anchor, sideways = QPointF((ax + bx) / 2, top), False
        self.ends = (start, end)
        self.setPath(path)
        return sideways, anchor

    def set_across_rows(
        self, a: QRectF, b: QRectF, top: float, side: float, above_b: float
    ) -> QPointF:
        """Between rows of a wrapped graph: up from the top of `a` to height `top` (above
        its row), right to `side` (beyond the rows' right ends), down to `above_b` (in the
        gap above the row of `b`), back left and down into the top of `b`. Nothing it
        passes crosses a node. Returns where its label goes (on its first stretch)."""
        ax, bx = a.center().x(), b.center().x()
        r = max(0.0, min(BRACKET_RADIUS, (above_b - top) / 2, a.top() - top))
        path = QPainterPath(QPointF(ax, a.top()))
        path.lineTo(ax, top + r)
        path.quadTo(ax, top, ax + r, top)
        path.lineTo(side - r, top)
        path.quadTo(side, top, side, top + r)
        path.lineTo(side, above_b - r)
        path.quadTo(side, above_b, side - r, above_b)
        corner = min(r, max(0.0, b.top() - above_b))
        path.lineTo(bx + corner, above_b)
        path.quadTo(bx, above_b, bx, above_b + corner)
        path.lineTo(bx, b.top())
        self.ends = (QPointF(ax, a.top()), QPointF(bx, b.top()))
        self.setPath(path)
        return QPointF((ax + side) / 2, top)

    def boundingRect(self) -> QRectF:
        return super().boundingRect().adjusted(-6, -6, 6, 6)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(self.pen())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        painter.setPen(QPen(QColor("#ffffff"), 1.5))
        painter.setBrush(self.pen().color())
        for end in self.ends:
            painter.drawEllipse(end, 5.0, 5.0)


class LinkLabelItem(QGraphicsItem):
    """The names of the tensors a tie link carries (and, after backward, each use's
    gradient), on a white tag in the link's colour."""

    def __init__(self, lines: list[str], color: QColor, metrics: LabelMetrics) -> None:
        super().__init__()
        self.color = color
        self.metrics = metrics
        self.lines: list[str] = []
        self._size = QSizeF()
        self.setZValue(LABEL_Z)
        self.set_lines(lines)

    def set_lines(self, lines: list[str]) -> None:
        if lines == self.lines:
            return
        self.prepareGeometryChange()
        self.lines = list(lines)
        fm = QFontMetricsF(self.metrics.label_font)
        width = max((fm.horizontalAdvance(t) for t in lines), default=0.0) + 14
        self._size = QSizeF(width, LINE_H * len(lines) + 6)
        self.update()

    def size(self) -> QSizeF:
        return self._size

    def boundingRect(self) -> QRectF:
        w, h = self._size.width(), self._size.height()
        return QRectF(-w / 2, -h / 2, w, h).adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if not self.lines:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self._size.width(), self._size.height()
        rect = QRectF(-w / 2, -h / 2, w, h)
        painter.setPen(QPen(self.color, 1.6))
        painter.setBrush(QColor(255, 255, 255, 240))
        painter.drawRoundedRect(rect, 6, 6)
        if _lod(painter) * LABEL_PX < 4:
            return
        painter.setFont(self.metrics.label_font)
        painter.setPen(self.color.darker(150))
        for k, line in enumerate(self.lines):
            painter.drawText(
                QRectF(rect.x(), rect.y() + 3 + k * LINE_H, w, LINE_H),
                Qt.AlignmentFlag.AlignCenter,
                line,
            )


# -- legend ---------------------------------------------------------------------------------


@dataclass
class LegendContent:
    """What the legend explains: data flow, the link kinds present, the gradient scale."""

    data_flow: bool = True
    kinds: tuple[str, ...] = ()
    tied_color: QColor | None = None  # the first tie group's colour, as an example
    grad: GradScale | None = None


LEGEND_PX = 14.0
LEGEND_ROW = 24.0
LEGEND_SAMPLE = 44.0
GRAD_BAR_W = 150.0


def legend_size(content: LegendContent) -> QSizeF:
    fm = QFontMetricsF(_font(LEGEND_PX))
    rows = _legend_rows(content)
    width = max((fm.horizontalAdvance(t) for _, t in rows), default=0.0) + LEGEND_SAMPLE + 26
    height = len(rows) * LEGEND_ROW + 12
    if content.grad is not None:
        width = max(width, GRAD_BAR_W + 2 * fm.horizontalAdvance("0.000e-00") + 30)
        width = max(width, fm.horizontalAdvance("‖grad‖ of each node's parameters (log)") + 20)
        height += 2 * LEGEND_ROW + 8
    return QSizeF(width, height if rows or content.grad else 0.0)


def _legend_rows(content: LegendContent) -> list[tuple[str, str]]:
    rows = [("flow", "data flow")] if content.data_flow else []
    rows += [(kind, KIND_NAMES[kind]) for kind in content.kinds]
    return rows


def paint_legend(painter: QPainter, origin: QPointF, content: LegendContent) -> None:
    """Draw the legend with its top-left corner at `origin` (on screen or in an export)."""
    size = legend_size(content)
    if size.height() <= 0:
        return
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.translate(origin)
    painter.setPen(QPen(BOX_BORDER, 1.2))
    painter.setBrush(QColor(255, 255, 255, 235))
    painter.drawRoundedRect(QRectF(0, 0, size.width(), size.height()), 7, 7)
    font = _font(LEGEND_PX)
    painter.setFont(font)
    y = 6.0
    for kind, text in _legend_rows(content):
        mid = y + LEGEND_ROW / 2
        a, b = QPointF(10, mid), QPointF(10 + LEGEND_SAMPLE - 8, mid)
        if kind == "flow":
            painter.setPen(QPen(EDGE_COLOR, 1.8))
            painter.drawLine(a, b - QPointF(ARROW - 1, 0))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(EDGE_COLOR)
            painter.drawPolygon(QPolygonF([b, b + QPointF(-ARROW, -5), b + QPointF(-ARROW, 5)]))
        else:
            tie = content.tied_color if kind == TIED_TENSOR else None
            color = tie if tie is not None else link_color(kind, 0)
            painter.setPen(link_pen(kind, color, 3.0))
            painter.drawLine(a, b)
            painter.setPen(QPen(QColor("#ffffff"), 1.2))
            painter.setBrush(color)
            painter.drawEllipse(a, 4.0, 4.0)
            painter.drawEllipse(b, 4.0, 4.0)
        painter.setPen(INK)
        painter.drawText(
            QRectF(LEGEND_SAMPLE + 16, y, size.width(), LEGEND_ROW),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            text,
        )
        y += LEGEND_ROW
    if content.grad is not None:
        _paint_grad_scale(painter, y + 4, size.width(), content.grad)
    painter.restore()


def _paint_grad_scale(painter: QPainter, y: float, width: float, scale: GradScale) -> None:
    painter.setPen(INK)
    painter.drawText(
        QRectF(10, y, width - 20, LEGEND_ROW),
        Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
        "‖grad‖ of each node's parameters (log)",
    )
    y += LEGEND_ROW
    fm = QFontMetricsF(painter.font())
    low, high = format_norm(scale.low), format_norm(scale.high)
    low_w = fm.horizontalAdvance(low) + 6
    bar = QRectF(10 + low_w, y + 4, width - 20 - low_w - fm.horizontalAdvance(high) - 6, 13)
    gradient = QLinearGradient(bar.topLeft(), bar.topRight())
    for k, stop in enumerate(GRAD_STOPS):
        gradient.setColorAt(k / (len(GRAD_STOPS) - 1), QColor(stop))
    painter.setPen(QPen(BOX_BORDER, 1.0))
    painter.setBrush(QBrush(gradient))
    painter.drawRect(bar)
    painter.setPen(INK)
    painter.drawText(QRectF(10, y, low_w, LEGEND_ROW), Qt.AlignmentFlag.AlignVCenter, low)
    painter.drawText(
        QRectF(bar.right() + 6, y, width, LEGEND_ROW), Qt.AlignmentFlag.AlignVCenter, high
    )


# -- the scene ------------------------------------------------------------------------------


def canonical_path(tree: ModuleTree, tensor: TensorNode) -> str:
    return tree.tie_groups[tensor.tie].paths[0] if tensor.tie is not None else tensor.path
