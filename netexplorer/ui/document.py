"""The thin adapter between `core` and the widgets.

`Document` owns what the window shows (the open tree and the selection) and tells widgets
about changes by signals, one per attribute, emitted only on a real change. Widgets never
reach into torch objects: they ask the document, which asks `core`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..core.tree import ModuleTree, Node


class Document(QObject):
    tree_changed = Signal(object)  # ModuleTree | None
    selection_changed = Signal(object)  # path (str) or None
    values_changed = Signal()  # tensor values or gradients changed (a pass, a step)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tree: ModuleTree | None = None
        self._selected: str | None = None

    @property
    def tree(self) -> ModuleTree | None:
        return self._tree

    @property
    def selected(self) -> str | None:
        return self._selected

    def selected_node(self) -> Node | None:
        if self._tree is None or self._selected is None:
            return None
        return self._tree.node(self._selected)

    def set_tree(self, tree: ModuleTree | None) -> None:
        if tree is self._tree:
            return
        self._tree = tree
        self._selected = None
        self.tree_changed.emit(tree)
        self.selection_changed.emit(None)

    def select(self, path: str | None) -> None:
        """Select a module or tensor by path (raises UnknownPathError for a bad path)."""
        if path == self._selected:
            return
        if path is not None:
            if self._tree is None:
                raise ValueError("nothing is open")
            self._tree.node(path)
        self._selected = path
        self.selection_changed.emit(path)

    def notify_values_changed(self) -> None:
        self.values_changed.emit()
