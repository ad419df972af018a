"""Expanding the module tree without stalling the window, at any size.

QTreeView keeps one item per row it lays out, and lays them all out again, a Python call or
two per row (about 6 µs), whenever rows are inserted under an expanded parent or the model
changes its layout; `expandAll` and `expandToDepth` walk every row of the model at once.
That is what made a 20,000-tensor tree hold the GUI thread for seconds. Here:

- `TreeView` lays out only the parent that got new rows (rows come in batches as the view
  scrolls to them): folding that parent and unfolding it again costs its own rows, not the
  whole tree's (6 ms instead of 140 ms for a batch under 20,000 shown rows);
- `Expander` expands many modules (expand all, what a filter shows, the rows open before a
  filter) a few at a time, parents before children, within a budget of GUI time per turn
  of the event loop, with progress, and stops whenever asked; the view stays usable between
  two turns.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QIdentityProxyModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import QAbstractItemView, QTreeView, QWidget

if TYPE_CHECKING:
    from .tree_view import ModuleTreeModel

EXPAND_BUDGET_MS = 12.0  # GUI time per turn of the event loop spent expanding
UNIT_ROWS = 400  # a subtree with at most this many rows is expanded in one layout
FIRST_TURN_MS = 4.0  # the turn that starts: a screenful of rows, painted soon after
PAINT_FIRST_MS = 20  # room after the first turn for its paint (Qt may run a timer first)
REPAINT_EVERY_MS = 100.0  # while expanding, the view is repainted this often, not each turn


class TreeView(QTreeView):
    """The module tree's QTreeView: new rows under an expanded parent are laid out by
    folding and unfolding that parent; '*' asks for everything below a row to be expanded
    (`expand_below_requested`) instead of Qt's expandRecursively, which walks it all at
    once."""

    expand_below_requested = Signal(QModelIndex)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree_model: ModuleTreeModel | None = None  # behind the view's proxy
        self._relayout_later: list[QPersistentModelIndex] = []

    def rowsInserted(self, parent: QModelIndex, start: int, end: int) -> None:
        if not parent.isValid() or not self.isExpanded(parent):
            super().rowsInserted(parent, start, end)  # nothing laid out under it: cheap
            return
        # QTreeView.rowsInserted would lay out every row of the view again
        QAbstractItemView.rowsInserted(self, parent, start, end)
        if self.state() != QAbstractItemView.State.NoState:
            # rows fetched by Qt's own expanding (it fetches once a parent is open): folding
            # it now would leave the view in ExpandingState for good, so a turn later
            self._relayout_later.append(QPersistentModelIndex(parent))
            QTimer.singleShot(0, self, self._relayout_pending)
            return
        self._relayout(parent)

    def _relayout_pending(self) -> None:
        pending, self._relayout_later = self._relayout_later, []
        for parent in pending:
            if parent.isValid() and self.isExpanded(QModelIndex(parent)):
                self._relayout(QModelIndex(parent))

    def _relayout(self, parent: QModelIndex) -> None:
        """Lay out again the rows under `parent` only, by folding and unfolding it."""
        bar = self.verticalScrollBar()
        value = bar.value()  # folding shortens the view: the position must survive it
        model = self.tree_model
        fetching = model.fetching if model is not None else True
        if model is not None:
            model.fetching = False  # unfolding asks for more rows: not now
        try:
            self.collapse(parent)
            self.expand(parent)
        finally:
            if model is not None:
                model.fetching = fetching
        bar.setValue(value)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Asterisk and self.currentIndex().isValid():
            self.expand_below_requested.emit(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)


class Expander(QObject):
    """Expands modules of the tree (given by node number, in node order: parents first) a
    few at a time. Modules inside a folded group of rows are left folded (a group is opened
    by hand). `progressed(done, total)` after each turn, `finished(completed)` at the end
    or when stopped."""

    progressed = Signal(int, int)
    finished = Signal(bool)

    def __init__(
        self,
        view: TreeView,
        model: ModuleTreeModel,
        proxy: QIdentityProxyModel,
        budget_ms: float = EXPAND_BUDGET_MS,
    ) -> None:
        super().__init__(view)
        self.view, self.model, self.proxy = view, model, proxy
        self.budget_ms = budget_ms
        self._targets: list[int] = []
        self._next = 0
        self._skip_until = -1  # numbers below it are inside a folded group
        self._painted = 0.0  # when the view was last let repaint
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self._step)

    @property
    def running(self) -> bool:
        return self._next < len(self._targets)

    @property
    def total(self) -> int:
        return len(self._targets)

    def start(self, numbers: Iterable[int], now: bool = True) -> None:
        """Expand these modules (a new start replaces what was left); `now`: the first
        turn's share at once, so a small tree is expanded when this returns."""
        self.stop(quietly=True)
        self._targets = sorted(numbers)
        self._next = 0
        self._skip_until = -1
        self._painted = time.perf_counter()  # the first turn's rows are painted at once
        if now:
            self._step(FIRST_TURN_MS)
        elif self.running:
            self._timer.start(0)

    def stop(self, quietly: bool = False) -> None:
        """Leave the rest folded."""
        self._timer.stop()
        was_running = self.running
        self._targets, self._next = [], 0
        self._repaint(True)
        if was_running and not quietly:
            self.finished.emit(False)

    def _repaint(self, on: bool) -> None:
        """Repaint the view (on), or not until asked (off): each turn changes what it
        shows, and painting it costs as much as the turn's expanding."""
        if on != self.view.updatesEnabled():
            self.view.setUpdatesEnabled(on)  # its rows, header and scroll bars; enabling repaints
        if on:
            self._painted = time.perf_counter()

    def _step(self, budget_ms: float | None = None) -> None:
        model, index = self.model, self.model.tree_index
        rows = model.rows
        if index is None or rows is None:
            self.stop()
            return
        deadline = time.perf_counter() + (budget_ms or self.budget_ms) / 1000
        targets = self._targets
        fetching, model.fetching = model.fetching, False  # Qt fetches on expanding: not here
        try:
            while self._next < len(targets) and time.perf_counter() < deadline:
                number = targets[self._next]
                if number < self._skip_until or model.under_group(number):
                    self._skip_until = max(self._skip_until, int(index.end[number]))
                    self._next += 1
                    continue
                below = rows.count_within(number, int(index.end[number]))
                if below > UNIT_ROWS:  # only this module's own rows now, its children next
                    self._expand(number)
                    self._next += 1
                    continue
                # A small subtree at once: its modules stored as expanded while it is
                # folded (nothing laid out), then one layout of all its rows. Expanding
                # them one by one costs Qt a pass over the view's rows each.
                stop = bisect.bisect_left(targets, int(index.end[number]), self._next)
                for inner in reversed(targets[self._next + 1 : stop]):
                    if not model.under_group(inner):
                        self._expand(inner)
                self._expand(number)
                self._next = stop
        finally:
            model.fetching = fetching
        total = len(targets)
        self.progressed.emit(self._next, total)
        if self._next >= total:
            self._targets, self._next = [], 0
            self._repaint(True)
            self.finished.emit(True)
        else:  # the first turn's rows are painted before the next turn: the first screenful
            first = budget_ms is not None
            due = time.perf_counter() - self._painted >= REPAINT_EVERY_MS / 1000
            self._repaint(due or first)
            self._timer.start(PAINT_FIRST_MS if first else 0)

    def _expand(self, number: int) -> None:
        source = self.model.index_for_number(number)
        if source.isValid():
            self.model.fetch_all(source)  # while folded: nothing to lay out again
            self.view.expand(self.proxy.mapFromSource(source))
