"""The "Compare" tab: the open checkpoint (A) against a second one (B).

A sortable table of every key: tensors of both with their relative change ||B−A|| / ||A||
(largest first by default), and, listed first and coloured, keys only in A, keys only in B
and shape changes. Selecting a row draws B−A of that tensor as a heatmap and selects the key
in the tree when A is the open model; selecting in the tree selects the row.

The keys are matched at once (no tensor data read); the relative changes are computed in a
worker with progress and Cancel in the status bar, and fill the table when done.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.compare import Comparison, TensorComparison, compare_keys, iter_compare
from ..core.display import DisplayArray, display_array
from ..core.text import shape_text
from ..core.tree import ModuleTree
from .appearance import MUTED
from .document import Document
from .heatmap_panel import TitledHeatmap
from .opening import display_name
from .progress import ProgressBar
from .workers import GUI_THREAD_ELEMENTS, TaskRunner

KEY, SHAPE_A, SHAPE_B, DTYPE, CHANGE, MAX_DIFF = range(6)
HEADERS = ["Key", "Shape A", "Shape B", "Dtype", "‖B−A‖ / ‖A‖", "max |B−A|"]
SORT_ROLE = Qt.ItemDataRole.UserRole + 1

# what a row is, how it reads, its colour, and where it sorts by change (largest first)
KINDS = {
    "only_a": ("only in A", "#fde0dc", 4e300),
    "only_b": ("only in B", "#dff3e3", 3e300),
    "shape": ("shape changed", "#fff0d0", 2e300),
    "common": ("", "", 0.0),
}
INFINITE_CHANGE = 1e300  # A is zero and B is not: above every finite change
UNKNOWN_CHANGE = -1.0  # not computed yet, no values, or NaN: last
DTYPE_CHANGE_COLOR = "#b35900"


@dataclass
class ComparisonRow:
    key: str
    kind: str  # "common" | "shape" | "only_a" | "only_b"
    path_a: str | None
    path_b: str | None
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    dtype_a: str | None
    dtype_b: str | None
    entry: TensorComparison | None = None


def comparison_rows(comparison: Comparison) -> list[ComparisonRow]:
    """Every key of A and B as one row."""
    rows = []
    for c in comparison.common.values():
        kind = "common" if c.same_shape else "shape"
        rows.append(
            ComparisonRow(
                c.path, kind, c.path_a, c.path_b, c.shape_a, c.shape_b, c.dtype_a, c.dtype_b, c
            )
        )
    for path in comparison.only_in_a:
        t = comparison.a.tensors[path]
        rows.append(ComparisonRow(path, "only_a", path, None, t.shape, None, t.dtype, None))
    for path in comparison.only_in_b:
        t = comparison.b.tensors[path]
        rows.append(ComparisonRow(path, "only_b", None, path, None, t.shape, None, t.dtype))
    return rows


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _number(x: float | None) -> str:
    if x is None:
        return "—"
    if x == 0:
        return "0"
    return f"{x:.4g}" if math.isfinite(x) else ("inf" if x > 0 else "nan")


class ComparisonModel(QAbstractTableModel):
    """The rows of a Comparison for a QTableView (sorted through a proxy by SORT_ROLE)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.comparison: Comparison | None = None
        self.rows: list[ComparisonRow] = []

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.beginResetModel()
        self.comparison = comparison
        self.rows = [] if comparison is None else comparison_rows(comparison)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                CHANGE: "Relative change of the tensor from A to B: ‖B−A‖ / ‖A‖ (Frobenius "
                "norms); 0 means equal",
                MAX_DIFF: "The largest change of one element",
            }.get(section)
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self._sort_value(row, column)
        if role == Qt.ItemDataRole.BackgroundRole and row.kind != "common":
            return QBrush(QColor(KINDS[row.kind][1]))
        changed_dtype = row.entry is not None and row.dtype_a != row.dtype_b
        if role == Qt.ItemDataRole.ForegroundRole and column == DTYPE and changed_dtype:
            return QBrush(QColor(DTYPE_CHANGE_COLOR))
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (CHANGE, MAX_DIFF):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        return None

    def _text(self, row: ComparisonRow, column: int) -> str:
        if column == KEY:
            return row.key
        if column == SHAPE_A:
            return "—" if row.shape_a is None else shape_text(row.shape_a, "pretty")
        if column == SHAPE_B:
            return "—" if row.shape_b is None else shape_text(row.shape_b, "pretty")
        if column == DTYPE:
            a, b = row.dtype_a, row.dtype_b
            return a if b is None else b if a is None or a == b else f"{a} → {b}"
        label = KINDS[row.kind][0]
        if label:
            return label if column == CHANGE else ""
        entry = row.entry
        computed = self.comparison is not None and self.comparison.computed
        if column == CHANGE:
            if not computed:
                return "…"
            return _number(entry.relative_change) if entry is not None else "—"
        if column == MAX_DIFF:
            return _number(entry.max_abs_diff) if computed and entry is not None else ""
        return ""

    def _sort_value(self, row: ComparisonRow, column: int):
        if column == KEY:
            return row.key
        if column in (SHAPE_A, SHAPE_B):
            shape = row.shape_a if column == SHAPE_A else row.shape_b
            return -1 if shape is None else math.prod(shape)
        if column == DTYPE:
            return self._text(row, DTYPE)
        if row.kind != "common":
            return KINDS[row.kind][2]
        entry = row.entry
        value = None
        if entry is not None:
            value = entry.relative_change if column == CHANGE else entry.max_abs_diff
        if value is None or math.isnan(value):
            return UNKNOWN_CHANGE
        return INFINITE_CHANGE if math.isinf(value) else float(value)

    def _tooltip(self, row: ComparisonRow) -> str:
        if row.kind == "only_a":
            return f"{row.path_a} is in A only: B has no tensor under this key"
        if row.kind == "only_b":
            return f"{row.path_b} is in B only: A has no tensor under this key"
        if row.kind == "shape":
            return (
                f"{row.key}: shape {shape_text(row.shape_a, 'pretty')} in A, "
                f"{shape_text(row.shape_b, 'pretty')} in B; there is no difference to draw"
            )
        return f"{row.key}: select to draw B − A"


class ComparisonProxy(QSortFilterProxyModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)


def difference_task(comparison: Comparison, key: str) -> tuple[str, np.ndarray, DisplayArray]:
    """Worker task: B − A of one tensor and its display array."""
    diff = comparison.difference(key)
    return key, diff, display_array(diff)


class CompareView(QWidget):
    """The comparison of A (the open model) with B: table on the left, B−A on the right."""

    def __init__(
        self, document: Document, progress: ProgressBar, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.progress = progress
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.model = ComparisonModel(self)
        self.proxy = ComparisonProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # long keys keep both ends
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(KEY, QHeaderView.ResizeMode.Stretch)
        for column in (SHAPE_A, SHAPE_B, DTYPE, CHANGE, MAX_DIFF):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.sortByColumn(CHANGE, Qt.SortOrder.DescendingOrder)
        self.table.setToolTip("Click a header to sort; select a row to draw B − A")
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)

        self.difference = TitledHeatmap(self)
        self.readout = QLabel(" ", self)
        font = self.readout.font()
        font.setFamily("monospace")
        self.readout.setFont(font)
        self.readout.setToolTip("The element of B − A under the mouse, from the full tensor")
        self.difference.view.readout_changed.connect(lambda text: self.readout.setText(text or " "))
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.difference, 1)
        right_layout.addWidget(self.readout)

        # table above the heatmap: the centre is narrow beside the tree and the details
        self.split = QSplitter(Qt.Orientation.Vertical, self)
        self.split.addWidget(self.table)
        self.split.addWidget(right)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.split, 1)

        self.runner = TaskRunner(self)  # relative changes
        self.diff_runner = TaskRunner(self)  # B − A of the selected tensor
        self.shown_key: str | None = None  # the key whose B − A the heatmap shows
        self._missing_note = ""  # why relative changes are missing, once not computing
        self._syncing = False
        self._show_message("", "Open a second checkpoint with File ▸ Compare with…")
        document.selection_changed.connect(self._on_document_selection_changed)
        document.tree_changed.connect(self._on_tree_changed)

    @property
    def comparison(self) -> Comparison | None:
        return self.model.comparison

    @property
    def busy(self) -> bool:
        return self.runner.pending or self.diff_runner.pending

    # -- starting ---------------------------------------------------------------------------

    def compare(self, a: ModuleTree, b: ModuleTree) -> None:
        """Show the keys of A and B at once, and compute the relative changes in a worker."""
        selected = self._current_key()
        self._missing_note = ""
        self._set_comparison(compare_keys(a, b), keep=selected)
        self.runner.run(
            self.document.session.guarded(iter_compare)
            if a is self.document.tree
            else iter_compare,
            a,
            b,
            on_result=lambda comparison: self._set_comparison(comparison, keep=self._current_key()),
            on_progress=lambda p: task.report(*p),
            on_error=lambda e: self._note(f"cannot compute the changes: {e}"),
        )
        task = self.progress.track(
            self.runner,
            f"Comparing with {display_name(b.source)}…",
            cancel=lambda: self._note("relative changes not computed (cancelled)"),
        )

    # -- table ------------------------------------------------------------------------------

    def _set_comparison(self, comparison: Comparison, keep: str | None) -> None:
        self.model.set_comparison(comparison)
        self.summary.setText(self._summary_html(comparison))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(KEY, QHeaderView.ResizeMode.Stretch)
        key = keep
        if key is None and self.document.tree is comparison.a:
            key = self._key_of_a_path(self.document.selected)
        if key is None:  # the largest change first
            first = self.proxy.index(0, KEY)
            key = first.data() if first.isValid() else None
        if key is not None:
            self.select_key(key)

    def select_key(self, key: str) -> None:
        """Select the row of `key` (which draws its B − A)."""
        for row, item in enumerate(self.model.rows):
            if item.key == key:
                index = self.proxy.mapFromSource(self.model.index(row, KEY))
                self.table.selectionModel().setCurrentIndex(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
                self.table.scrollTo(index)
                return

    def keys_in_view_order(self) -> list[str]:
        """The keys as the table shows them (sorted), top to bottom."""
        return [self.proxy.index(r, KEY).data() for r in range(self.proxy.rowCount())]

    def _current_key(self) -> str | None:
        index = self.table.currentIndex()
        return self.proxy.index(index.row(), KEY).data() if index.isValid() else None

    def _row(self, key: str | None) -> ComparisonRow | None:
        return next((r for r in self.model.rows if r.key == key), None)

    def _key_of_a_path(self, path: str | None) -> str | None:
        return next((r.key for r in self.model.rows if path and r.path_a == path), None)

    # -- selection <-> heatmap and tree ------------------------------------------------------

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        row = self._row(self.proxy.index(current.row(), KEY).data())
        if row is None:
            return
        self._show_row(row)
        tree = self.document.tree
        if (
            not self._syncing
            and row.path_a is not None
            and tree is not None
            and tree is self.comparison.a
            and row.path_a in tree.tensors
        ):
            self._syncing = True
            try:
                self.document.select(row.path_a)
            finally:
                self._syncing = False

    def _on_tree_changed(self, _tree: ModuleTree | None) -> None:
        # the comparison stays; whether A is still the open model changes what it says
        if self.comparison is not None:
            self.summary.setText(self._summary_html(self.comparison))

    def _on_document_selection_changed(self, path: str | None) -> None:
        comparison = self.comparison
        if self._syncing or comparison is None or self.document.tree is not comparison.a:
            return
        key = self._key_of_a_path(path)
        if key is not None and key != self._current_key():
            self._syncing = True
            try:
                self.select_key(key)
            finally:
                self._syncing = False

    def _show_row(self, row: ComparisonRow) -> None:
        self.diff_runner.cancel()
        caption = f"<b>B − A</b> of <b>{html.escape(row.key)}</b>"
        if row.kind == "only_a":
            self._show_message(caption, f"{row.key} is only in A: there is nothing to subtract")
        elif row.kind == "only_b":
            self._show_message(caption, f"{row.key} is only in B: there is nothing to subtract")
        elif row.kind == "shape":
            self._show_message(
                caption,
                f"The shape changed from {shape_text(row.shape_a, 'pretty')} in A to "
                f"{shape_text(row.shape_b, 'pretty')} in B: there is no element-wise difference",
            )
        elif row.entry is None or math.prod(row.entry.shape_a) <= GUI_THREAD_ELEMENTS:
            self._on_difference(difference_task(self.comparison, row.key))
        else:
            self.shown_key = None
            self.difference.caption.setText(caption + " — reading both tensors…")
            live = self.comparison.a is self.document.tree
            self.diff_runner.run(
                self.document.session.guarded(difference_task) if live else difference_task,
                self.comparison,
                row.key,
                on_result=self._on_difference,
                on_error=lambda e: self._show_message(caption, f"cannot compute B − A: {e}"),
            )
            self.progress.track(self.diff_runner, f"B − A of {row.key}…")

    def _on_difference(self, result: tuple[str, np.ndarray, DisplayArray]) -> None:
        key, diff, display = result
        if key != self._current_key() and self._current_key() is not None:
            return  # another row was selected meanwhile
        row = self._row(key)
        entry = row.entry if row is not None else None
        facts = [html.escape(display.description)]
        if entry is not None and self.comparison.computed:
            facts.append(f"‖B−A‖/‖A‖ = {_number(entry.relative_change)}")
            facts.append(f"max |B−A| = {_number(entry.max_abs_diff)}")
        if entry is not None and entry.dtype_a != entry.dtype_b:
            facts.append(f"dtype {entry.dtype_a} → {entry.dtype_b}")
        caption = (
            f"<b>B − A</b> of <b>{html.escape(key)}</b><br>"
            f"<span style='color:{MUTED}'>{' · '.join(facts)}</span>"
        )
        self.shown_key = key
        self.difference.show_values(caption, diff, display)

    def _show_message(self, caption: str, text: str) -> None:
        self.shown_key = None
        self.difference.show_message(caption, text)
        self.readout.setText(" ")

    # -- text -------------------------------------------------------------------------------

    def _summary_html(self, c: Comparison) -> str:
        a_note = (
            " (open in the tree)"
            if self.document.tree is c.a
            else " <span style='color:#b35900'>(no longer open: rows do not select in the "
            "tree)</span>"
        )
        parts = [
            f"<b>A</b> = {html.escape(c.a.source)}{a_note} &nbsp;·&nbsp; "
            f"<b>B</b> = {html.escape(c.b.source)}",
        ]
        counts = [_count(len(c.common) - len(c.shape_changes), "tensor") + " in both"]
        for n, kind in (
            (len(c.only_in_a), "only_a"),
            (len(c.only_in_b), "only_b"),
            (len(c.shape_changes), "shape"),
        ):
            label, color, _ = KINDS[kind]
            style = f"background:{color}; padding:2px" if n else f"color:{MUTED}"
            text = _count(n, "shape change") if kind == "shape" else f"{_count(n, 'key')} {label}"
            counts.append(f"<span style='{style}'>{text}</span>")
        if c.dtype_changes:
            text = _count(len(c.dtype_changes), "dtype change")
            counts.append(f"<span style='color:{DTYPE_CHANGE_COLOR}'>{text}</span>")
        parts.append(" · ".join(counts))
        if c.prefix_a or c.prefix_b:
            parts.append(
                f"<span style='color:{MUTED}'>keys matched after removing "
                f"<code>{html.escape(c.prefix_a or '(nothing)')}</code> from A and "
                f"<code>{html.escape(c.prefix_b or '(nothing)')}</code> from B</span>"
            )
        if not c.computed:
            note = self._missing_note or "computing relative changes…"
            parts.append(f"<span style='color:{MUTED}'>{html.escape(note)}</span>")
        return "<br>".join(parts)

    def _note(self, text: str) -> None:
        """Say why the relative changes are missing (cancelled, failed)."""
        self._missing_note = text
        if self.comparison is not None:
            self.summary.setText(self._summary_html(self.comparison))
