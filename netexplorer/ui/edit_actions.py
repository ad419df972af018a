"""The Edit menu of a live model: Undo (Ctrl+Z) and Initialise, the chapter's schemes on the
selection (a tensor, or every parameter of a selected module). Values are typed into the
heatmap's cells (double-click) or the details panel. A checkpoint without code is
read-only: these are disabled."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from ..core.passes.init_names import INIT_LABELS
from ..core.save import save_weights
from ..core.tree import ModuleNode, TensorNode
from .workers import TaskRunner

if TYPE_CHECKING:
    from .main_window import MainWindow


class EditActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.document.session
        menu = window.menuBar().addMenu("&Edit")
        self.menu = menu
        self.undo = window.make_action(
            "Undo", QKeySequence.StandardKey.Undo, self.session.undo,
            "Put back what the last edit or initialisation changed (Ctrl+Z)",
        )  # fmt: skip
        menu.addAction(self.undo)
        menu.addSeparator()
        init_menu = menu.addMenu("Initialise selection")
        init_menu.setToolTipsVisible(True)
        self.inits: dict[str, QAction] = {}
        for name, label in INIT_LABELS.items():
            action = window.make_action(
                label, "", lambda _c=False, n=name: self.initialise(n),
                f"nn.init on the selection: {label}",
            )  # fmt: skip
            init_menu.addAction(action)
            self.inits[name] = action
        self.save = window.make_action(
            "Save weights as…", "Ctrl+Shift+W", self.ask_save,
            "Save the live model's weights (after edits or training) as a new checkpoint",
        )  # fmt: skip
        menu.addSeparator()
        menu.addAction(self.save)
        self._saver = TaskRunner(self)
        state = self.session.state
        state.phase_changed.connect(self._sync)
        state.holdings_changed.connect(self._sync)
        window.document.selection_changed.connect(self._sync)
        self._sync()

    def selected_paths(self) -> list[str]:
        """The tensors an initialisation applies to: the selected one, or a selected
        module's parameters."""
        node = self.window.document.selected_node()
        if isinstance(node, TensorNode):
            return [node.path]
        if isinstance(node, ModuleNode):
            return [t.path for t in node.walk_tensors() if t.kind == "parameter"]
        return []

    def initialise(self, scheme: str) -> None:
        value = 1.0
        if scheme == "constant":
            value, ok = QInputDialog.getDouble(
                self.window, "Initialise: constant", "Value of every weight:", 1.0, -1e9, 1e9, 4
            )
            if not ok:
                return
        paths = self.selected_paths()
        if paths:
            self.session.initialise(paths, scheme, value)

    def ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save weights as", "weights.safetensors",
            "safetensors (*.safetensors);;PyTorch (*.pt *.pth)",
        )  # fmt: skip
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> bool:
        """Save the weights to `path` in a worker (no pass changes them meanwhile). The file
        the model was opened from is replaced only after an explicit yes. Whether it
        started."""
        tree = self.window.document.tree
        if tree is None or tree.module is None:
            return False
        opened = tree.source if os.path.exists(tree.source) else None
        if opened is not None and os.path.exists(path) and os.path.samefile(opened, path):
            answer = QMessageBox.question(
                self.window,
                "Replace the file you opened?",
                f"{path} is the file this model was opened from. Replace it with the weights "
                "as they are now? (It cannot be undone.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        bar = self.window.statusBar()
        self._saver.run(
            self.session.guarded(save_weights),
            tree.module,
            path,
            on_result=lambda what: bar.showMessage(f"Saved {what} to {path}", 8000),
            on_error=lambda e: QMessageBox.warning(self.window, "Cannot save weights", str(e)),
        )
        return True

    def _sync(self, *_args: object) -> None:
        state = self.session.state
        live = self.session.engine is not None
        undo = state.holdings.undo
        self.undo.setEnabled(live and state.can_act and bool(undo))
        self.undo.setText(f"Undo {undo}" if undo else "Undo")
        self.save.setEnabled(live)
        can_init = live and state.can_act and bool(self.selected_paths())
        for action in self.inits.values():
            action.setEnabled(can_init)
