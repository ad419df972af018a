"""Hugging Face checkpoints in the window: the architecture from config.json arrives from a
worker and refines the tree the headers gave (which is on screen first, without waiting for
transformers' import), and Make live (Passes ▸ Make live, Ctrl+L, or the button in the status
bar) loads the folder with transformers' own loader into a live model, in a worker too.
Without transformers, the status bar says in one line what installing it adds."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QPushButton

from ..core.errors import NetExplorerError
from ..core.tree import ModuleTree
from .workers import TaskRunner

MAKE_LIVE_TIP = (
    "Load this folder with transformers' from_pretrained into a live model: Forward, "
    "Backward, Step and Train on it, with the model's own inputs and loss"
)


class HuggingFaceActions(QObject):
    """Architecture refinement and Make live for a MainWindow (`document`, `set_tree`,
    `progress`, `pass_menu`, `statusBar()`)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.architecture_runner = TaskRunner(self)
        self._select_after: str | None = None  # --select of a path the architecture brings
        self.live_runner = TaskRunner(self)
        self.make_live_action = QAction("Make live", window)
        self.make_live_action.setShortcut(QKeySequence("Ctrl+L"))
        self.make_live_action.setToolTip(f"{MAKE_LIVE_TIP} (Ctrl+L)")
        self.make_live_action.setStatusTip(MAKE_LIVE_TIP)
        self.make_live_action.triggered.connect(lambda _checked=False: self.make_live())
        window.pass_menu.addAction(self.make_live_action)
        window.addAction(self.make_live_action)  # its key works before the menu is filled
        self.button = QPushButton("Make live", window)
        self.button.setToolTip(f"{MAKE_LIVE_TIP} (Ctrl+L)")
        self.button.clicked.connect(self.make_live_action.trigger)
        window.statusBar().addPermanentWidget(self.button)
        self.document.tree_changed.connect(self._on_tree_changed)
        self._on_tree_changed(self.document.tree)

    # -- state ------------------------------------------------------------------------------

    def can_make_live(self, tree: ModuleTree | None = None) -> bool:
        tree = self.document.tree if tree is None else tree
        if tree is None or tree.is_live:
            return False
        from ..core.hf_library import transformers_installed
        from ..core.launch import live_possible

        return live_possible(tree) and transformers_installed()

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        possible = self.can_make_live(tree) and not self.live_runner.busy
        self.make_live_action.setEnabled(possible)
        self.button.setVisible(possible)
        if tree is None or tree.is_live:
            return
        from ..core.sources.hf_architecture import architecture_applies

        if architecture_applies(tree):
            self.refine(tree)

    # -- the architecture -------------------------------------------------------------------

    def refine(self, tree: ModuleTree) -> None:
        """Build the architecture of `tree` in a worker; swap it in if `tree` is still shown."""
        from ..core.hf_library import WHAT_IT_ADDS, transformers_installed
        from ..core.sources.hf_architecture import refine_with_architecture

        if not transformers_installed():
            refine_with_architecture(tree)  # only notes why (no import)
            self._status(f"Architecture from the file's headers only: {WHAT_IT_ADDS}")
            return
        self._status("Building the architecture from config.json…")
        self.architecture_runner.run(
            refine_with_architecture,
            tree,
            on_result=lambda refined: self._on_refined(tree, refined),
            on_error=lambda error: self._status(f"No architecture: {error}", 8000),
        )

    def _on_refined(self, headers: ModuleTree, refined: ModuleTree) -> None:
        if self.document.tree is not headers:
            return  # another source was opened meanwhile
        if refined is headers:  # it could not be built: the note says why
            self._select_after = None
            note = headers.metadata.get("architecture", {}).get("note", "")
            self._status(f"Architecture {note}" if note else "", 8000)
            return
        name = refined.metadata.get("architecture", {}).get("class", "the model")
        restored = len(refined.metadata.get("architecture", {}).get("restored_ties", []))
        text = f"Architecture: {name} from config.json"
        if restored:
            text += f"; {restored} tied tensors the file stored once are restored"
        self._swap(refined)
        if self._select_after is not None:
            path, self._select_after = self._select_after, None
            if path in refined.tensors or path in refined.modules:
                self.document.select(path)
            else:
                self._status(f"No module or tensor at {path!r} in {name} either", 8000)
                return
        self._status(text, 8000)

    def select_when_refined(self, path: str) -> None:
        """Select `path` once the architecture has arrived (it may add it: a tied tensor the
        file stored once)."""
        self._select_after = path

    # -- Make live --------------------------------------------------------------------------

    def make_live(self) -> bool:
        """Load the open Hugging Face folder with transformers in a worker; False when the
        open tree cannot be made live (or a load runs)."""
        tree = self.document.tree
        if tree is None or not self.can_make_live(tree) or self.live_runner.busy:
            return False
        from ..core.hf_live import load_live

        source = tree.source
        self.make_live_action.setEnabled(False)
        self.button.setEnabled(False)
        self._status(f"Loading {source} with transformers…")
        self.live_runner.run(
            load_live,
            source,
            on_result=lambda live: self._on_live(tree, live),
            on_error=lambda error: self._on_live_failed(source, error),
        )
        progress = getattr(self.window, "progress", None)
        if progress is not None:
            progress.track(self.live_runner, f"Making {source} live…")
        return True

    def _on_live(self, before: ModuleTree, live: ModuleTree) -> None:
        self.button.setEnabled(True)
        if self.document.tree is not before:
            self._on_tree_changed(self.document.tree)
            return
        self._swap(live)
        loss = "its own loss" if live.default_loss == "model" else "the sum of its output"
        self._status(f"Live: {type(live.module).__name__}, passes use {loss}", 8000)

    def _on_live_failed(self, source: str, error: BaseException) -> None:
        self.button.setEnabled(True)
        self._on_tree_changed(self.document.tree)
        text = str(error) if isinstance(error, NetExplorerError) else repr(error)
        self._status(f"Could not make {source} live", 8000)
        QMessageBox.warning(self.window, "Cannot make live", text)

    # -- helpers ----------------------------------------------------------------------------

    def _swap(self, tree: ModuleTree) -> None:
        """Show `tree` in place of the open one, keeping the selection where it exists."""
        selected = self.document.selected
        self.window.set_tree(tree)
        if selected and (selected in tree.tensors or selected in tree.modules):
            self.document.select(selected)

    def _status(self, text: str, timeout_ms: int = 0) -> None:
        bar = self.window.statusBar()
        if text:
            bar.showMessage(text, timeout_ms)
        else:
            bar.clearMessage()

    def shutdown(self) -> None:
        self.architecture_runner.cancel()
        self.live_runner.cancel()
