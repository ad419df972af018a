"""A small picture of how a tensor of a distributed checkpoint is split across ranks' shards:
the tensor's rectangle, cut into its chunks, each coloured by the rank (or file) holding it,
labelled where it fits, with a tooltip naming its rank, file, bytes and element ranges.

The tensor is drawn as a matrix (rows down, as the heatmap draws it): a 2-D tensor as it is,
an N-D one with its leading dimensions flattened into rows, (prod(shape[:-1]), shape[-1]), a
1-D one as one row. A chunk split along a middle dimension covers several bands of rows
there; each band is drawn. Lengths along each axis are proportional to element counts; the
rectangle's aspect ratio is kept within 1:3 and 3:1, so a 50257 x 1024 embedding stays
legible.

Wiring: `set_layout(node.shape, node.handle.chunks)` for the selected TensorNode when
`node.handle.chunks is not None` (core/sources/dcp.py's ShardChunk: offsets, sizes, file,
rank, byte_offset, byte_length); `clear()` otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QHelpEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QToolTip, QWidget

from ..core.text import shape_text
from .icons import TIE_COLORS

MARGIN = 6.0
CAPTION_GAP = 4.0
MAX_ASPECT = 3.0  # widest (or tallest) the tensor's rectangle is drawn, width : height
MAX_BANDS = 4096  # row bands of one chunk drawn exactly; beyond, the chunk's row span


@dataclass(frozen=True)
class ChunkArea:
    """Where one chunk lies in the flattened matrix: row bands [start, stop) and its
    columns [left, right)."""

    index: int  # position in the chunk list given
    bands: tuple[tuple[int, int], ...]
    left: int
    right: int


def matrix_shape(shape: Sequence[int]) -> tuple[int, int]:
    """(rows, columns) of the picture: leading dimensions flattened into rows."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def chunk_area(
    shape: Sequence[int], offsets: Sequence[int], sizes: Sequence[int]
) -> tuple[tuple[tuple[int, int], ...], int, int] | None:
    """The row bands [start, stop) (adjacent ones merged) and the columns [left, right) a
    chunk covers in the flattened matrix; None for a chunk of no elements."""
    if len(shape) == 0:
        return ((0, 1),), 0, 1
    if math.prod(sizes) == 0:
        return None
    left, right = offsets[-1], offsets[-1] + sizes[-1]
    lead_shape, lead_off, lead_size = shape[:-1], offsets[:-1], sizes[:-1]
    if not lead_shape:
        return ((0, 1),), left, right
    # rows step by these strides; the last leading dimension runs along consecutive rows,
    # so each index of the dimensions before it is one band of lead_size[-1] rows
    strides = [math.prod(lead_shape[i + 1 :]) for i in range(len(lead_shape))]
    first = sum(o * s for o, s in zip(lead_off, strides, strict=True))
    outer = lead_size[:-1]
    if math.prod(outer) > MAX_BANDS:  # too many to draw one by one: the span they lie in
        last = sum((o + n - 1) * s for o, n, s in zip(lead_off, lead_size, strides, strict=True))
        return ((first, last + 1),), left, right
    bands: list[tuple[int, int]] = []
    for index in itertools.product(*(range(n) for n in outer)):
        start = first + sum(i * s for i, s in zip(index, strides, strict=False))
        if bands and bands[-1][1] == start:
            bands[-1] = (bands[-1][0], start + lead_size[-1])
        else:
            bands.append((start, start + lead_size[-1]))
    return tuple(bands), left, right


def rank_color(key: int, count: int) -> QColor:
    """The colour of rank (or file) `key` of `count`: Okabe-Ito while there are few, evenly
    spaced hues beyond."""
    if count <= len(TIE_COLORS):
        return QColor(TIE_COLORS[key % len(TIE_COLORS)])
    return QColor.fromHsvF((key / count) % 1.0, 0.55, 0.9)


class ShardPicture(QWidget):
    """The chunks of one tensor, drawn over its rectangle (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shape: tuple[int, ...] = ()
        self._chunks: list[Any] = []
        self._areas: list[ChunkArea] = []
        self._keys: list[int] = []  # colour key of each chunk: its rank, else its file's index
        self._key_count = 0
        self.setMouseTracking(True)
        self.setMinimumSize(120, 80)

    # -- the model ------------------------------------------------------------------------------

    def set_layout(self, shape: Sequence[int], chunks: Sequence[Any]) -> None:
        """Show `shape` cut into `chunks` (objects with offsets, sizes, file and rank)."""
        self._shape = tuple(int(s) for s in shape)
        self._chunks = list(chunks)
        self._areas = []
        for i, c in enumerate(self._chunks):
            found = chunk_area(self._shape, c.offsets, c.sizes)
            if found is not None:
                self._areas.append(ChunkArea(i, *found))
        files = list(dict.fromkeys(c.file for c in self._chunks))
        ranked = all(c.rank is not None for c in self._chunks)
        self._keys = [c.rank if ranked else files.index(c.file) for c in self._chunks]
        self._key_count = (max(self._keys) + 1) if self._keys else 0
        self.update()

    def clear(self) -> None:
        self.set_layout((), [])

    @property
    def chunks(self) -> list[Any]:
        return list(self._chunks)

    # -- geometry -------------------------------------------------------------------------------

    def caption(self) -> str:
        if not self._chunks:
            return ""
        holders = {c.rank if c.rank is not None else c.file for c in self._chunks}
        kind = "ranks" if all(c.rank is not None for c in self._chunks) else "files"
        empty = sum(1 for c in self._chunks if math.prod(c.sizes) == 0 and c.sizes)
        text = f"{shape_text(self._shape, 'pretty')}: {len(self._chunks)} chunks, "
        text += f"{len(holders)} {kind}"
        return text + (f", {empty} empty" if empty else "")

    def tensor_rect(self) -> QRectF:
        """The tensor's rectangle in widget coordinates (empty when nothing is shown)."""
        if not self._chunks:
            return QRectF()
        caption_height = self.fontMetrics().height() + CAPTION_GAP
        room = QRectF(self.rect()).adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN - caption_height)
        rows, cols = matrix_shape(self._shape)
        aspect = min(MAX_ASPECT, max(1 / MAX_ASPECT, cols / rows if rows else 1.0))
        width = min(room.width(), room.height() * aspect)
        height = width / aspect
        return QRectF(room.left() + (room.width() - width) / 2, room.top(), width, height)

    def chunk_rects(self) -> list[tuple[int, QRectF]]:
        """(chunk index, rectangle) for every band of every non-empty chunk, in widget
        coordinates; a band is at least one pixel thick."""
        frame = self.tensor_rect()
        rows, cols = matrix_shape(self._shape)
        if frame.isEmpty() or rows == 0 or cols == 0:
            return []
        sx, sy = frame.width() / cols, frame.height() / rows
        out = []
        for area in self._areas:
            x = frame.left() + area.left * sx
            w = max(1.0, (area.right - area.left) * sx)
            for start, stop in area.bands:
                y = frame.top() + start * sy
                out.append((area.index, QRectF(x, y, w, max(1.0, (stop - start) * sy))))
        return out

    def chunk_at(self, pos: QPointF) -> int | None:
        """The index of the chunk drawn at `pos`, or None."""
        for index, rect in self.chunk_rects():
            if rect.contains(pos):
                return index
        return None

    def tooltip_at(self, pos: QPointF) -> str:
        """What the tooltip says at `pos`: the chunk's rank, its element ranges in the
        tensor, and where its bytes are; "" away from every chunk."""
        index = self.chunk_at(pos)
        if index is None:
            return ""
        c = self._chunks[index]
        holder = f"rank {c.rank}" if c.rank is not None else "rank unknown"
        ranges = ", ".join(f"{o}–{o + n - 1}" for o, n in zip(c.offsets, c.sizes, strict=True))
        what = f"elements [{ranges}] ({shape_text(c.sizes, 'pretty')})" if c.sizes else "all"
        where = "no file named"
        if c.file:
            where = f"{c.file}: {c.byte_length:,} bytes from byte {c.byte_offset:,}"
        return f"{holder}: {what}\n{where}"

    # -- Qt -------------------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(240, 170)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            text = self.tooltip_at(QPointF(event.pos()))
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self._chunks:
            return
        painter = QPainter(self)
        frame = self.tensor_rect()
        palette = self.palette()
        painter.setPen(QPen(palette.color(palette.ColorRole.Mid), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(frame)
        rects = self.chunk_rects()
        largest: dict[int, QRectF] = {}
        for index, rect in rects:
            color = rank_color(self._keys[index], self._key_count)
            painter.fillRect(rect, color)
            if index not in largest or rect.height() > largest[index].height():
                largest[index] = rect
        painter.setPen(QPen(palette.color(palette.ColorRole.Window), 1))
        for _, rect in rects:  # the seams between chunks
            painter.drawRect(rect)
        metrics = painter.fontMetrics()
        for index, rect in largest.items():
            c = self._chunks[index]
            label = f"rank {c.rank}" if c.rank is not None else str(c.file)
            fits = metrics.horizontalAdvance(label) + 4 <= rect.width()
            if not fits or metrics.height() > rect.height():
                continue
            fill = rank_color(self._keys[index], self._key_count)
            painter.setPen(QColor("black") if fill.lightnessF() > 0.55 else QColor("white"))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
        painter.setPen(palette.color(palette.ColorRole.WindowText))
        caption = QRectF(
            MARGIN, frame.bottom() + CAPTION_GAP, self.width() - 2 * MARGIN, metrics.height()
        )
        align = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        text = metrics.elidedText(self.caption(), Qt.TextElideMode.ElideRight, int(caption.width()))
        painter.drawText(caption, align, text)
        painter.end()
