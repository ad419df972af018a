"""The module tree: a QAbstractItemModel over the pure ModuleTree, a filter, a QTreeView.

This is the only place that knows Qt's index/row/parent protocol. Items are never copied: an
index points at the core node, and rows are found in the tree's index (core/tree_index.py:
every node numbered in row order, the rows under each module as slices of one array), so
nothing here walks the tree, whatever its size:

- rows are made lazily: a parent shows its first FETCH_BATCH rows and more as the view
  scrolls to them (canFetchMore/fetchMore); a parent with more than GROUP_ABOVE rows shows
  them as folded groups of GROUP_SIZE (groups of groups past a million), so that no parent
  ever lays out more than a few thousand rows;
- the filter is the model's own: a filter text gives a new set of rows (`Rows`), computed
  from the index (in a worker for a large tree), and the model is reset to it; the view then
  expands what the filter shows a few modules at a time (tree_expansion.py);
- a path is found by a dictionary lookup and binary searches, never a scan.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QIdentityProxyModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QFontMetrics, QIcon, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.describe import format_count, module_label
from ..core.text import shape_text
from ..core.tree import ModuleNode, ModuleTree, Node, TensorNode
from ..core.tree_index import FilterResult, Rows, TreeFilter, TreeIndex, build_index, index_tree
from .appearance import Look, follow
from .document import Document
from .icons import alias_icon, kind_icon, tie_color, tie_icon
from .tree_expansion import Expander, TreeView
from .workers import TaskRunner

NAME, TYPE, SHAPE, PARAMS, TIES, GRAD, MOVED = range(7)
HEADERS = ["Name", "Type", "Shape", "Params", "Ties", "Grad norm", "Moved"]
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
# What the Moved column shows of a row, for a role (a training run's movement, drawn and
# sorted by ui/movement_column.py); None: nothing
MovementData = Callable[[Node, int], Any]
HIGHLIGHT_ALPHA = 90
FETCH_BATCH = 200  # rows made at a time under one parent (the next as the view reaches them)
GROUP_ABOVE = 2_000  # a parent with more rows shows them as folded groups...
GROUP_SIZE = 1_000  # ...of this many rows (and groups of groups past GROUP_ABOVE groups)
INDEX_ON_GUI_THREAD = 5_000  # nodes: a smaller tree is indexed at once (~10 ms), a larger
FILTER_ON_GUI_THREAD = 5_000  # one in a worker; and likewise filtered
EXPAND_FULLY = 400  # nodes: a tree this small opens fully expanded, a larger one to depth 1
OPEN_ROWS = 5_000  # rows a large tree opens with, at most (its first modules at depth 1)
FILTER_OPENS_ROWS = 20_000  # a filter expands what it shows up to about this many rows (in
# row order: the rest stays folded, for Expand all), not the million a short text may match
SHOW_WORK_AFTER_MS = 250  # tree work shorter than this shows no progress
PROGRESS_EVERY_MS = 100  # progress shown at most this often (a QProgressBar repaints at once)
ITEM_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable  # made once: flags()
# is asked for every row laid out, and or-ing Qt's enums is slow Python
RIGHT_ALIGNED = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter  # (likewise)
LEAF_PLACES = 4_096  # where tensor rows are, remembered for this many at most
HEADER_TIPS = {
    PARAMS: "Parameter elements (a tied tensor counted once)",
    TIES: "Other paths that reach the same tensor or module object",
    GRAD: "L2 norm of the parameter's .grad (after a backward pass)",
    MOVED: "How far it moved over the training run: its relative change "
    "‖Wₜ − Wₜ₋₁‖/‖Wₜ₋₁‖ per checkpoint, and their sum (click to sort)",
}

_Index = QModelIndex | QPersistentModelIndex


def _first_rows(rows: Rows, modules: np.ndarray, budget: int) -> int:
    """How many of `modules` (in row order) to expand for at most about `budget` rows
    under them (the rows a parent shows are made FETCH_BATCH at a time; one at least)."""
    if not len(modules):
        return 0
    lo = rows.parents.searchsorted(modules, "left")
    hi = rows.parents.searchsorted(modules, "right")
    made = np.minimum(hi - lo, FETCH_BATCH)
    return max(1, int(np.searchsorted(np.cumsum(made), budget, "right")))


def _sort_key(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def ties_text(tree: ModuleTree, node: Node) -> str:
    """What the Ties column says: the other paths of the same tensor or module object."""
    if isinstance(node, TensorNode):
        partners = tree.tie_partners(node.path)
        return f"= {', '.join(partners)}" if partners else ""
    if node.shared_with:
        text = f"same object as {', '.join(node.shared_with)}"
        return text if node.has_parameters else text + " (no parameters)"
    return ""


def ties_tooltip(tree: ModuleTree, node: Node) -> str:
    if isinstance(node, TensorNode):
        if node.tie is None:
            return ""
        paths = tree.tie_groups[node.tie].paths
        return (
            f"Tie group {node.tie}: {', '.join(paths)} are one tensor. Changing one changes "
            "all; it is counted once; in backward the gradients of its uses add up."
        )
    if not node.shared_with:
        return ""
    if node.has_parameters:
        return (
            f"One module object placed at {node.path} and {', '.join(node.shared_with)}: "
            "its parameters are shared (tied) between those places."
        )
    return (
        f"One parameter-free module object placed at {node.path} and "
        f"{', '.join(node.shared_with)}: reused, but there is nothing to tie."
    )


class RowGroup:
    """A folded group of rows standing for `members[lo:hi]` of the shown rows under one
    module with more than GROUP_ABOVE of them; expanding it shows them (or smaller groups)."""

    __slots__ = ("hi", "lo", "module", "parent", "row")

    def __init__(self, module: int, lo: int, hi: int, parent: object, row: int) -> None:
        self.module = module  # the number of the module whose rows it holds
        self.lo, self.hi = lo, hi  # its rows: members[lo:hi] of the model's Rows
        self.parent = parent  # the module node or group it is a row of
        self.row = row


class _Block(NamedTuple):
    """The rows under one parent (a module or a group): `size` shown nodes starting at
    `members[first]`, shown one per row (span 1) or as groups of `span` nodes, in `count`
    rows (how many are made so far is kept apart, see ModuleTreeModel._block)."""

    module: int
    first: int
    size: int
    span: int
    count: int

    @classmethod
    def of(cls, module: int, first: int, size: int) -> _Block:
        span = 1
        if size > GROUP_ABOVE:
            span = GROUP_SIZE
            while math.ceil(size / span) > GROUP_ABOVE:
                span *= GROUP_SIZE
        return cls(module, first, size, span, math.ceil(size / span))


class ModuleTreeModel(QAbstractItemModel):
    """Rows: the root module, then for each module its own tensors (state_dict order) and
    then its child modules; of them, those the filter leaves (`set_rows`)."""

    grad_norms_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.highlight_alpha = HIGHLIGHT_ALPHA  # of the tie group's colour behind its rows
        self.fetching = True  # the view turns it off while it lays fetched rows out
        self._tree: ModuleTree | None = None
        self._index: TreeIndex | None = None
        self._rows: Rows | None = None  # None until the index is there: no rows
        self._plain: Rows | None = None  # the same rows in the index's order (unsorted)
        self._sort: Qt.SortOrder | None = None  # each module's rows by the Moved column
        self.sort_role: int = Qt.ItemDataRole.DisplayRole  # what movement gives as the key
        # node number -> its place in the sorted rows' members (None: unsorted, a search)
        self._position: np.ndarray | None = None
        self._highlight: dict[str, QColor] = {}
        self._grad_norms: dict[str, float | None] = {}
        self._movement: MovementData | None = None
        self._blocks: dict[int, tuple[int, ...]] = {}  # id(parent: module or group) -> rows
        self._fetched: dict[int, int] = {}  # id(parent) -> how many of its rows are made
        self._groups: dict[tuple[int, int], RowGroup] = {}  # (id(parent), row) -> group
        # id(module node) -> its parent and row, once known (parent() of every row under it
        # asks); two dicts rather than one of tuples: tuples would all be objects the cycle
        # collector walks (pauses of 70 ms measured with a million-tensor tree)
        self._place_parent: dict[int, object] = {}
        self._place_row: dict[int, int] = {}
        # and of tensor rows, which paint asks for (three times per row): a few thousand at
        # most, the rows lately made or asked about (a million shown would be 200 MB)
        self._leaf_parent: dict[int, object] = {}
        self._leaf_row: dict[int, int] = {}

    # -- content ----------------------------------------------------------------------------

    @property
    def tree(self) -> ModuleTree | None:
        return self._tree

    @property
    def tree_index(self) -> TreeIndex | None:
        return self._index

    @property
    def rows(self) -> Rows | None:
        return self._rows

    def set_tree(self, tree: ModuleTree | None, index: TreeIndex | None = None) -> None:
        """Show `tree`: its rows once its index is given (here or by `set_index`)."""
        self.beginResetModel()
        self._tree = tree
        self._index = index if index is not None and index.tree is tree else None
        self._show(self._index.all_rows if self._index is not None else None)
        self._highlight = {}
        self._grad_norms = {}
        self._forget_rows()
        self.endResetModel()

    def set_index(self, index: TreeIndex) -> None:
        """The index of the tree shown has been built: show all its rows."""
        if index.tree is not self._tree:
            return
        self.beginResetModel()
        self._index = index
        self._show(index.all_rows)
        self._forget_rows()
        self.endResetModel()

    def set_rows(self, rows: Rows) -> None:
        """Show these rows of the index (a filter's, or all): a reset, so the view forgets
        its expanded rows and the selection (without a signal; see TreePanel)."""
        self.beginResetModel()
        self._show(rows)
        self._forget_rows()
        self.endResetModel()

    def _show(self, rows: Rows | None) -> None:
        self._plain = rows
        self._rows, self._position = self._arranged(rows)

    # -- sorting (by the Moved column) -------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order each module's rows by what the Moved column gives for `sort_role` (most
        first for DescendingOrder, rows without a value last); any other column, or -1: the
        index's own order. A layout change, not a reset: the view keeps what is expanded,
        selected and current (the filter proxy did this before the model was lazy)."""
        self._sort = order if column == MOVED and self._movement is not None else None
        if self._plain is None:
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        held = [(index.internalPointer(), index.column()) for index in before]
        self._rows, self._position = self._arranged(self._plain)
        self._place_parent, self._place_row = {}, {}
        self._leaf_parent, self._leaf_row = {}, {}
        after = []
        for item, column_of in held:
            place = self._place(item) if item is not self._tree.root else (None, 0)  # type: ignore[union-attr]
            if place is None:
                after.append(QModelIndex())
                continue
            parent, row = place
            if parent is not None and row >= self._fetched.get(id(parent), 0):
                self._fetched[id(parent)] = self._block(parent).count  # made now: it is held
            after.append(self.createIndex(row, column_of, item))
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def _arranged(self, rows: Rows | None) -> tuple[Rows | None, np.ndarray | None]:
        """`rows` in the sort order, and where each node is among their members."""
        if rows is None or self._sort is None or self._movement is None or not len(rows.members):
            return rows, None
        assert self._index is not None
        nodes, value, role = self._index.nodes, self._movement, self.sort_role
        keys = np.fromiter(
            (_sort_key(value(nodes[m], role)) for m in rows.members.tolist()),
            float,
            len(rows.members),
        )
        if self._sort == Qt.SortOrder.DescendingOrder:
            keys = -keys  # NaN (no value) stays last either way
        # `parents` is sorted: each module's rows stay together, ties keep the index's order
        order = np.lexsort((rows.members, keys, rows.parents))
        arranged = dataclasses.replace(rows, members=rows.members[order])
        position = np.full(len(nodes), -1, np.int64)
        position[arranged.members] = np.arange(len(arranged.members))
        return arranged, position

    def _forget_rows(self) -> None:
        self._blocks = {}
        self._fetched = {}
        self._groups = {}
        self._place_parent = {}
        self._place_row = {}
        self._leaf_parent = {}
        self._leaf_row = {}

    def set_highlight(self, colors: dict[str, QColor]) -> None:
        """Tint the rows of these paths (tie partners, other places of a module)."""
        changed = set(self._highlight) | set(colors)
        self._highlight = dict(colors)
        for path in changed:
            self._row_changed(path)

    def set_grad_norms(self, norms: dict[str, float | None]) -> None:
        """Gradient norms per parameter path (None: no gradient yet)."""
        self._grad_norms = dict(norms)
        # Only the text of one column changes, up to 30 times a second: a repaint of the
        # visible rows (grad_norms_changed) costs far less than dataChanged per module,
        # which makes the view walk its rows again.
        self.grad_norms_changed.emit()

    def set_movement(self, movement: MovementData | None) -> None:
        """What the Moved column shows (ui/movement_column.py); None: nothing."""
        self._movement = movement

    def _row_changed(self, path: str) -> None:
        index = self.index_for_path(path, fetch=False)  # rows not made need no repaint
        if index.isValid():
            last = index.siblingAtColumn(len(HEADERS) - 1)
            self.dataChanged.emit(index, last)

    # -- navigation -------------------------------------------------------------------------

    def node(self, index: _Index) -> Node | None:
        """The node of a row (None for a group of rows)."""
        item = index.internalPointer() if index.isValid() else None
        return None if item is None or type(item) is RowGroup else item

    def number(self, index: _Index) -> int | None:
        """The node number of a row in the tree's index (None for a group)."""
        node = self.node(index)
        return None if node is None or self._index is None else self._index.number(node)

    def index_for_path(self, path: str, fetch: bool = True, column: int = 0) -> QModelIndex:
        """The row of the tensor or module at `path`, invalid when the filter hides it or
        nothing is shown yet. `fetch`: make the rows up to it (else invalid if not made)."""
        if self._index is None:
            return QModelIndex()
        number = self._index.number_of_path(path)
        return QModelIndex() if number is None else self.index_for_number(number, fetch, column)

    def index_for_number(self, number: int, fetch: bool = True, column: int = 0) -> QModelIndex:
        """The row of node `number` (see index_for_path): from the root down, each parent's
        rows made up to the one on the way (a batch at a time), if `fetch`."""
        if self._rows is None or self._index is None or self._tree is None:
            return QModelIndex()
        if number == 0:
            return (
                self.createIndex(0, column, self._tree.root)
                if self._rows.root_shown
                else QModelIndex()
            )
        steps: list[tuple[object, object, int]] = []  # (parent, child, row), the node's first
        item: object = self._index.nodes[number]
        while item is not self._tree.root:
            place = self._place(item)
            if place is None:
                return QModelIndex()  # not shown
            parent, row = place
            steps.append((parent, item, row))
            item = parent
        index = self.createIndex(0, 0, self._tree.root)
        for parent, item, row in reversed(steps):
            self._block(parent)
            if row >= self._fetched[id(parent)]:
                if not fetch:
                    return QModelIndex()
                self._fetch(index, parent, FETCH_BATCH * (row // FETCH_BATCH + 1))
            index = self.createIndex(row, 0, item)
        return index if column == 0 else index.siblingAtColumn(column)

    def under_group(self, number: int) -> bool:
        """Whether node `number` is shown inside a group of rows (folded until opened)."""
        if self._index is None or self._rows is None or self._rows.widest <= GROUP_ABOVE:
            return False  # no module has enough rows for groups
        return any(
            self._block(self._index.nodes[m]).span > 1 for m in self._index.ancestors(number)
        )

    def fetch_all(self, index: _Index) -> None:
        """Make every row under `index` (at most GROUP_ABOVE) before the view expands it,
        when some are modules: the expander opens those next, and rows fetched under a
        parent whose children are open would lay them all out again."""
        item = index.internalPointer() if index.isValid() else None
        if item is None or not (type(item) is RowGroup or item.is_module):
            return
        block = self._block(item)
        if self._fetched[id(item)] == block.count:
            return
        last = self._item_at(item, block, block.count - 1)
        if type(last) is RowGroup or last.is_module:
            self._fetch(index, item, block.count)

    def _fetch(self, index: _Index, item: object, rows: int) -> None:
        """Make the rows under `item` (at `index`) up to `rows`."""
        block = self._block(item)
        rows, fetched = min(block.count, rows), self._fetched[id(item)]
        if rows <= fetched:
            return
        self.beginInsertRows(index, fetched, rows - 1)
        self._fetched[id(item)] = rows
        self.endInsertRows()

    def _block(self, item: object) -> _Block:
        """The rows under a module node or a group (worked out on first use)."""
        known = self._blocks.get(id(item))
        if known is not None:
            return _Block._make(known)
        assert self._rows is not None and self._index is not None
        if type(item) is RowGroup:
            block = _Block.of(item.module, item.lo, item.hi - item.lo)
        else:
            number = self._index.number(item)  # type: ignore[arg-type]
            lo, hi = self._rows.bounds(number)
            block = _Block.of(number, lo, hi - lo)
        # kept as a plain tuple of numbers: the cycle collector stops looking at those
        # (not at named tuples), and expand-all of a million tensors makes 250,000
        self._blocks[id(item)] = tuple(block)
        self._fetched[id(item)] = min(block.count, FETCH_BATCH)
        return block

    def _item_at(self, parent: object, block: _Block, row: int) -> object:
        """What row `row` under `parent` shows: a node, or a group."""
        if block.span == 1:
            return self._index.nodes[self._rows.members[block.first + row]]  # type: ignore[union-attr]
        group = self._groups.get((id(parent), row))
        if group is None:
            lo = block.first + row * block.span
            hi = min(block.first + block.size, lo + block.span)
            group = RowGroup(block.module, lo, hi, parent, row)
            self._groups[(id(parent), row)] = group
        return group

    def _place(self, item: object) -> tuple[object, int] | None:
        """(parent, row) of a shown node or group (made or not), None if not shown.
        Remembered: the view asks for the parent of every row it paints, and of their
        parents for the branch lines."""
        if type(item) is RowGroup:
            return item.parent, item.row
        known = self._place_parent.get(id(item))
        if known is not None:
            return known, self._place_row[id(item)]
        known = self._leaf_parent.get(id(item))
        if known is not None:
            return known, self._leaf_row[id(item)]
        assert self._rows is not None and self._index is not None
        number = self._index.number(item)  # type: ignore[arg-type]
        parent: object = self._index.nodes[int(self._index.parent[number])]
        block = self._block(parent)
        if self._position is not None:  # sorted: a lookup
            position = int(self._position[number]) - block.first
            if not 0 <= position < block.size:
                return None
        else:  # in the index's order: a binary search
            members = self._rows.members[block.first : block.first + block.size]
            position = int(members.searchsorted(number))
            if position >= len(members) or int(members[position]) != number:
                return None
        while block.span > 1:  # down the groups holding it
            row = position // block.span
            position -= row * block.span
            parent = self._item_at(parent, block, row)
            block = self._block(parent)
        self._remember_place(item, parent, position)
        return parent, position

    def _remember_place(self, item: Node, parent: object, row: int) -> None:
        if item.is_module:
            self._place_parent[id(item)] = parent
            self._place_row[id(item)] = row
            return
        if len(self._leaf_parent) >= LEAF_PLACES:
            self._leaf_parent.clear()
            self._leaf_row.clear()
        self._leaf_parent[id(item)] = parent
        self._leaf_row[id(item)] = row

    # -- QAbstractItemModel -----------------------------------------------------------------

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if self._rows is None or not (0 <= column < len(HEADERS)):
            return QModelIndex()
        if not parent.isValid():
            if row == 0 and self._rows.root_shown:
                return self.createIndex(0, column, self._tree.root)  # type: ignore[union-attr]
            return QModelIndex()
        item = parent.internalPointer()
        block = self._block(item)
        if 0 <= row < self._fetched[id(item)]:
            child = self._item_at(item, block, row)
            if column == 0 and type(child) is not RowGroup:  # parent() of it (and of its
                self._remember_place(child, item, row)  # rows) asks where: no search then
            return self.createIndex(row, column, child)
        return QModelIndex()

    def parent(self, index: _Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid() or self._rows is None:
            return QModelIndex()
        item = index.internalPointer()
        if item is self._tree.root:  # type: ignore[union-attr]
            return QModelIndex()
        place = self._place(item)
        if place is None:
            return QModelIndex()
        parent = place[0]
        if parent is self._tree.root:  # type: ignore[union-attr]
            return self.createIndex(0, 0, parent)
        place = self._place(parent)
        return QModelIndex() if place is None else self.createIndex(place[1], 0, parent)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if self._rows is None:
            return 0
        if not parent.isValid():
            return int(self._rows.root_shown)
        if parent.column() != 0:
            return 0
        item = parent.internalPointer()
        if type(item) is not RowGroup and not item.is_module:
            return 0
        self._block(item)
        return self._fetched[id(item)]

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return len(HEADERS)

    def hasChildren(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        if not parent.isValid():
            return self._rows is not None and self._rows.root_shown
        item = parent.internalPointer()
        if type(item) is RowGroup:
            return True
        return item.is_module and self._rows is not None and self._block(item).size > 0

    def canFetchMore(self, parent: _Index) -> bool:
        if not self.fetching or not parent.isValid() or self._rows is None:
            return False
        item = parent.internalPointer()
        if type(item) is not RowGroup and not item.is_module:
            return False
        count = self._block(item).count  # made first: it counts the rows made
        return self._fetched[id(item)] < count

    def fetchMore(self, parent: _Index) -> None:
        if self.canFetchMore(parent):
            item = parent.internalPointer()
            self._fetch(parent, item, self._fetched[id(item)] + FETCH_BATCH)

    def sibling(self, row: int, column: int, index: _Index) -> QModelIndex:
        # Qt's default asks parent() and index() again for every cell painted
        if row == index.row() and 0 <= column < len(HEADERS) and index.isValid():
            return self.createIndex(row, column, index.internalPointer())
        return super().sibling(row, column, index)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(section)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return ITEM_FLAGS

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self._tree is None:
            return None
        node: Node = index.internalPointer()
        column = index.column()
        if type(node) is RowGroup:
            return self._group_data(node, column, role)
        if column == MOVED and self._movement is not None:
            value = self._movement(node, role)
            if value is not None:  # else what every column has (highlight, tooltip)
                return value
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(node, column)
        if role == PATH_ROLE:
            return node.path
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(node, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(node, column)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._background(node)
        if role == Qt.ItemDataRole.FontRole:
            return self._font(node)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (PARAMS, GRAD):
            return int(RIGHT_ALIGNED)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(node, column)
        return None

    def style_cell(self, option: QStyleOptionViewItem, index: _Index) -> bool:
        """Fill a cell's style option as QStyledItemDelegate would from data(), in one call
        (False: leave it to the delegate's own way). The view asks data() for seven roles
        of every cell it paints; that was ~1,850 calls from Qt into Python for one screen
        of rows, the most of a full repaint (selecting, scrolling, expanding)."""
        node = index.internalPointer()
        if node is None or self._tree is None or type(node) is RowGroup:
            return False
        column = index.column()
        if column == MOVED and self._movement is not None:
            return False
        option.index = index
        font = self._font(node)
        if font is not None:
            option.font = font.resolve(option.font)
            option.fontMetrics = QFontMetrics(option.font)
        if column in (PARAMS, GRAD):
            option.displayAlignment = RIGHT_ALIGNED
        foreground = self._foreground(node, column)
        if foreground is not None:
            palette = option.palette  # a copy: set back
            palette.setBrush(QPalette.ColorRole.Text, foreground)
            option.palette = palette
        icon = self._decoration(node, column)
        if icon is not None and not icon.isNull():
            option.features |= QStyleOptionViewItem.ViewItemFeature.HasDecoration
            option.icon = icon
            state = option.state
            if not state & QStyle.StateFlag.State_Enabled:
                mode = QIcon.Mode.Disabled
            elif state & QStyle.StateFlag.State_Selected:
                mode = QIcon.Mode.Selected
            else:
                mode = QIcon.Mode.Normal
            on = QIcon.State.On if state & QStyle.StateFlag.State_Open else QIcon.State.Off
            wanted = option.decorationSize
            actual = icon.actualSize(wanted, mode, on)
            option.decorationSize = QSize(
                min(wanted.width(), actual.width()), min(wanted.height(), actual.height())
            )
        text = self._display(node, column)
        if text is not None:
            option.features |= QStyleOptionViewItem.ViewItemFeature.HasDisplay
            option.text = text
        background = self._background(node)
        option.backgroundBrush = QBrush() if background is None else QBrush(background)
        option.styleObject = None
        return True

    def _background(self, node: Node) -> QColor | None:
        if node.path not in self._highlight:
            return None
        if node is self._tree.root and isinstance(node, ModuleNode):  # type: ignore[union-attr]
            return None
        color = QColor(self._highlight[node.path])
        color.setAlpha(self.highlight_alpha)
        return color

    def _font(self, node: Node) -> QFont | None:
        if node.path not in self._highlight:
            return None
        font = QFont()
        font.setBold(True)
        return font

    def _foreground(self, node: Node, column: int) -> QColor | None:
        if column == TIES and isinstance(node, TensorNode) and node.tie is not None:
            return tie_color(node.tie).darker(130)
        if not self._matches(node):
            # shown only because something below matches the filter: dimmed
            return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    def _matches(self, node: Node) -> bool:
        rows, index = self._rows, self._index
        if rows is None or rows.matches is None or index is None:
            return True
        return rows.is_match(index.number(node))

    def _group_data(self, group: RowGroup, column: int, role: int):
        """A group of rows: the names of its first and last, and which rows they are."""
        assert self._rows is not None and self._index is not None
        module = self._index.nodes[group.module]
        if role == PATH_ROLE:  # moving onto it keeps its module selected
            return module.path
        start, stop = self._rows.bounds(group.module)
        first, last = group.lo - start + 1, group.hi - start
        if role == Qt.ItemDataRole.DisplayRole:
            if column == NAME:
                members = self._rows.members
                names = (self._index.nodes[members[i]].name for i in (group.lo, group.hi - 1))
                return " … ".join(names)
            if column == TYPE:
                return f"rows {first:,}–{last:,} of {stop - start:,}"
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            where = module.path or module.access
            return (
                f"Rows {first:,} to {last:,} of the {stop - start:,} under {where}, grouped "
                f"by {GROUP_SIZE:,} (a module with more than {GROUP_ABOVE:,} rows): expand "
                "to show them"
            )
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    def _display(self, node: Node, column: int) -> str | None:
        tree = self._tree
        assert tree is not None
        if column == NAME:
            if node is tree.root:  # the variable it is reached from: net, or ckpt for a file
                return node.access
            return node.name
        if column == TYPE:
            if isinstance(node, TensorNode):  # the icon tells parameter from buffer
                if node.kind == "parameter":
                    return node.dtype
                # a checkpoint entry whose kind the file does not say: "tensor"
                return f"{node.kind} {node.dtype}"
            return node.type_name
        if column == SHAPE:
            return shape_text(node.shape, "pretty") if isinstance(node, TensorNode) else None
        if column == PARAMS:
            if isinstance(node, TensorNode):
                count = node.numel
            else:  # elements of tensors of unknown kind where there are no parameters
                count = node.parameter_count or node.tensor_elements
            return format_count(count) if count else ""
        if column == TIES:
            return ties_text(tree, node)
        if column == GRAD and isinstance(node, TensorNode) and node.path in self._grad_norms:
            norm = self._grad_norms[node.path]
            if norm is None:
                return "—"
            return f"{norm:.4g}" if math.isfinite(norm) else str(norm)
        return None

    def _decoration(self, node: Node, column: int):
        if column == NAME:
            return kind_icon(node.kind if isinstance(node, TensorNode) else "module")
        if column == TIES:
            if isinstance(node, TensorNode) and node.tie is not None:
                return tie_icon(node.tie)
            if isinstance(node, ModuleNode) and node.shared_with:
                return alias_icon(node.has_parameters)
        return None

    def _tooltip(self, node: Node, column: int) -> str | None:
        tree = self._tree
        assert tree is not None
        if column == TIES:
            return ties_tooltip(tree, node) or None
        if isinstance(node, TensorNode):
            return f"{node.path}\n{node.access}\n{shape_text(node.shape, 'pretty')} {node.dtype}"
        label = module_label(node)
        return f"{node.path or '(root)'}\n{node.access}" + (f"\n{label}" if label else "")


class RowDelegate(QStyledItemDelegate):
    """The tree's cells, styled by the model in one call each (ModuleTreeModel.style_cell)
    and drawn by Qt as any QStyledItemDelegate draws them."""

    def __init__(self, model: ModuleTreeModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model

    def initStyleOption(self, option: QStyleOptionViewItem, index: _Index) -> None:
        if not self._model.style_cell(option, index):
            super().initStyleOption(option, index)


class TreePanel(QWidget):
    """Filter box above the tree view; selection kept in sync with the Document.

    The tree's index is built on a new tree (in a worker for a large one, with progress);
    until it is there the view is empty. Filtering, expanding many rows and indexing show
    their progress below the filter box, with Stop (or Esc)."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.model = ModuleTreeModel(self)
        # the view sees the model through an identity proxy: code that maps indexes through
        # `proxy` (as when it was the filter proxy) keeps working
        self.proxy = QIdentityProxyModel(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name, path or type   (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Show only modules and tensors whose path or type matches")
        # every keystroke filters at once: a result is a few ms (a worker's, for a large tree)
        self.filter_edit.textChanged.connect(self._apply_filter)

        self.view = TreeView(self)
        self.view.tree_model = self.model
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)
        self.delegate = RowDelegate(self.model, self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setAllColumnsShowFocus(True)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._show_context_menu)
        header = self.view.header()
        header.setStretchLastSection(True)
        # Interactive, sized once per tree: ResizeToContents would measure rows again on
        # every gradient-norm update while training
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.setColumnHidden(GRAD, True)
        self.view.setColumnHidden(MOVED, True)  # shown for a training run (movement_column.py)
        self.view.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.view.expanded.connect(self._on_expanded)
        self.view.collapsed.connect(self._on_collapsed)
        self.view.expand_below_requested.connect(self.expand_below)
        self.view.verticalScrollBar().valueChanged.connect(self._fetch_soon)
        self.model.grad_norms_changed.connect(self._repaint_grad_column)

        # progress of tree work (indexing, filtering, expanding) and the filter's count
        self.status_label = QLabel(self)
        # the row never widens the panel (its text, cut short on a narrow panel, is the
        # tooltip too): a window of three panels still fits a small screen
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setTextVisible(False)
        self.stop_button = QToolButton(self)
        self.stop_button.setText("Stop")
        self.stop_button.setToolTip("Stop this (Esc in the tree): what is done stays")
        self.stop_button.clicked.connect(self.stop_work)
        status_row = QHBoxLayout()
        status_row.setContentsMargins(4, 0, 4, 0)
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(self.progress_bar)
        status_row.addWidget(self.stop_button)
        self.status_row = QWidget(self)
        self.status_row.setLayout(status_row)
        # always there, of one height: a row that came and went would lay out the window
        # again, and repaint all of it, at every keystroke that starts or ends a filter
        self.progress_bar.setVisible(False)
        self.stop_button.setVisible(False)
        self.status_row.setFixedHeight(self.stop_button.sizeHint().height())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.status_row)
        layout.addWidget(self.view)

        self.expander = Expander(self.view, self.model, self.proxy)
        self.expander.progressed.connect(self._on_expand_progressed)
        self.expander.finished.connect(lambda _done: self._work_ended("expand"))
        self._indexer = TaskRunner(self)  # the tree's index, for a large tree
        self._filterer = TaskRunner(self)  # a filter's rows, for a large tree
        self._filter: TreeFilter | None = None  # of the tree shown, once indexed
        self._shown_text = ""  # the filter text whose rows the model shows
        self._work: dict[str, tuple[str, float | None]] = {}  # kind -> (text, fraction)
        self._work_clock = QTimer(self, singleShot=True, interval=SHOW_WORK_AFTER_MS)
        self._work_clock.timeout.connect(self._show_status)
        self._progress_clock = QTimer(self, singleShot=True, interval=PROGRESS_EVERY_MS)
        self._progress_clock.timeout.connect(self._show_progress)
        self._expanded: set[int] = set()  # modules open in the view, by node number
        self._expanded_before_filter: set[int] | None = None
        self._fetch_timer = QTimer(self, singleShot=True, interval=0)
        self._fetch_timer.timeout.connect(self._fetch_visible)

        # Esc clears the filter from the box or the tree: a key handler, not a shortcut,
        # which would be ambiguous with the progress bar's Cancel (Esc) while work runs
        self.filter_edit.installEventFilter(self)
        self.view.installEventFilter(self)
        follow(self.apply_look)
        document.tree_changed.connect(self._on_tree_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.session.state.holdings_changed.connect(self._on_holdings_changed)
        self._syncing = False
        self._filtering = False

    @property
    def busy(self) -> bool:
        """Indexing, filtering or expanding is still under way."""
        return self.expander.running or self._indexer.busy or self._filterer.busy

    # -- document -> view -------------------------------------------------------------------

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self.stop_work()
        self._filter = None
        self._shown_text = ""
        self._expanded = set()
        self._expanded_before_filter = None
        self.model.set_tree(tree)
        self.view.setColumnHidden(GRAD, tree is None or not tree.is_live)
        if tree is None:
            self._update_status()
            return
        if len(tree.modules) + len(tree.tensors) <= INDEX_ON_GUI_THREAD:
            self._on_indexed(index_tree(tree))
            return
        self._work_started("index", f"Indexing {len(tree.tensors):,} tensors…")
        self._indexer.run(
            build_index,
            tree,
            on_result=self._on_indexed,
            on_progress=lambda fraction: self._work_progressed("index", fraction),
            on_error=self._on_index_failed,
        )

    def _on_indexed(self, index: TreeIndex) -> None:
        self._work_ended("index")
        if index.tree is not self.model.tree:
            return
        self.model.set_index(index)
        self._filter = TreeFilter(index)
        self._update_status()
        # it lives as long as the tree is shown: out of the cycle collector's reach, as the
        # document does with the tree (its million-entry lists made each full collection
        # of the window's objects tens of ms longer)
        gc.freeze()
        self._size_columns()
        if self.filter_edit.text().strip():  # typed while the index was being built
            self._apply_filter()
            return
        rows = index.all_rows
        if len(index) <= EXPAND_FULLY:
            self.expander.start(rows.expandable.tolist())
        else:  # the root and the modules right under it, as expandToDepth(1) did, as
            # far as about OPEN_ROWS rows: Qt lays out every row under an expanded parent
            # (a thousand blocks of 250 rows each: half a second with the window frozen)
            depth = index.depth[rows.expandable]
            shallow = rows.expandable[depth <= 1]
            self.expander.start(shallow[: _first_rows(rows, shallow, OPEN_ROWS)].tolist())
        self._reveal(self.document.selected)

    def _on_index_failed(self, error: BaseException) -> None:
        self._work_ended("index")
        self._set_status(f"Cannot show the tree: {error}")

    def _size_columns(self) -> None:
        """Columns as wide as their text (at the current text size), measured on a sample
        of rows (the first, some spread over the tree, the longest): names never elide."""
        index = self.model.tree_index
        tree = self.model.tree
        if index is None or tree is None:
            return
        view = self.view
        bold = QFont(view.font())
        bold.setBold(True)
        wide = QFontMetrics(bold)  # highlighted rows are bold
        numbers = list(index.width_sample)
        numbers += [index.number(tree.tensors[g.paths[0]]) for g in tree.tie_groups[:20]]
        nodes = [index.nodes[n] for n in numbers]
        icon = view.iconSize().width()
        header = view.header()
        name = max(
            view.indentation() * (int(index.depth[n]) + 1)
            + wide.horizontalAdvance(self.model._display(node, NAME) or "")
            for n, node in zip(numbers, nodes, strict=True)
        )
        view.setColumnWidth(NAME, max(name + icon + 24, 160, header.sectionSizeHint(NAME)))
        for column in (TYPE, SHAPE, PARAMS, TIES):
            text = max(
                (wide.horizontalAdvance(self.model._display(n, column) or "") for n in nodes),
                default=0,
            )
            extra = icon + 8 if column == TIES else 0
            view.setColumnWidth(column, max(text + extra + 16, header.sectionSizeHint(column)))
        app_metrics = QFontMetrics(QApplication.font())
        view.setColumnWidth(GRAD, app_metrics.horizontalAdvance("0.000000 ") + 16)

    def apply_look(self, look: Look) -> None:
        # presenting: the tie group's rows in a stronger colour, visible from the back row
        self.model.highlight_alpha = 170 if look.presenting else HIGHLIGHT_ALPHA
        self.view.setIconSize(QSize(look.px(16), look.px(16)))
        if self.model.tree is not None:
            # after Qt has applied the new font to the view's items
            QTimer.singleShot(0, self, self._size_columns)

    def _on_selection_changed(self, path: str | None) -> None:
        self._update_highlight(path)
        if self._syncing:
            return
        current = self.view.currentIndex()
        if path is None:
            self.view.clearSelection()
            return
        if current.isValid() and current.data(PATH_ROLE) == path:
            return
        if self.model.tree_index is None:
            return  # shown once the tree is indexed
        source = self.model.index_for_path(path)
        if not source.isValid():  # filtered out: clear the filter so it can be shown
            self.filter_edit.clear()
            self._apply_filter()
            source = self.model.index_for_path(path)
        self._select_row(source, scroll=True)

    def _select_row(self, source: QModelIndex, scroll: bool = False) -> None:
        """Make a row the view's current, selected row, without selecting it again in the
        document (it is the document's selection already)."""
        proxy_index = self.proxy.mapFromSource(source)
        if not proxy_index.isValid():
            return
        self._syncing = True
        try:
            self.view.selectionModel().setCurrentIndex(
                proxy_index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
            if scroll:
                self.view.scrollTo(proxy_index)
        finally:
            self._syncing = False

    def _reveal(self, path: str | None) -> None:
        """Select and scroll to the document's selection (a new tree, its index built)."""
        if path is not None:
            self._select_row(self.model.index_for_path(path), scroll=True)

    def _update_highlight(self, path: str | None) -> None:
        tree = self.model.tree
        colors: dict[str, QColor] = {}
        if tree is not None and path is not None:
            node = tree.node(path)
            if isinstance(node, TensorNode) and node.tie is not None:
                group = tree.tie_groups[node.tie]
                colors = {p: tie_color(group.id) for p in group.paths}
            elif isinstance(node, ModuleNode) and node.shared_with:
                color = QColor("#8E44AD")
                colors = {p: color for p in (node.path, *node.shared_with)}
        self.model.set_highlight(colors)

    # -- view -> document -------------------------------------------------------------------

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        # A filter resets the model, which drops the current row; the filter proxy there was
        # before moved "current" to another row in the middle of its filter change, and
        # selecting that row re-entered the model, which crashed Qt. Filtering is not
        # choosing: nothing the view does while the filter changes selects anything.
        if self._syncing or self._filtering or not current.isValid():
            return
        self._syncing = True
        try:
            self.document.select(current.data(PATH_ROLE))
        finally:
            self._syncing = False

    # -- filtering --------------------------------------------------------------------------

    def _apply_filter(self) -> None:
        """Show the rows the filter text leaves: at once for a small tree or an empty
        text, else from a worker (a newer text supersedes it)."""
        if self._filter is None:
            return  # applied once the tree is indexed
        text = self.filter_edit.text().strip().lower()
        self._filterer.cancel()
        self._work_ended("filter")
        if text == self._shown_text:
            self._mark_current(self.document.selected)
            return
        if not text or len(self._filter.index) <= FILTER_ON_GUI_THREAD:
            self._show_filtered(self._filter.result_now(text))
            return
        self._work_started("filter", f"Filtering for “{text}”…")
        self._filterer.run(
            self._filter.result,
            text,
            on_result=self._show_filtered,
            on_progress=lambda fraction: self._work_progressed("filter", fraction),
        )

    def _show_filtered(self, result: FilterResult) -> None:
        """Reset the model to a filter's rows and expand what they show: everything when
        filtered, what was open before the filter (and the selection) when not."""
        self._work_ended("filter")
        index = self.model.tree_index
        if index is None or self._filter is None or result.rows is None:
            return
        if result.rows is self.model.rows and result.text and self._shown_text:
            # another text that leaves the same rows (typing "experts" where every path
            # holds it): the view stays as it is, scrolled and expanded
            self._shown_text = result.text
            self._update_status()
            return
        if result.text and not self._shown_text:
            self._expanded_before_filter = set(self._expanded)
        self._filtering = True  # the reset drops the current row without a signal
        try:
            self.expander.stop(quietly=True)
            self.model.set_rows(result.rows)
            self._shown_text = result.text
            self._expanded = set()
            if result.text:
                targets = result.rows.expandable[: result.rows.expand_first(FILTER_OPENS_ROWS)]
                targets = targets.tolist()
            else:
                opened = self._expanded_before_filter or {0}
                self._expanded_before_filter = None
                selected = index.number_of_path(self.document.selected or "")
                if selected is not None:  # the selection's modules open, as it is shown
                    opened |= set(index.ancestors(selected))
                targets = sorted(opened)
            self.expander.start(targets)
        finally:
            self._filtering = False
        self._mark_current(self.document.selected)
        self._update_status()

    def _mark_current(self, path: str | None) -> None:
        """The selected row as the view's current row, where the filter shows it; where it
        does not, the first row is current (not selected): Tab into the tree must not pick
        a row of its own."""
        if path is None:
            return
        source = self.model.index_for_path(path)
        proxy_index = self.proxy.mapFromSource(source)
        if proxy_index.isValid():
            if self.view.currentIndex() != proxy_index:
                self._select_row(source)
            return
        first = self.proxy.index(0, 0)
        if first.isValid() and not self.view.currentIndex().isValid():
            self._syncing = True
            try:
                self.view.selectionModel().setCurrentIndex(
                    first, QItemSelectionModel.SelectionFlag.NoUpdate
                )
            finally:
                self._syncing = False

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:
            if self.filter_edit.text():
                self.clear_filter()
                return True
            if self.busy:
                self.stop_work()
                return True
        return super().eventFilter(watched, event)

    def clear_filter(self) -> None:
        """Show every row again; the tree keeps the selection."""
        self.filter_edit.clear()
        self._apply_filter()
        self.view.setFocus()

    def focus_filter(self) -> None:
        """Put the cursor in the filter box (Ctrl+F: the window's Find in tree action)."""
        self.filter_edit.setFocus()
        self.filter_edit.selectAll()

    # -- expanding --------------------------------------------------------------------------

    def expand_all(self) -> None:
        """Expand every module the tree shows (a few at a time, with progress; groups of
        rows stay folded)."""
        rows = self.model.rows
        if rows is not None:
            self._expand(rows.expandable.tolist())

    def expand_below(self, proxy_index: QModelIndex) -> None:
        """Expand the row and every module below it ('*')."""
        index, rows = self.model.tree_index, self.model.rows
        number = self.model.number(self.proxy.mapToSource(proxy_index))
        if index is None or rows is None:
            return
        if number is None:  # a group of rows: just open it
            self.view.expand(proxy_index)
            return
        expandable = rows.expandable
        lo, hi = expandable.searchsorted([number, int(index.end[number])])
        self._expand(expandable[lo:hi].tolist())

    def collapse_all(self) -> None:
        """Fold everything but the root (quick: nothing is laid out again)."""
        self.expander.stop(quietly=True)
        self.view.collapseAll()
        self._expanded = set()
        root = self.proxy.index(0, 0)
        if root.isValid():
            self.view.expand(root)

    def _expand(self, numbers: list[int]) -> None:
        self._work_started("expand", f"Expanding {len(numbers):,} modules…")
        self.expander.start(numbers)

    def _on_expand_progressed(self, done: int, total: int) -> None:
        if done < total:
            self._work_progressed("expand", done / max(1, total))

    def _on_expanded(self, proxy_index: QModelIndex) -> None:
        number = self.model.number(self.proxy.mapToSource(proxy_index))
        if number is not None:
            self._expanded.add(number)
        self._fetch_soon()

    def _on_collapsed(self, proxy_index: QModelIndex) -> None:
        number = self.model.number(self.proxy.mapToSource(proxy_index))
        self._expanded.discard(number)  # type: ignore[arg-type]

    def _show_context_menu(self, position) -> None:
        menu = QMenu(self)
        proxy_index = self.view.indexAt(position)
        if proxy_index.isValid() and self.proxy.hasChildren(proxy_index):
            below = QAction("Expand all below   *", menu)
            below.triggered.connect(lambda: self.expand_below(proxy_index))
            menu.addAction(below)
        menu.addAction("Expand all", self.expand_all)
        menu.addAction("Collapse all", self.collapse_all)
        menu.exec(self.view.viewport().mapToGlobal(position))

    # -- rows made as they come into view ---------------------------------------------------

    def _fetch_soon(self, *_args: object) -> None:
        self._fetch_timer.start()

    def _fetch_visible(self) -> None:
        """More rows for a parent whose last made row is in view. Qt asks only for the
        parents of the view's very last row; a module in the middle would show its first
        rows and then its next sibling."""
        view = self.view
        height = view.viewport().height()
        index = view.indexAt(view.viewport().rect().topLeft())
        step = max(1, view.sizeHintForRow(0)) if index.isValid() else 1
        y = 0
        while index.isValid() and y < height + step:
            parent = index.parent()
            if index.row() == self.proxy.rowCount(parent) - 1 and self.proxy.canFetchMore(parent):
                self.proxy.fetchMore(parent)
                self._fetch_soon()  # the next parent (or the next batch) on the next turn
                return
            index = view.indexBelow(index)
            y += step

    # -- progress ---------------------------------------------------------------------------

    def _work_started(self, kind: str, text: str) -> None:
        self._work[kind] = (text, None)
        if not self._work_clock.isActive() and not self.progress_bar.isVisible():
            self._work_clock.start()

    def _work_progressed(self, kind: str, fraction: float) -> None:
        if kind in self._work:
            self._work[kind] = (self._work[kind][0], fraction)
            if self.progress_bar.isVisible() and not self._progress_clock.isActive():
                self._progress_clock.start()  # a QProgressBar repaints on every value

    def _show_progress(self) -> None:
        if self._work and self.progress_bar.isVisible():
            self._show_status()

    def _work_ended(self, kind: str) -> None:
        if self._work.pop(kind, None) is not None:
            self._update_status()

    def stop_work(self) -> None:
        """Stop indexing, filtering and expanding (Stop, or Esc in the tree)."""
        self.expander.stop(quietly=True)
        self._filterer.cancel()
        self._indexer.cancel()
        self._work = {}
        self._update_status()

    def _show_status(self) -> None:
        self._update_status(show_work=True)

    def _update_status(self, show_work: bool | None = None) -> None:
        """What the row under the filter says: the work under way (after a moment), how
        many rows match the filter, or how many there are."""
        working = bool(self._work)
        if show_work is None:
            show_work = working and self.progress_bar.isVisible()
        if not working:
            self._work_clock.stop()
        if working and show_work:
            text, fraction = next(reversed(self._work.values()))
            self._set_status(text)
            self.progress_bar.setRange(0, 0 if fraction is None else 1000)
            self.progress_bar.setValue(round(1000 * (fraction or 0)))
            self.progress_bar.setVisible(True)
            self.stop_button.setVisible(True)
            return
        self.progress_bar.setVisible(False)
        self.stop_button.setVisible(False)
        self._set_status(self._rows_text())

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)

    def _rows_text(self) -> str:
        rows, index, tree = self.model.rows, self.model.tree_index, self.model.tree
        if tree is None:
            return ""
        if rows is not None and rows.matches is not None and index is not None:
            matched = len(rows.matches)
            return f"{matched:,} of {len(index):,} rows match" if matched else "No row matches"
        return f"{len(tree.modules):,} modules, {len(tree.tensors):,} tensors"

    # -- gradients --------------------------------------------------------------------------

    def _repaint_grad_column(self) -> None:
        if self.view.isColumnHidden(GRAD):
            return
        header = self.view.header()
        x = header.sectionViewportPosition(GRAD)
        viewport = self.view.viewport()
        viewport.update(x, 0, header.sectionSize(GRAD), viewport.height())

    def _on_holdings_changed(self, holdings) -> None:
        self.model.set_grad_norms(holdings.grad_norms)
