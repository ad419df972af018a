"""Which layers moved: the tree's Moved column for a training run.

Each tensor's row shows a small curve of its relative change ‖Wₜ − Wₜ₋₁‖/‖Wₜ₋₁‖ at every
checkpoint (gaps where it is missing, a red mark where the change is infinite: a bias that
was all zeros), the slider's checkpoint marked, and the sum over the run; a module's row
the same for its tensors taken as one. Clicking the column's header sorts the tree by the
sum (most moved first, then least, then back to the model's order).

The movement is measured in a worker when a run opens (`core.movement.iter_movement`: each
tensor read once per checkpoint, in chunks), with progress and Cancel in the status bar; the
result goes to the Timeline, which the step chart reads too. A live model's snapshots are
measured again a few seconds after they change while it trains, and when it stops.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ..core.movement import MovementTable, iter_movement
from ..core.run import Run
from ..core.tree import ModuleNode, Node, TensorNode
from .appearance import Look, appearance, follow
from .document import Document
from .progress import ProgressBar, ProgressTask
from .tree_view import MOVED, TreePanel
from .workers import TaskRunner, paced

MOVEMENT_ROLE = Qt.ItemDataRole.UserRole + 20  # a row's Sparkline
SORT_ROLE = Qt.ItemDataRole.UserRole + 21  # its total, for sorting
# a live model's snapshots are measured again this long after they change while it trains
# (measuring competes with training for the two cores), and at once when it stops
LIVE_DELAY_MS = 5000
COLUMN_WIDTH = 170
_ROLES = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, MOVEMENT_ROLE, SORT_ROLE)
CURVE_COLOR = "#2e86c1"
POSITION_COLOR = "#c0392b"
INFINITE_COLOR = "#d35400"


def paced_movement(run: Run) -> Generator[tuple[float, str], None, MovementTable]:
    """Worker task: the movement of every tensor of `run`, its progress at most 20 times a
    second (workers.paced)."""
    return (yield from paced(iter_movement(run)))


@dataclass(frozen=True)
class Sparkline:
    """What one row of the Moved column draws."""

    values: tuple[float | None, ...]  # relative change per checkpoint (inf: from zero)
    present: tuple[bool, ...]
    total: float | None
    position: int  # the slider's checkpoint


def total_text(total: float | None) -> str:
    return "—" if total is None else f"{total:.3g}"


def sparkline_tooltip(path: str, line: Sparkline, labels: list[str]) -> str:
    parts = []
    for label, value, here in zip(labels, line.values, line.present, strict=False):
        if not here:
            parts.append(f"{label}: missing")
        elif value is not None:
            parts.append(f"{label}: {value:.3g}")
    body = "; ".join(parts[-12:]) + ("; ..." if len(parts) > 12 else "")
    return (
        f"{path or 'net'}: relative change ‖Wₜ − Wₜ₋₁‖/‖Wₜ₋₁‖ per checkpoint\n{body}\n"
        f"sum over the run: {total_text(line.total)}"
    )


class MovementDelegate(QStyledItemDelegate):
    """Paints a row's Sparkline: the curve, the slider's checkpoint, the sum."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.line_width = 1.5

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        line: Sparkline | None = index.data(MOVEMENT_ROLE)
        if line is None:  # not measured (yet): the column's text ("measuring…")
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawPrimitive(
                QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget
            )
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(opt.rect).adjusted(3, 3, -4, -3)
        text = total_text(line.total)
        metrics = opt.fontMetrics
        text_width = metrics.horizontalAdvance("0.000e-00") + 6
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        text_color = (
            opt.palette.highlightedText().color() if selected else opt.palette.text().color()
        )
        painter.setPen(text_color)
        painter.drawText(
            QRectF(rect.right() - text_width, rect.top(), text_width, rect.height()),
            int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
            text,
        )
        self._curve(
            painter,
            QRectF(rect.left(), rect.top(), rect.width() - text_width - 4, rect.height()),
            line,
            text_color if selected else QColor(CURVE_COLOR),
        )
        painter.restore()

    def _curve(self, painter: QPainter, rect: QRectF, line: Sparkline, color: QColor) -> None:
        n = len(line.values)
        if n < 2 or rect.width() < 8:
            return
        finite = [v for v in line.values if v is not None and math.isfinite(v)]
        top = max(finite, default=0.0) or 1.0

        def x(i: int) -> float:
            return rect.left() + rect.width() * i / (n - 1)

        def y(v: float) -> float:
            return rect.bottom() - rect.height() * min(1.0, v / top)

        painter.setPen(QPen(QColor(128, 128, 128, 90), 1))
        painter.drawLine(QPointF(rect.left(), rect.bottom()), QPointF(rect.right(), rect.bottom()))
        path = QPainterPath()
        drawing = False
        for i, v in enumerate(line.values):
            if v is None or not math.isfinite(v):
                drawing = False
                continue
            point = QPointF(x(i), y(v))
            if drawing:
                path.lineTo(point)
            else:
                path.moveTo(point)
                path.addEllipse(point, 0.8, 0.8)  # a lone point still shows
                path.moveTo(point)
                drawing = True
        painter.setPen(QPen(color, self.line_width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(INFINITE_COLOR))
        for i, v in enumerate(line.values):
            if v is not None and math.isinf(v):  # from zero: marked at the top
                cx = x(i)
                painter.drawPolygon(
                    QPolygonF(
                        [
                            QPointF(cx - 3, rect.top()),
                            QPointF(cx + 3, rect.top()),
                            QPointF(cx, rect.top() + 5),
                        ]
                    )
                )
        painter.setBrush(QColor(128, 128, 128, 140))
        for i, here in enumerate(line.present):
            if not here:  # missing from that checkpoint
                painter.drawEllipse(QPointF(x(i), rect.bottom() - 1), 1.6, 1.6)
        if 0 <= line.position < n:
            painter.setPen(QPen(QColor(POSITION_COLOR), 1.2))
            px = x(line.position)
            painter.drawLine(QPointF(px, rect.top()), QPointF(px, rect.bottom()))


class MovementColumn(QObject):
    """Measures a run's movement in a worker and shows it in the tree's Moved column."""

    status_changed = Signal(str)  # "", "measuring", "done", "cancelled" or an error

    def __init__(self, panel: TreePanel, document: Document, progress: ProgressBar) -> None:
        super().__init__(panel)
        self.panel = panel
        self.document = document
        self.timeline = document.timeline
        self.progress = progress
        self.delegate = MovementDelegate(panel.view)
        panel.view.setItemDelegateForColumn(MOVED, self.delegate)
        panel.model.set_movement(self.data)
        panel.model.sort_role = SORT_ROLE
        self.status = ""
        self._runner = TaskRunner(self)
        self._task: ProgressTask | None = None
        self._groups: dict[str, tuple[tuple[float | None, ...], float | None]] = {}
        self._order: Qt.SortOrder | None = None  # sorted by the Moved column, or not
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self.start)
        header = panel.view.header()
        header.sectionClicked.connect(self._on_header_clicked)
        self.timeline.run_changed.connect(self._on_run_changed)
        self.timeline.movement_changed.connect(self._on_movement_changed)
        self.timeline.step_changed.connect(lambda _step: self._repaint())
        document.session.busy_changed.connect(self._on_session_busy_changed)
        follow(self.apply_look)
        self._on_run_changed(self.timeline.run)  # made after a run may be open

    @property
    def busy(self) -> bool:
        return self._runner.busy

    @property
    def sort_order(self) -> Qt.SortOrder | None:
        return self._order

    def apply_look(self, look: Look) -> None:
        self.delegate.line_width = look.line_width * 0.75
        if not self.panel.view.isColumnHidden(MOVED):
            self.panel.view.setColumnWidth(MOVED, look.px(COLUMN_WIDTH))

    # -- measuring --------------------------------------------------------------------------

    def start(self) -> None:
        """Measure how every tensor of the open run moved (again), in a worker."""
        run = self.timeline.run
        if run is None:
            return
        self._set_status("measuring")
        self._runner.run(
            paced_movement,
            run,
            on_result=lambda table, r=run: self._on_measured(r, table),
            on_progress=self._on_progress,
            on_error=lambda e: self._set_status(f"cannot measure the movement: {e}"),
        )
        self._task = self.progress.track(
            self._runner,
            f"Measuring how every tensor moved over {len(run)} checkpoints",
            cancel=lambda: self._set_status("cancelled"),
        )

    def cancel(self) -> None:
        """Stop measuring (as the status bar's Cancel does)."""
        if self._task is not None and self._runner.pending:
            self._task.cancel()

    def _on_progress(self, item: tuple[float, str]) -> None:
        fraction, text = item
        if self._task is not None:
            self._task.report(fraction, text)

    def _on_measured(self, run: Run, table: MovementTable) -> None:
        if run is self.timeline.run:
            self.timeline.set_movement(table)
            self._set_status("done")

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.status_changed.emit(status)

    # -- timeline -> column -----------------------------------------------------------------

    def _on_run_changed(self, run: Run | None) -> None:
        view = self.panel.view
        self._groups = {}
        if run is None:
            self._runner.cancel()
            self._live_timer.stop()
            self._set_status("")
            self.set_sorted(None)
            view.setColumnHidden(MOVED, True)
            return
        if view.isColumnHidden(MOVED):
            view.setColumnHidden(MOVED, False)
            view.header().setSectionsClickable(True)
            self.apply_look(appearance().look)
        if run.live and not self.document.session.busy:  # the last snapshots of a training
            self._live_timer.stop()
            self.start()
        elif run.live:  # snapshots come every few steps while training: measure in a while
            if not self._runner.pending and not self._live_timer.isActive():
                self._live_timer.start()
        else:
            self.set_sorted(None)
            self.start()

    def _on_session_busy_changed(self, busy: bool) -> None:
        """Training stopped: measure the live model's snapshots now, not in a while."""
        run = self.timeline.run
        if not busy and run is not None and run.live and self._live_timer.isActive():
            self._live_timer.stop()
            self.start()

    def _on_movement_changed(self, _table: MovementTable | None) -> None:
        self._groups = {}
        if self._order is not None:
            self.panel.proxy.sort(MOVED, self._order)  # the totals changed
        self._repaint()

    def _repaint(self) -> None:
        view = self.panel.view
        if view.isColumnHidden(MOVED):
            return
        header = view.header()
        viewport = view.viewport()
        viewport.update(
            header.sectionViewportPosition(MOVED), 0, header.sectionSize(MOVED), viewport.height()
        )

    # -- sorting ----------------------------------------------------------------------------

    def _on_header_clicked(self, section: int) -> None:
        if section != MOVED:
            return
        following = {
            None: Qt.SortOrder.DescendingOrder,
            Qt.SortOrder.DescendingOrder: Qt.SortOrder.AscendingOrder,
            Qt.SortOrder.AscendingOrder: None,
        }
        self.set_sorted(following[self._order])

    def set_sorted(self, order: Qt.SortOrder | None) -> None:
        """Sort the tree by total movement (None: the model's own order)."""
        self._order = order
        header = self.panel.view.header()
        if order is None:
            self.panel.proxy.sort(-1)
            header.setSortIndicatorShown(False)
        else:
            self.panel.proxy.sort(MOVED, order)
            header.setSortIndicatorShown(True)
            header.setSortIndicator(MOVED, order)
        current = self.panel.view.currentIndex()
        if current.isValid():
            self.panel.view.scrollTo(current)

    # -- the column's data ------------------------------------------------------------------

    def data(self, node: Node, role: int) -> Any:
        """What the Moved column holds for `node` in `role` (the tree model asks; None:
        what the tree shows in every column)."""
        if role not in _ROLES:
            return None
        table = self.timeline.movement
        if role == Qt.ItemDataRole.DisplayRole:
            if table is None:
                return "measuring…" if self.status == "measuring" else None
            return None  # the delegate draws it
        if table is None:
            return None
        values, total = self._series(node, table)
        if values is None:
            return None
        if role == SORT_ROLE:
            return -1.0 if total is None else total
        present = (
            tuple(table.tensors[node.path].present)
            if isinstance(node, TensorNode) and node.path in table.tensors
            else (True,) * len(values)
        )
        line = Sparkline(values, present, total, self.timeline.step)
        if role == MOVEMENT_ROLE:
            return line
        if role == Qt.ItemDataRole.ToolTipRole:
            run = self.timeline.run
            labels = [c.label for c in run.checkpoints] if run is not None else []
            return sparkline_tooltip(node.path, line, labels)
        return None

    def _series(
        self, node: Node, table: MovementTable
    ) -> tuple[tuple[float | None, ...] | None, float | None]:
        if isinstance(node, TensorNode):
            row = table.tensors.get(node.path)
            if row is None:
                return None, None
            return tuple(row.relative_change), row.total
        assert isinstance(node, ModuleNode)
        cached = self._groups.get(node.path)
        if cached is None:
            values = tuple(table.group_change(t.path for t in node.walk_tensors()))
            finite = [v for v in values if v is not None and math.isfinite(v)]
            cached = (values, sum(finite) if finite else None)
            self._groups[node.path] = cached
        return cached
