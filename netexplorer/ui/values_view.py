"""The Values tab: the selection as Python prints it, beside `print(net)`.

Left, the notebook's cells for the selection (`net[2].bias`, its `.data`, its type and
`requires_grad`, its `.grad`; for a module, the module and its `state_dict()`), printed by
PyTorch itself (core/printing.py), with Copy buttons. Right, `print(net)` of the open model.

The text is made in a worker (printing a live model holds the engine's state lock there, so
no pass changes it meanwhile) and only while the tab is on screen; it follows the selection
and every change of the shown tensor's values."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.printing import Printed, net_text, print_selection
from ..core.tree import ModuleTree
from .document import Document
from .workers import TaskRunner


def _monospace(widget: QPlainTextEdit) -> None:
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    widget.setFont(font)


class ValuesPanel(QWidget):
    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.printed: Printed | None = None
        self.selection = QPlainTextEdit(self)
        self.selection.setReadOnly(True)
        self.selection.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.selection.setToolTip("What Python prints for the selection, as in the notebook")
        _monospace(self.selection)
        self.net = QPlainTextEdit(self)
        self.net.setReadOnly(True)
        self.net.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.net.setToolTip("print(net)")
        _monospace(self.net)
        self.copy_values = QPushButton("Copy values", self)
        self.copy_values.setToolTip("Copy the printed values of the selection")
        self.copy_values.clicked.connect(self._copy_values)
        self.copy_all = QPushButton("Copy", self)
        self.copy_all.setToolTip("Copy every cell above, with its expression")
        self.copy_all.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.selection.toPlainText())
        )
        self.heading = QLabel("Selection", self)
        self.heading.setTextFormat(Qt.TextFormat.RichText)

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.copy_values)
        top.addWidget(self.copy_all)
        left_layout.addLayout(top)
        left_layout.addWidget(self.selection, 1)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(QLabel("<b>print(net)</b>", self))
        right_layout.addWidget(self.net, 1)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

        self._runner = TaskRunner(self)
        self._dirty = True
        self._net_tree: ModuleTree | None = None
        document.tree_changed.connect(self._on_changed)
        document.selection_changed.connect(self._on_changed)
        document.tensor_data_changed.connect(self._on_changed)

    @property
    def busy(self) -> bool:
        return self._runner.pending

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:
            self.refresh()

    def _on_changed(self, *_args: object) -> None:
        self._dirty = True
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        """Print the selection (and the model, when it changed) again, in a worker."""
        self._dirty = False
        tree, path = self.document.tree, self.document.selected
        if tree is None or path is None:
            self._runner.cancel()
            self.printed = None
            self.heading.setText("Selection")
            self.selection.setPlainText("Select a module or tensor in the tree")
            self.net.setPlainText("" if tree is None else self.net.toPlainText())
            return
        net_wanted = tree is not self._net_tree
        self._runner.run(
            self.document.session.guarded(print_values),
            tree,
            path,
            net_wanted,
            on_result=lambda result, t=tree, p=path: self._on_printed(t, p, result),
            on_error=lambda e: self.selection.setPlainText(f"cannot print {path}: {e}"),
        )

    def _on_printed(self, tree: ModuleTree, path: str, result: tuple[Printed, str | None]) -> None:
        if tree is not self.document.tree or path != self.document.selected:
            return
        printed, net = result
        self.printed = printed
        access = tree.node(path).access
        self.heading.setText(f"<b>{access}</b> — as Python prints it")
        self.selection.setPlainText(printed.transcript())
        if net is not None:
            self._net_tree = tree
            self.net.setPlainText(net)

    def _copy_values(self) -> None:
        if self.printed is not None:
            QGuiApplication.clipboard().setText(self.printed.values)


def print_values(tree: ModuleTree, path: str, net_wanted: bool) -> tuple[Printed, str | None]:
    """Worker task: the selection's cells, and `print(net)` when asked for."""
    return print_selection(tree, path), net_text(tree) if net_wanted else None
