"""The per-use gradients of a shared tensor side by side: one heatmap per use and one of
their sum, on one colour scale, each given the same space.

Up to four panels share one row; five to eight make two rows of equal columns; beyond eight
the panels keep a readable size and the grid scrolls. Panels ignore their own size hints (a
heatmap's hint depends on what it showed last), so their widths never depend on what was
drawn before: the space is split evenly whenever the data arrives, in a window already on
screen as much as in one built afterwards."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QScrollArea, QSizePolicy, QWidget

from ..core.display import DisplayArray
from .titled_heatmap import TitledHeatmap

PER_ROW = 4
MAX_UNSCROLLED = 8
MIN_PANEL = (170, 140)  # pixels at scale 1: below this a heatmap with its bar is unreadable


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) for `count` panels: one row up to 4, then rows of equal columns."""
    if count <= 0:
        return 0, 0
    rows = math.ceil(count / PER_ROW)
    return rows, math.ceil(count / rows)


class UsesView(QScrollArea):
    """A grid of equally sized heatmap panels."""

    def __init__(
        self,
        parent: QWidget | None = None,
        on_readout: Callable[[int, str], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.body = QWidget(self)
        self.grid = QGridLayout(self.body)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.setWidget(self.body)
        self.panels: list[TitledHeatmap] = []  # grows as needed, reused
        self._on_readout = on_readout
        self._shape = (0, 0)
        self.scale = 1.0

    @property
    def shown(self) -> list[TitledHeatmap]:
        return [p for p in self.panels if not p.isHidden()]

    def show_panels(
        self,
        panels: Sequence[tuple[str, np.ndarray, DisplayArray]],
        levels: tuple[float, float] | None,
    ) -> None:
        """Captions, values and display arrays of each panel; `levels` shared by all."""
        while len(self.panels) < len(panels):
            panel = TitledHeatmap(self.body, compact=True)
            panel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            index = len(self.panels)
            if self._on_readout is not None:
                panel.view.readout_changed.connect(lambda t, i=index: self._on_readout(i, t))
            self.panels.append(panel)
        self._arrange(len(panels))
        for panel, (caption, values, display) in zip(self.panels, panels, strict=False):
            panel.show_values(caption, values, display, levels)
            panel.setVisible(True)
        for panel in self.panels[len(panels) :]:
            panel.setVisible(False)

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self._arrange(len(self.shown), force=True)

    def _arrange(self, count: int, force: bool = False) -> None:
        rows, columns = grid_shape(count)
        if (rows, columns) == self._shape and not force:
            return
        self._shape = (rows, columns)
        for panel in self.panels:
            self.grid.removeWidget(panel)
        for i in range(max(self.grid.columnCount(), columns)):
            self.grid.setColumnStretch(i, 1 if i < columns else 0)
            self.grid.setColumnMinimumWidth(i, 0)
        for i in range(max(self.grid.rowCount(), rows)):
            self.grid.setRowStretch(i, 1 if i < rows else 0)
        for index, panel in enumerate(self.panels[:count]):
            self.grid.addWidget(panel, index // columns, index % columns)
        # beyond eight panels they keep a readable size and the grid scrolls
        scrolls = count > MAX_UNSCROLLED
        width, height = (round(v * self.scale) for v in MIN_PANEL)
        for panel in self.panels:
            panel.setMinimumSize(width if scrolls else 0, height if scrolls else 0)
