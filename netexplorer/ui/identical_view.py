"""Tools > Find identical tensors: hash every tensor of the open model in a worker (with
progress and Cancel in the status bar) and list the groups of byte-identical tensors.

A group of tensors with varied values is a probable tie (safetensors stores a tied embedding
twice); a group of constant tensors (fresh zero biases, unit norms) is listed apart, since
equal content there says nothing about sharing. Clicking a path selects it in the tree.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.identical import IdenticalGroup, iter_identical_tensors
from ..core.text import shape_text
from ..core.tree import ModuleTree
from .appearance import MUTED
from .document import Document
from .opening import display_name
from .progress import ProgressBar
from .workers import TaskRunner

PATH_ROLE = Qt.ItemDataRole.UserRole
TIE_COLOR = QColor("#1f6f3f")
CONSTANT_COLOR = QColor("#666666")
TIE_TIP = (
    "Equal values, varied: most likely one tensor stored twice (a tie that the file format "
    "could not keep)"
)
CONSTANT_TIP = "Every element has the same value: equal content says nothing about sharing"


def _groups(n: int) -> str:
    return f"{n} group" + ("" if n == 1 else "s")


class IdenticalTensorsDialog(QDialog):
    """The groups of identical tensors of the open model (a window beside the main one)."""

    def __init__(self, document: Document, progress: ProgressBar, parent: QWidget) -> None:
        super().__init__(parent)
        self.document = document
        self.progress = progress
        self.setWindowTitle("Identical tensors")
        self.resize(640, 460)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.list = QTreeWidget(self)
        self.list.setHeaderLabels(["Tensors", "Shape", "Dtype"])
        self.list.setRootIsDecorated(True)
        self.list.setUniformRowHeights(True)
        self.list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.list.currentItemChanged.connect(self._on_current_changed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)

        self.runner = TaskRunner(self)
        self.groups: list[IdenticalGroup] | None = None
        self.tree: ModuleTree | None = None  # the tree the groups belong to
        document.tree_changed.connect(self._on_tree_changed)

    def find(self) -> None:
        """Hash the open model's tensors in a worker, then list the groups."""
        tree = self.document.tree
        if tree is None:
            return
        self.tree = tree
        self.groups = None
        self.list.clear()
        self.summary.setText(f"Hashing every tensor of <b>{display_name(tree.source)}</b>…")
        self.show()
        self.raise_()
        self.runner.run(
            self.document.session.guarded(iter_identical_tensors),  # no pass changes them
            tree,
            on_result=self._on_found,
            on_progress=lambda p: task.report(*p),
            on_error=lambda e: self.summary.setText(f"Could not hash the tensors: {e}"),
        )
        task = self.progress.track(
            self.runner,
            f"Finding identical tensors in {display_name(tree.source)}…",
            cancel=lambda: self.summary.setText(
                "Cancelled: run Tools ▸ Find identical tensors again"
            ),
        )

    @property
    def busy(self) -> bool:
        return self.runner.pending

    def _on_found(self, groups: list[IdenticalGroup]) -> None:
        self.groups = groups
        self.list.clear()
        tree = self.tree
        ties = [g for g in groups if g.probable_tie]
        constant = [g for g in groups if g.constant]
        if not groups:
            self.summary.setText(
                "No two tensors hold the same values: nothing here is a hidden tie."
            )
            return
        parts = []
        if ties:
            parts.append(
                f"<b>{_groups(len(ties))}</b> of identical tensors with varied values: "
                "<span style='color:#1f6f3f'>probable ties</span>, one tensor saved under "
                "several names."
            )
        if constant:
            parts.append(
                f"<b>{_groups(len(constant))}</b> of constant tensors: "
                f"<span style='color:{MUTED}'>all values equal (fresh zero biases, unit norms), "
                "likely a coincidence</span>."
            )
        self.summary.setText(" ".join(parts) + " Click a path to select it.")
        for group in groups:
            kind = "probable tie" if group.probable_tie else "constant tensors"
            item = QTreeWidgetItem(
                [
                    f"{kind} · {len(group.paths)} tensors",
                    shape_text(group.shape, "pretty"),
                    group.dtype,
                ]
            )
            color = TIE_COLOR if group.probable_tie else CONSTANT_COLOR
            item.setForeground(0, QBrush(color))
            font = item.font(0)
            font.setBold(group.probable_tie)
            item.setFont(0, font)
            item.setToolTip(0, TIE_TIP if group.probable_tie else CONSTANT_TIP)
            for path in group.paths:
                known = tree is not None and tree.tie_group(path) is not None
                child = QTreeWidgetItem([path + ("   (tied in the file)" if known else "")])
                child.setData(0, PATH_ROLE, path)
                child.setToolTip(0, f"Select {path} in the tree")
                item.addChild(child)
            self.list.addTopLevelItem(item)
            item.setExpanded(group.probable_tie)
        self.list.resizeColumnToContents(1)

    def _on_current_changed(self, item: QTreeWidgetItem | None, _previous) -> None:
        path = None if item is None else item.data(0, PATH_ROLE)
        if path and self.tree is self.document.tree:
            self.document.select(path)

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        if tree is self.tree:
            return
        self.runner.cancel()
        self.tree = None
        self.groups = None
        self.list.clear()
        self.summary.setText("Another model is open: run Tools ▸ Find identical tensors again.")
