"""`netexplorer.show(net)` from a notebook or a script.

In IPython or Jupyter, `show` turns on Qt's event loop in the shell (as napari does, with the
shell's `enable_gui("qt")`) when it is not on yet, and returns at once: the window stays live
beside the notebook while cells run. In a plain script there is no other event loop, so it
blocks until the window is closed.

While the window is open, the user's own code changes the model: an optimizer step in their
training loop, `net[2].weight.data[0, 0] = 100`, a backward pass. `ModelWatcher` notices
without being told: a global optimizer step hook, and a check of the model's fingerprint
(every parameter's version counter and gradient, and the shown tensor's values) a few times
a second while the window's own passes are idle; what changed is read again.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

if TYPE_CHECKING:
    from ..core.tree import ModuleTree
    from .document import Document
    from .main_window import MainWindow

CHECK_MS = 250  # how often the watcher looks for changes made outside the window


def ipython_shell() -> Any:
    """The running IPython shell, or None (IPython not imported, or not running)."""
    module = sys.modules.get("IPython")
    if module is None or not hasattr(module, "get_ipython"):
        return None
    return module.get_ipython()


def enable_qt_loop(shell: Any) -> str:
    """Turn on the shell's Qt event loop; what was done, in a few words."""
    if getattr(shell, "active_eventloop", None) in ("qt", "qt5", "qt6"):
        return "the shell's Qt event loop was already running"
    try:
        shell.enable_gui("qt")
    except Exception as exc:  # a shell without GUI support (a bare InteractiveShell)
        return f"the shell cannot run Qt's event loop ({type(exc).__name__}); use %gui qt"
    return "the shell's Qt event loop was turned on"


class ModelWatcher(QObject):
    """Reads the model again when something outside the window changed it."""

    def __init__(self, document: Document, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._baseline: tuple | None = None
        self.changes = 0  # changes noticed (for tests and the status bar)
        self._timer = QTimer(self, interval=CHECK_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()
        session = document.session
        # what the window reads is the new baseline: its own passes change the model too
        session.tensors_read.connect(self._rebase)
        session.state.result_changed.connect(self._rebase)
        session.busy_changed.connect(self._rebase)
        document.tree_changed.connect(self._rebase)
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._hook = register_optimizer_step_post_hook(self._on_step)  # every optimizer
        self.destroyed.connect(self._hook.remove)

    def _rebase(self, *_args: object) -> None:
        """Remember the model as the window has just read it (nothing, while a pass of the
        window's own runs: the next check after it takes the baseline)."""
        self._baseline = self._fingerprint()

    def _fingerprint(self) -> tuple | None:
        session = self.document.session
        engine = session.engine
        if engine is None or session.busy or not session.state.can_act:
            return None
        shown = self.document.shown_tensor()
        paths = [shown.path] if shown is not None and shown.handle.has_values else []
        return engine.fingerprint(paths)

    def _on_step(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        """Any optimizer stepped (on any thread): look soon, on the GUI thread."""
        QTimer.singleShot(0, self, self.check)

    def check(self) -> None:
        """Compare the model with what the window last read; read it again if it changed."""
        fingerprint = self._fingerprint()
        previous, self._baseline = self._baseline, fingerprint
        if fingerprint is None or previous is None or fingerprint == previous:
            return
        self.changes += 1
        engine = self.document.session.engine
        engine.changed_outside(grads_changed=fingerprint[1] != previous[1])
        self.document.session.read()


class Explorer:
    """What `netexplorer.show` returns: the window on a live model, and what a notebook
    does with it."""

    def __init__(self, window: MainWindow, watcher: ModelWatcher) -> None:
        self.window = window
        self.watcher = watcher

    @property
    def tree(self) -> ModuleTree | None:
        """The module tree shown (paths, access expressions, ties)."""
        return self.window.document.tree

    def select(self, path: str) -> None:
        """Select a module or tensor by path ("2.weight"); its heatmap and values show."""
        self.window.document.select(path)

    def refresh(self) -> None:
        """Read the model again now (it is also noticed on its own, within a moment)."""
        self.watcher.check()
        self.window.document.notify_values_changed()

    def close(self) -> None:
        """Close the window (the model is left as it is)."""
        self.window.close()

    def __repr__(self) -> str:
        tree = self.tree
        source = tree.source if tree is not None else "nothing"
        state = "open" if self.window.isVisible() else "closed"
        return f"<netexplorer window on {source}, {state}>"
