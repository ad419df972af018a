"""A tensor as a heatmap (pyqtgraph), per STYLE.md.

- Row-major with row 0 at the top (`imageAxisOrder='row-major'` is set in ui/__init__.py,
  and the view's y axis is inverted): an 8x4 weight is 8 rows tall.
- A diverging colour map centred at zero (CET-D1) with symmetric levels and a colour bar.
- NaN is drawn magenta on an overlay, so it can never be read as zero (the map's centre) or
  as a gap between conv kernels (the view's grey background shows through gaps).
- Hovering shows `[i, j] = value`, read from the full tensor, not from the reduced display.
- `set_tensor` takes a fresh array it never mutates afterwards.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from ..core.display import DisplayArray, symmetric_levels
from .plotting import pg

COLORMAP = "CET-D1"
VIEW_BACKGROUND = "#55595c"  # mid grey: not the map's light centre, not magenta
NAN_RGBA = (255, 0, 255, 255)
ASPECT_UNLOCK_RATIO = 12  # strips longer than this fill the view instead of a thin line
MAX_TICKS = 12
LEVELS_KEEP = 0.8  # live updates keep the colour scale while the data fills 80-100% of it


def format_value(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def format_index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


class TensorImageItem(pg.ImageItem):
    """An ImageItem that reports which display cell the mouse is over."""

    cell_hovered = Signal(object)  # (row, col) or None when the mouse leaves

    def hoverEvent(self, ev) -> None:
        if ev.isExit():
            self.cell_hovered.emit(None)
            return
        pos = ev.pos()
        self.cell_hovered.emit((math.floor(pos.y()), math.floor(pos.x())))


def _ticks(
    count: int, step: int, center: float, spacing: int, most: int = MAX_TICKS
) -> list[tuple[float, str]]:
    """Tick marks at cell centres, labelled with tensor indices (cells of `spacing`
    display units, each standing for `step` tensor indices), at most about `most`."""
    if count <= 0:
        return []
    every = max(1, math.ceil(count / most))
    nice = next((n for n in (1, 2, 5, 10, 20, 25, 50, 100) if n >= every), every)
    if nice > 100:
        nice = 10 ** math.ceil(math.log10(every))
    return [(i * spacing + center, str(i * step)) for i in range(0, count, nice)]


class HeatmapView(pg.GraphicsLayoutWidget):
    """One tensor (or gradient) as a heatmap with its own colour bar."""

    readout_changed = Signal(str)  # "[i, j] = value", or "" when the mouse leaves

    def __init__(
        self, parent: QWidget | None = None, title: str = "", compact: bool = False
    ) -> None:
        super().__init__(parent)
        self.compact = compact  # small views: no axis titles, fewer ticks
        self.setBackground("w")
        self.plot = self.addPlot()
        if title:
            self.plot.setTitle(title, color="k")
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getViewBox().setBackgroundColor(VIEW_BACKGROUND)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen("k")
            axis.setTextPen("k")
        self.image = TensorImageItem()
        self.plot.addItem(self.image)
        self.nan_overlay = pg.ImageItem()
        self.nan_overlay.setZValue(5)
        self.plot.addItem(self.nan_overlay)
        self.colorbar = pg.ColorBarItem(
            colorMap=pg.colormap.get(COLORMAP), interactive=False, width=18
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        bar_axis = self.colorbar.getAxis("right")
        bar_axis.setPen("k")
        bar_axis.setTextPen("k")
        self.image.cell_hovered.connect(self._on_cell_hovered)
        self._values: np.ndarray | None = None
        self._display: DisplayArray | None = None
        self.levels: tuple[float, float] = (-1.0, 1.0)

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
        self._set_ticks(display)
        view_box = self.plot.getViewBox()
        view_box.autoRange(padding=0.02)  # now, so that positions map right away
        view_box.enableAutoRange()  # and on every resize, until the user pans or zooms

    def clear_tensor(self) -> None:
        self._values = None
        self._display = None
        self.image.clear()
        self.nan_overlay.clear()

    def _set_ticks(self, display: DisplayArray) -> None:
        rows, cols = display.data.shape
        most = 4 if self.compact else MAX_TICKS
        if display.layout == "mosaic" and display.kernel is not None:
            kh, kw = display.kernel
            left = _ticks(display.shape[0], 1, kh / 2, kh + 1, most)
            bottom = _ticks(display.shape[1], 1, kw / 2, kw + 1, most)
            labels = ("output channel", "input channel")
        else:
            left = _ticks(rows, display.row_step, 0.5, 1, most)
            bottom = _ticks(cols, display.col_step, 0.5, 1, most)
            labels = ("", "index") if display.layout == "strip" else ("row", "column")
        if display.layout in ("strip", "scalar"):
            left = []
        if self.compact:  # small views: the caption says what it is; axes cost frames
            self.plot.hideAxis("left")
            self.plot.hideAxis("bottom")
            return
        self.plot.setLabel("left", labels[0])
        self.plot.setLabel("bottom", labels[1])
        self.plot.getAxis("left").setTicks([left])
        self.plot.getAxis("bottom").setTicks([bottom])

    # -- hover ------------------------------------------------------------------------------

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

    def _on_cell_hovered(self, cell: tuple[int, int] | None) -> None:
        self.readout_changed.emit("" if cell is None else self.readout(*cell))
