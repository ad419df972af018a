"""The module tree: a QAbstractItemModel over the pure ModuleTree, a filter, a QTreeView.

This is the only place that knows Qt's index/row/parent protocol. Items are never copied: an
index points at the core node, and rows are found on demand, so a tree of thousands of
modules costs nothing until it is expanded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ..core.describe import format_count, module_label
from ..core.errors import UnknownPathError
from ..core.text import shape_text
from ..core.tree import ModuleNode, ModuleTree, Node, TensorNode
from .appearance import Look, follow
from .document import Document
from .icons import alias_icon, kind_icon, tie_color, tie_icon

NAME, TYPE, SHAPE, PARAMS, TIES, GRAD, MOVED = range(7)
HEADERS = ["Name", "Type", "Shape", "Params", "Ties", "Grad norm", "Moved"]
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
# What the Moved column shows of a row, for a role (a training run's movement, drawn and
# sorted by ui/movement_column.py); None: nothing
MovementData = Callable[[Node, int], Any]
HIGHLIGHT_ALPHA = 90

_Index = QModelIndex | QPersistentModelIndex


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


class ModuleTreeModel(QAbstractItemModel):
    """Rows: the root module, then for each module its own tensors (state_dict order) and
    then its child modules."""

    grad_norms_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.highlight_alpha = HIGHLIGHT_ALPHA  # of the tie group's colour behind its rows
        self._tree: ModuleTree | None = None
        self._highlight: dict[str, QColor] = {}
        self._grad_norms: dict[str, float | None] = {}
        self._rows: dict[int, int] = {}  # id(node) -> row under its parent, filled on demand
        self._movement: MovementData | None = None

    # -- content ----------------------------------------------------------------------------

    @property
    def tree(self) -> ModuleTree | None:
        return self._tree

    def set_tree(self, tree: ModuleTree | None) -> None:
        self.beginResetModel()
        self._tree = tree
        self._highlight = {}
        self._grad_norms = {}
        self._rows = {}
        self.endResetModel()

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
        # which makes the view and the filter proxy walk their rows again.
        self.grad_norms_changed.emit()

    def set_movement(self, movement: MovementData | None) -> None:
        """What the Moved column shows (ui/movement_column.py); None: nothing."""
        self._movement = movement

    def _row_changed(self, path: str) -> None:
        index = self.index_for_path(path)
        if index.isValid():
            last = index.siblingAtColumn(len(HEADERS) - 1)
            self.dataChanged.emit(index, last)

    # -- navigation -------------------------------------------------------------------------

    @staticmethod
    def children_of(node: Node) -> list[Node]:
        if isinstance(node, ModuleNode):
            return [*node.tensors, *node.children]
        return []

    @staticmethod
    def parent_of(node: Node) -> ModuleNode | None:
        return node.module if isinstance(node, TensorNode) else node.parent

    def node(self, index: _Index) -> Node | None:
        return index.internalPointer() if index.isValid() else None

    def index_for_path(self, path: str) -> QModelIndex:
        if self._tree is None:
            return QModelIndex()
        try:
            node = self._tree.node(path)
        except UnknownPathError:
            return QModelIndex()
        return self._index_for_node(node)

    def _index_for_node(self, node: Node, column: int = 0) -> QModelIndex:
        parent = self.parent_of(node)
        if parent is None:
            return self.createIndex(0, column, node)
        row = self._rows.get(id(node))
        if row is None:  # number all siblings at once: parent() is asked for often
            for i, child in enumerate(self.children_of(parent)):
                self._rows[id(child)] = i
            row = self._rows[id(node)]
        return self.createIndex(row, column, node)

    # -- QAbstractItemModel -----------------------------------------------------------------

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if self._tree is None or not (0 <= column < len(HEADERS)):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, self._tree.root) if row == 0 else QModelIndex()
        children = self.children_of(parent.internalPointer())
        if 0 <= row < len(children):
            return self.createIndex(row, column, children[row])
        return QModelIndex()

    def parent(self, index: _Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        parent = self.parent_of(index.internalPointer())
        return QModelIndex() if parent is None else self._index_for_node(parent)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if self._tree is None:
            return 0
        if not parent.isValid():
            return 1
        if parent.column() != 0:
            return 0
        return len(self.children_of(parent.internalPointer()))

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return len(HEADERS)

    def hasChildren(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        if not parent.isValid():
            return self._tree is not None
        node = parent.internalPointer()
        return isinstance(node, ModuleNode) and bool(node.tensors or node.children)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                PARAMS: "Parameter elements (a tied tensor counted once)",
                TIES: "Other paths that reach the same tensor or module object",
                GRAD: "L2 norm of the parameter's .grad (after a backward pass)",
                MOVED: "How far it moved over the training run: its relative change "
                "‖Wₜ − Wₜ₋₁‖/‖Wₜ₋₁‖ per checkpoint, and their sum (click to sort)",
            }.get(section)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self._tree is None:
            return None
        node: Node = index.internalPointer()
        column = index.column()
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
        if role == Qt.ItemDataRole.BackgroundRole and node.path in self._highlight:
            if node is self._tree.root and isinstance(node, ModuleNode):
                return None
            color = QColor(self._highlight[node.path])
            color.setAlpha(self.highlight_alpha)
            return color
        if role == Qt.ItemDataRole.FontRole and node.path in self._highlight:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (PARAMS, GRAD):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if (
            role == Qt.ItemDataRole.ForegroundRole
            and column == TIES
            and isinstance(node, TensorNode)
            and node.tie is not None
        ):
            return tie_color(node.tie).darker(130)
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


class TreeFilterProxy(QSortFilterProxyModel):
    """Keeps rows whose path, name or type contains the filter text, and their parents."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self._text = ""

    def set_text(self, text: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated
            self.beginFilterChange()
            self._text = text.strip().lower()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._text = text.strip().lower()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        if not self._text:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        node: Node = index.internalPointer()
        kind = node.kind if isinstance(node, TensorNode) else node.type_name
        return any(self._text in s.lower() for s in (node.path, node.name, kind, node.access))


class TreePanel(QWidget):
    """Filter box above the tree view; selection kept in sync with the Document."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.model = ModuleTreeModel(self)
        self.proxy = TreeFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name, path or type   (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Show only modules and tensors whose path or type matches")
        self._filter_timer = QTimer(self, singleShot=True, interval=120)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(self._filter_timer.start)

        self.view = QTreeView(self)
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setAllColumnsShowFocus(True)
        header = self.view.header()
        header.setStretchLastSection(True)
        # Interactive, sized once per tree: ResizeToContents would measure rows again on
        # every gradient-norm update while training
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.setColumnHidden(GRAD, True)
        self.view.setColumnHidden(MOVED, True)  # shown for a training run (movement_column.py)
        self.view.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.model.grad_norms_changed.connect(self._repaint_grad_column)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view)

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

    # -- document -> view -------------------------------------------------------------------

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        self.model.set_tree(tree)
        self.view.setColumnHidden(GRAD, tree is None or not tree.is_live)
        if tree is None:
            return
        small = len(tree.modules) + len(tree.tensors) <= 400
        if small:
            self.view.expandAll()
        else:
            self.view.expandToDepth(1)
        self._size_columns()

    def _size_columns(self) -> None:
        """Columns as wide as their text (at the current text size): names never elide."""
        metrics = QFontMetrics(QApplication.font())
        self.view.setColumnWidth(NAME, max(self.view.sizeHintForColumn(NAME) + 24, 160))
        for column in (TYPE, SHAPE, PARAMS, TIES):
            self.view.resizeColumnToContents(column)
        self.view.setColumnWidth(GRAD, metrics.horizontalAdvance("0.000000 ") + 16)

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
        source = self.model.index_for_path(path)
        proxy_index = self.proxy.mapFromSource(source)
        if not proxy_index.isValid():  # filtered out: clear the filter so it can be shown
            self.filter_edit.clear()
            self._apply_filter()
            proxy_index = self.proxy.mapFromSource(source)
        self._syncing = True
        try:
            self.view.selectionModel().setCurrentIndex(
                proxy_index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
            self.view.scrollTo(proxy_index)
        finally:
            self._syncing = False

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
        # A row the filter hides moves "current" to another row in the middle of the
        # proxy's filter change: selecting it then would change the model (highlights)
        # while the proxy rebuilds its mapping, which crashed Qt. Filtering is not choosing.
        if self._syncing or self._filtering or not current.isValid():
            return
        self._syncing = True
        try:
            self.document.select(current.data(PATH_ROLE))
        finally:
            self._syncing = False

    def _apply_filter(self) -> None:
        self._filtering = True
        try:
            self.proxy.set_text(self.filter_edit.text())
            if self.filter_edit.text():
                self.view.expandAll()
        finally:
            self._filtering = False
        self._mark_current(self.document.selected)

    def _mark_current(self, path: str | None) -> None:
        """The selected row as the view's current row, where the filter shows it."""
        if path is None:
            return
        proxy_index = self.proxy.mapFromSource(self.model.index_for_path(path))
        if not proxy_index.isValid() or self.view.currentIndex() == proxy_index:
            return
        self._syncing = True
        try:
            self.view.selectionModel().setCurrentIndex(
                proxy_index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        finally:
            self._syncing = False

    def eventFilter(self, watched, event) -> bool:
        if (
            event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Escape
            and self.filter_edit.text()
        ):
            self.clear_filter()
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

    def _repaint_grad_column(self) -> None:
        if self.view.isColumnHidden(GRAD):
            return
        header = self.view.header()
        x = header.sectionViewportPosition(GRAD)
        viewport = self.view.viewport()
        viewport.update(x, 0, header.sectionSize(GRAD), viewport.height())

    def _on_holdings_changed(self, holdings) -> None:
        self.model.set_grad_norms(holdings.grad_norms)
