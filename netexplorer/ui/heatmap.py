"""A tensor as a heatmap (pyqtgraph), per STYLE.md.

- Row-major with row 0 at the top (`imageAxisOrder='row-major'` is set in ui/plotting.py,
  and the view's y axis is inverted): an 8x4 weight is 8 rows tall.
- A diverging colour map centred at zero (CET-D1 unless the user picks another) with
  symmetric levels and a colour bar.
- NaN is drawn magenta on an overlay, so it can never be read as zero (the map's centre) or
  as a gap between conv kernels (the view's grey background shows through gaps).
- Hovering shows `[i, j] = value`, read from the full tensor, not from the reduced display.
  Where cells are large enough each shows its number (a 1x1 or 8x8 tensor reads like a
  table); axis ticks are as many as the space allows; double-clicking a cell asks to edit it.
- Fonts, colours and the colour map follow the window's look (appearance.py).
- `set_tensor` takes a fresh array it never mutates afterwards.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtWidgets import QWidget

from ..core.display import DisplayArray, symmetric_levels
from .appearance import Look, appearance
from .plotting import pg

COLORMAP = "CET-D1"
VIEW_BACKGROUND = "#55595c"  # mid grey: not the map's light centre, not magenta
NAN_RGBA = (255, 0, 255, 255)
ASPECT_UNLOCK_RATIO = 12  # strips longer than this fill the view instead of a thin line
TICK_GAP_PX = 10  # at least this much space between two tick labels
COMPACT_TICKS = 4
MAX_NUMBERED_CELLS = 32 * 32  # more cells than this never get numbers (and never fit)
LEVELS_KEEP = 0.8  # live updates keep the colour scale while the data fills 80-100% of it


def format_value(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def format_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def cell_text(v: float) -> str:
    """A value as `print(tensor)` writes its elements: four decimals, or scientific when it
    is tiny or huge."""
    if not math.isfinite(v):
        return format_value(v)
    if v == 0 or 1e-4 <= abs(v) < 1e4:
        return f"{v:.4f}"
    return f"{v:.2e}"


class TensorImageItem(pg.ImageItem):
    """An ImageItem that reports which display cell the mouse is over, and double clicks."""

    cell_hovered = Signal(object)  # (row, col) or None when the mouse leaves
    cell_double_clicked = Signal(int, int)

    def hoverEvent(self, ev) -> None:
        if ev.isExit():
            self.cell_hovered.emit(None)
            return
        ev.acceptClicks(Qt.MouseButton.LeftButton)  # double clicks on a cell come here
        pos = ev.pos()
        self.cell_hovered.emit((math.floor(pos.y()), math.floor(pos.x())))

    def mouseClickEvent(self, ev) -> None:
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            pos = ev.pos()
            self.cell_double_clicked.emit(math.floor(pos.y()), math.floor(pos.x()))
            ev.accept()
        else:
            super().mouseClickEvent(ev)


class CellNumbers(pg.GraphicsObject):
    """Each cell's value written on it, in one paint, where cells are large enough for the
    text (and the display is not reduced: a cell is one element)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: np.ndarray | None = None
        self.dark: np.ndarray | None = None  # True where the cell's colour is dark
        self.font = QFont()
        self._texts: list[list[str]] = []
        self._widest = 0.0

    def set_cells(self, data: np.ndarray | None, dark: np.ndarray | None) -> None:
        self.prepareGeometryChange()
        small = data is not None and data.size <= MAX_NUMBERED_CELLS
        self.data = data if small else None
        self.dark = dark if small else None
        self._texts = [[cell_text(float(v)) for v in row] for row in data] if small else []
        metrics = QFontMetricsF(self.font)
        self._widest = max(
            (metrics.horizontalAdvance(t) for row in self._texts for t in row), default=0.0
        )
        self.update()

    def set_font(self, font: QFont) -> None:
        self.font = font
        if self.data is not None:
            self.set_cells(self.data, self.dark)

    def boundingRect(self) -> QRectF:
        if self.data is None:
            return QRectF()
        rows, cols = self.data.shape
        return QRectF(0, 0, cols, rows)

    def fits(self, width_px: float, height_px: float) -> bool:
        """Whether the numbers fit in cells of this many pixels."""
        metrics = QFontMetricsF(self.font)
        return width_px >= self._widest + 6 and height_px >= metrics.height() + 2

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.data is None:
            return
        # cell sizes and centres in the painter's logical pixels (the world transform: on
        # screen and in an export drawn at a larger device pixel ratio alike)
        transform = painter.worldTransform()
        width, height = abs(transform.m11()), abs(transform.m22())
        if not self.fits(width, height):
            return
        painter.save()
        painter.resetTransform()
        painter.setFont(self.font)
        rows, cols = self.data.shape
        light, dark = QColor("#111111"), QColor("#ffffff")
        for r in range(rows):
            for c in range(cols):
                centre = transform.map(QPointF(c + 0.5, r + 0.5))
                box = QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height)
                painter.setPen(dark if self.dark is not None and self.dark[r, c] else light)
                painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self._texts[r][c])
        painter.restore()


def _ticks(
    count: int, step: int, center: float, spacing: float, every: int
) -> list[tuple[float, str]]:
    """Tick marks at cell centres, labelled with tensor indices (cells of `spacing`
    display units, each standing for `step` tensor indices), one every `every` cells at
    least, rounded to 1, 2, 5, 10, 20, 25, 50, 100..."""
    if count <= 0:
        return []
    every = max(1, every)
    nice = next((n for n in (1, 2, 5, 10, 20, 25, 50, 100) if n >= every), every)
    if nice > 100:
        nice = 10 ** math.ceil(math.log10(every))
    return [(i * spacing + center, str(i * step)) for i in range(0, count, nice)]


def ticks_every(count: int, step: int, cell_px: float, label_px: float) -> int:
    """How many cells apart tick labels must be so that they never touch: the widest label
    (the last index) and a gap, over the pixels of one cell."""
    if cell_px <= 0:
        return max(1, count)
    return max(1, math.ceil((label_px + TICK_GAP_PX) / cell_px))


class HeatmapView(pg.GraphicsLayoutWidget):
    """One tensor (or gradient) as a heatmap with its own colour bar."""

    readout_changed = Signal(str)  # "[i, j] = value", or "" when the mouse leaves
    cell_double_clicked = Signal(object)  # the tensor index of the cell

    def __init__(
        self, parent: QWidget | None = None, title: str = "", compact: bool = False
    ) -> None:
        super().__init__(parent)
        self.compact = compact  # small views: no axis titles, fewer ticks
        self._title = title
        self.plot = self.addPlot()
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getViewBox().setBackgroundColor(VIEW_BACKGROUND)
        self.image = TensorImageItem()
        self.plot.addItem(self.image)
        self.nan_overlay = pg.ImageItem()
        self.nan_overlay.setZValue(5)
        self.plot.addItem(self.nan_overlay)
        self.numbers = CellNumbers()
        self.numbers.setZValue(6)
        self.plot.addItem(self.numbers)
        self.colorbar = pg.ColorBarItem(
            colorMap=pg.colormap.get(COLORMAP), interactive=False, width=18
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.image.cell_hovered.connect(self._on_cell_hovered)
        self.image.cell_double_clicked.connect(self._on_cell_double_clicked)
        self.plot.getViewBox().sigRangeChanged.connect(self._update_ticks)
        self.plot.getViewBox().sigResized.connect(self._update_ticks)
        self._values: np.ndarray | None = None
        self._display: DisplayArray | None = None
        self.levels: tuple[float, float] = (-1.0, 1.0)
        self.look = Look()
        self.tick_font = QFont()
        look = appearance()
        self.apply_look(look.look)
        look.changed.connect(self.apply_look)

    # -- look -------------------------------------------------------------------------------

    def apply_look(self, look: Look) -> None:
        """Colours, fonts and colour map of the window's look."""
        self.look = look
        colors = look.colors
        self.setBackground(colors.background)
        if self._title:
            self.plot.setTitle(self._title, color=colors.text, size=f"{look.pt(11):.1f}pt")
        self.tick_font = QFont()
        self.tick_font.setPointSizeF(look.pt(9))
        axes = [self.plot.getAxis("left"), self.plot.getAxis("bottom")]
        axes.append(self.colorbar.getAxis("right"))
        for axis in axes:
            axis.setPen(colors.text)
            axis.setTextPen(colors.text)
            # room for tick labels grows and is kept: a narrower tensor's labels laid the
            # plot out again, and painted it again, on every selection (and it jumped)
            axis.setStyle(
                tickFont=self.tick_font, tickTextOffset=look.px(4), autoReduceTextSpace=False
            )
            axis.label.setFont(self.tick_font)
        self.colorbar.setColorMap(pg.colormap.get(look.colormap))
        self.colorbar.getAxis("right").setWidth(look.px(42))
        self.colorbar.layout.setColumnFixedWidth(1, look.px(18))  # the bar itself (vertical)
        number_font = QFont()
        number_font.setPointSizeF(look.pt(8.5))
        self.numbers.set_font(number_font)
        if self._display is not None:
            self._set_axes_labels(self._display)
            self._update_ticks()
            self._update_numbers()

    # -- content ----------------------------------------------------------------------------

    @property
    def display(self) -> DisplayArray | None:
        return self._display

    def set_tensor(
        self,
        values: np.ndarray,
        display: DisplayArray,
        levels: tuple[float, float] | None = None,
    ) -> None:
        """Show `display` (made from `values`); hover reads `values`. Levels default to
        symmetric around zero over the data."""
        previous = self._display
        self._values = values
        self._display = display
        data = display.data
        if levels is None:
            levels = symmetric_levels(data)
            if previous is not None and previous.data.shape == data.shape:
                # a live update: keep the scale while the data stays within it and fills
                # most of it, so the colour bar does not flicker (and redraw) every frame
                low, high = self.levels[1] * LEVELS_KEEP, self.levels[1]
                if low <= levels[1] <= high:
                    levels = self.levels
        self.levels = levels
        self.image.setImage(data, autoLevels=False, levels=self.levels)
        self.colorbar.setLevels(self.levels)
        lo, hi = self.levels
        self.colorbar.rounding = max((hi - lo) / 1000, 1e-12)  # the default of 1 snaps to 0
        nan = display.nan_mask()
        if nan.any():
            overlay = np.zeros((*data.shape, 4), dtype=np.uint8)
            overlay[nan] = NAN_RGBA
            self.nan_overlay.setImage(overlay, autoLevels=False, levels=(0, 255))
            self.nan_overlay.setVisible(True)
        else:
            self.nan_overlay.clear()
            self.nan_overlay.setVisible(False)
        self._update_numbers()
        same_frame = previous is not None and (
            previous.data.shape,
            previous.layout,
            previous.row_step,
            previous.col_step,
        ) == (data.shape, display.layout, display.row_step, display.col_step)
        if same_frame:  # a live update: keep axes and zoom (and skip their costly relayout)
            return
        rows, cols = data.shape
        ratio = max(rows / cols, cols / rows)
        self.plot.setAspectLocked(ratio <= ASPECT_UNLOCK_RATIO)
        self._set_axes_labels(display)
        view_box = self.plot.getViewBox()
        view_box.autoRange(padding=0.02)  # now, so that positions map right away
        view_box.enableAutoRange()  # and on every resize, until the user pans or zooms
        self._update_ticks()

    def clear_tensor(self) -> None:
        self._values = None
        self._display = None
        self.image.clear()
        self.nan_overlay.clear()
        self.numbers.set_cells(None, None)

    def _update_numbers(self) -> None:
        display = self._display
        if display is None or display.reduced or display.layout == "mosaic":
            self.numbers.set_cells(None, None)
            return
        data = display.data
        if data.size > MAX_NUMBERED_CELLS:
            self.numbers.set_cells(None, None)
            return
        lo, hi = self.levels
        span = (hi - lo) or 1.0
        position = np.clip((np.nan_to_num(data) - lo) / span, 0, 1)
        rgb = self.colorbar.colorMap().mapToFloat(position.ravel())[:, :3]
        luminance = (rgb @ np.array([0.2126, 0.7152, 0.0722])).reshape(data.shape)
        self.numbers.set_cells(data, luminance < 0.45)

    # -- axes -------------------------------------------------------------------------------

    def _set_axes_labels(self, display: DisplayArray) -> None:
        left = self.plot.getAxis("left")
        # A strip has no row label (nor row ticks) but keeps the room a matrix's took: the
        # plot then stays where it is (and is not laid out again) going from a matrix to a
        # vector and back. Anything else sizes the axis to its labels.
        keep_room = display.layout == "strip" and not self.compact and not self.look.presenting
        left.setWidth((left.width() or None) if keep_room else None)
        if self.compact:  # small views: the caption says what it is; axes cost frames
            self.plot.hideAxis("left")
            self.plot.hideAxis("bottom")
            return
        if self.look.presenting:  # a projector: the heatmap's room, not "row" and "column"
            self.plot.setLabel("left", "")
            self.plot.setLabel("bottom", "")
            return
        if display.layout == "mosaic" and display.kernel is not None:
            labels = ("output channel", "input channel")
        elif display.layout == "strip":
            labels = ("", "index")
        else:
            labels = ("row", "column")
        style = {"color": self.look.colors.text, "font-size": f"{self.look.pt(9.5):.1f}pt"}
        self.plot.setLabel("left", labels[0], **style)
        self.plot.setLabel("bottom", labels[1], **style)

    def _update_ticks(self, *_args: object) -> None:
        """As many tick labels as fit: each axis gets one label every few cells, so that the
        widest label and a gap fit between two (at any size and text scale)."""
        display = self._display
        if display is None or self.compact:
            return
        view_box = self.plot.getViewBox()
        unit_w, unit_h = view_box.viewPixelSize()  # data units per pixel
        metrics = QFontMetricsF(self.tick_font)
        rows, cols = display.data.shape
        if display.layout == "mosaic" and display.kernel is not None:
            kh, kw = display.kernel
            out_channels, in_channels = display.shape[0], display.shape[1]
            every_row = ticks_every(
                out_channels, 1, (kh + 1) / unit_h if unit_h else 0, metrics.height()
            )
            every_col = ticks_every(
                in_channels,
                1,
                (kw + 1) / unit_w if unit_w else 0,
                metrics.horizontalAdvance(str(in_channels - 1)),
            )
            left = _ticks(out_channels, 1, kh / 2, kh + 1, every_row)
            bottom = _ticks(in_channels, 1, kw / 2, kw + 1, every_col)
        else:
            last_col = str(max(0, (cols - 1) * display.col_step))
            every_row = ticks_every(
                rows, display.row_step, 1 / unit_h if unit_h else 0, metrics.height()
            )
            every_col = ticks_every(
                cols,
                display.col_step,
                1 / unit_w if unit_w else 0,
                metrics.horizontalAdvance(last_col),
            )
            left = _ticks(rows, display.row_step, 0.5, 1, every_row)
            bottom = _ticks(cols, display.col_step, 0.5, 1, every_col)
        if display.layout in ("strip", "scalar"):
            left = []
        self.plot.getAxis("left").setTicks([left])
        self.plot.getAxis("bottom").setTicks([bottom])

    # -- hover and edit ---------------------------------------------------------------------

    def readout(self, row: int, col: int) -> str:
        """`[i, j] = value` for display cell (row, col), from the full tensor; '' if none."""
        if self._values is None or self._display is None:
            return ""
        try:
            index, value = self._display.lookup(self._values, row, col)
        except IndexError:
            return ""
        text = f"{format_index(index)} = {format_value(value)}"
        if self._display.reduced:
            text += "  (largest |value| of its block)"
        return text

    def index_at(self, row: int, col: int) -> tuple[int, ...] | None:
        """The tensor index of display cell (row, col); None for a gap, outside, or a
        reduced display (where a cell stands for a block)."""
        if self._values is None or self._display is None or self._display.reduced:
            return None
        try:
            index, _value = self._display.lookup(self._values, row, col)
        except IndexError:
            return None
        return index

    def cell_rect(self, index: tuple[int, ...]) -> QRectF | None:
        """Where the cell of a tensor index is, in this widget's pixels (for an editor)."""
        display = self._display
        if display is None or self._values is None:
            return None
        rows, cols = display.data.shape
        for r in range(rows):
            for c in range(cols):
                if self.index_at(r, c) == tuple(index):
                    view_box = self.plot.getViewBox()
                    top_left = view_box.mapViewToScene(QPointF(c, r))
                    bottom_right = view_box.mapViewToScene(QPointF(c + 1, r + 1))
                    a = self.mapFromScene(top_left)
                    b = self.mapFromScene(bottom_right)
                    return QRectF(a, b).normalized()
        return None

    def _on_cell_hovered(self, cell: tuple[int, int] | None) -> None:
        self.readout_changed.emit("" if cell is None else self.readout(*cell))

    def _on_cell_double_clicked(self, row: int, col: int) -> None:
        index = self.index_at(row, col)
        if index is not None:
            self.cell_double_clicked.emit(index)
