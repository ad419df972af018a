"""The shown tensor's statistics over a training run: its norm (left axis) and max |w| (right
axis) at every checkpoint, NaN and Inf counts as magenta bars where there are any, and the
slider's checkpoint marked by a line. Clicking the chart moves the slider to the nearest
checkpoint.

The figures come from the run's movement (movement_column.py measures every tensor); until
that has this tensor, the chart measures it alone in a worker (one tensor, every
checkpoint).
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.movement import TensorMovement, iter_movement
from ..core.run import Run
from .appearance import MUTED, Look, follow
from .document import Document
from .plotting import apply_plot_look, pg
from .workers import TaskRunner

NORM_COLOR = "#2e86c1"
MAX_COLOR = "#e67e22"
BAD_COLOR = (204, 0, 204, 170)
MAX_SYMBOLS = 60  # points drawn with a marker up to this many checkpoints


def measure_one(run: Run, path: str):
    """Worker task: the movement of one tensor over the run."""
    table = yield from iter_movement(run, [path])
    return run, table.tensors[path]


class StepChart(QWidget):
    """Norm, max |w| and NaN/Inf counts of the shown tensor per checkpoint."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.plot = pg.PlotWidget(self)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setToolTip("Click to show that checkpoint")
        item = self.plot.getPlotItem()
        self.legend = item.addLegend(offset=(6, 4))
        self.norm_curve = item.plot(
            pen=pg.mkPen(NORM_COLOR, width=2), symbol="o", symbolSize=5, name="norm"
        )
        self.norm_curve.setSymbolBrush(NORM_COLOR)
        self.max_view = pg.ViewBox()  # max |w| on an axis of its own (right)
        item.showAxis("right")
        item.scene().addItem(self.max_view)
        item.getAxis("right").linkToView(self.max_view)
        self.max_view.setXLink(item)
        self.max_curve = pg.PlotDataItem(
            pen=pg.mkPen(MAX_COLOR, width=2), symbol="t", symbolSize=5, symbolBrush=MAX_COLOR
        )
        self.max_view.addItem(self.max_curve)
        self.legend.addItem(self.max_curve, "max |w| (right axis)")
        self.bad_view = pg.ViewBox()  # NaN and Inf counts: bars, scaled to their own range
        item.scene().addItem(self.bad_view)
        self.bad_view.setXLink(item)
        self.bad_view.setMouseEnabled(x=False, y=False)
        self.bad_bars = pg.BarGraphItem(x=[], height=[], width=0.5, brush=BAD_COLOR, pen=None)
        self.bad_view.addItem(self.bad_bars)
        item.getViewBox().sigResized.connect(self._fit_views)
        self.marker = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#c0392b", width=2))
        item.addItem(self.marker)
        self.note = QLabel(" ", self)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self.row: TensorMovement | None = None  # what the chart shows
        self._measured: dict[str, TensorMovement] = {}  # tensors measured alone
        self._runner = TaskRunner(self)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        follow(self.apply_look)
        timeline = document.timeline
        timeline.run_changed.connect(self._on_run_changed)
        timeline.movement_changed.connect(lambda _m: self.refresh())
        timeline.step_changed.connect(lambda _s: self._place_marker())
        document.selection_changed.connect(lambda _p: self.refresh())
        self.refresh()

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def apply_look(self, look: Look) -> None:
        apply_plot_look(self.plot, look, {"left": "norm"})
        axis = self.plot.getPlotItem().getAxis("right")
        axis.setPen(look.colors.text)
        axis.setTextPen(look.colors.text)

    def _fit_views(self) -> None:
        rect = self.plot.getPlotItem().getViewBox().sceneBoundingRect()
        self.max_view.setGeometry(rect)
        self.bad_view.setGeometry(rect)

    def _on_run_changed(self, run: Run | None) -> None:
        if run is None or not run.live:  # a live model's new snapshots: keep what was measured
            self._runner.cancel()
            self._measured.clear()
        self.refresh()

    def refresh(self) -> None:
        """Draw the shown tensor's statistics (measuring it alone if need be)."""
        timeline = self.document.timeline
        run = timeline.run
        tensor = self.document.shown_tensor()
        if run is None or tensor is None:
            self._clear("")
            return
        table = timeline.movement
        candidates = [
            table.tensors.get(tensor.path) if table is not None else None,
            self._measured.get(tensor.path),
        ]
        # a live model's snapshots change as it trains (and thin out): a row measured on
        # others is not drawn on these; the picture before stays until it is measured again
        known = [r for r in candidates if r is not None]
        row = next((r for r in known if len(r.present) == len(run)), None)
        if row is not None:
            self._draw(run, row)
        elif not (known and self._runner.pending):
            if not known:
                self._clear(
                    f"<span style='color:{MUTED}'>measuring {html.escape(tensor.path)}…</span>"
                )
            self._runner.run(
                measure_one,
                run,
                tensor.path,
                on_result=self._on_measured,
                on_error=lambda e: self._clear(f"cannot measure {html.escape(tensor.path)}: {e}"),
            )

    def _on_measured(self, result: tuple[Run, TensorMovement]) -> None:
        run, row = result
        current = self.document.timeline.run
        same = run is current or (current is not None and run.live and current.live)
        if not same:  # another run (a live model's newer snapshots are the same run)
            return
        self._measured[row.path] = row
        self.refresh()

    def _draw(self, run: Run, row: TensorMovement) -> None:
        self.row = row
        x = np.asarray(run.x_values(), dtype=float)
        norms = np.array([np.nan if s is None or s.norm is None else s.norm for s in row.stats])
        maxes = np.array(
            [np.nan if s is None or s.max_abs is None else s.max_abs for s in row.stats]
        )
        few = len(x) <= MAX_SYMBOLS  # a long live history: lines only (symbols cost frames)
        self.norm_curve.setData(x, norms, connect="finite", symbol="o" if few else None)
        self.max_curve.setData(x, maxes, connect="finite", symbol="t" if few else None)
        bad = np.array([0 if s is None else s.nan + s.inf for s in row.stats], dtype=float)
        width = float(np.min(np.diff(x))) * 0.5 if len(x) > 1 else 0.5
        self.bad_bars.setOpts(x=x, height=bad, width=width)
        self.bad_view.setYRange(0, max(1.0, float(bad.max(initial=0))) * 3, padding=0)
        self.max_view.enableAutoRange(axis=pg.ViewBox.YAxis)
        self.plot.setLabel("bottom", run.x_label)
        self.note.setText(self._note(run, row))
        self._place_marker()

    def _note(self, run: Run, row: TensorMovement) -> str:
        bad = [
            f"{run.checkpoints[t].label} ({s.nan} NaN, {s.inf} Inf)"
            for t, s in enumerate(row.stats)
            if s is not None and s.nan + s.inf
        ]
        if bad:
            return "<span style='color:#c0c'><b>NaN or Inf</b> at " + ", ".join(bad) + "</span>"
        missing = row.present.count(False)
        text = "no NaN or Inf at any checkpoint"
        if missing:
            text += f"; missing from {missing} of {len(row.present)} checkpoints"
        return f"<span style='color:{MUTED}'>{text}</span>"

    def _place_marker(self) -> None:
        timeline = self.document.timeline
        run = timeline.run
        if run is None or not len(run):
            return
        x = run.x_values()
        position = min(timeline.step, len(x) - 1)  # "now" of a live run: at its last snapshot
        self.marker.setPos(x[position])

    def _clear(self, note: str) -> None:
        self.row = None
        self.norm_curve.setData([], [])
        self.max_curve.setData([], [])
        self.bad_bars.setOpts(x=[], height=[])
        self.note.setText(note or " ")

    def _on_click(self, event) -> None:
        run = self.document.timeline.run
        if run is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.plot.getPlotItem().getViewBox().mapSceneToView(event.scenePos())
        x = np.asarray(run.x_values())
        self.document.timeline.set_step(int(np.argmin(np.abs(x - point.x()))))
