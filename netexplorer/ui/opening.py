"""Opening sources in the window: a worker with progress, the trust question, errors.

`SourceOpener.open(spec, on_opened)` runs `open_source` off the GUI thread and reports the
reader's progress to the status bar. When the file is a pickle that would run code
(`UntrustedPickleError`), it asks, in a dialog whose default answer is Cancel, whether the
user trusts the file, naming what the file wants to run; only an explicit yes opens it again
with `OpenOptions(trust=True)`. Any other failure is shown in a dialog; either way the model
that was open stays open.

`RecentSources` keeps the last files and folders opened, in QSettings.
"""

from __future__ import annotations

import html
import os
import re
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from ..core.errors import NetExplorerError, UntrustedPickleError
from ..core.sources import OpenOptions, open_source
from ..core.tree import ModuleTree
from . import settings as app_config
from .progress import ProgressBar
from .workers import TaskRunner

RECENT_KEY = "recent/sources"
FOLDER_KEY = "recent/folder"
MAX_RECENT = 10

# Globals a pickle names to run commands or arbitrary code outright (not to rebuild objects)
RUNS_COMMANDS = re.compile(
    r"^(posix|nt|os)\.(system|popen|exec\w*|spawn\w*)$|^subprocess\.|^builtins\.(exec|eval|"
    r"compile|__import__|open)$|^(runpy|pty|webbrowser|socket|shutil)\.|^importlib\."
)


def display_name(spec: str) -> str:
    """A file or folder's own name (the full path is in tooltips); other specs as given."""
    if os.path.exists(spec):
        return os.path.basename(os.path.normpath(spec)) or spec
    return spec


class RecentSources:
    """The files and folders opened last, newest first; missing ones are dropped on read."""

    def paths(self) -> list[str]:
        settings = app_config.app_settings()
        stored = settings.value(RECENT_KEY, []) or []
        if isinstance(stored, str):  # QSettings returns a one-item list as a plain string
            stored = [stored]
        existing = [p for p in stored if os.path.exists(p)]
        if existing != stored:
            settings.setValue(RECENT_KEY, existing)
        return existing

    def add(self, path: str) -> None:
        path = os.path.abspath(path)
        paths = [path, *(p for p in self.paths() if p != path)][:MAX_RECENT]
        settings = app_config.app_settings()
        settings.setValue(RECENT_KEY, paths)
        settings.setValue(FOLDER_KEY, os.path.dirname(os.path.normpath(path)))

    def clear(self) -> None:
        app_config.app_settings().remove(RECENT_KEY)

    @staticmethod
    def last_folder() -> str:
        """Where the last file came from (the open dialogs start there)."""
        folder = app_config.app_settings().value(FOLDER_KEY, "") or ""
        return folder if os.path.isdir(folder) else os.getcwd()


def code_it_runs(error: UntrustedPickleError) -> list[str]:
    """What the refused file wants to run: the Python globals its pickle names, or
    TorchScript's compiled code."""
    if error.globals_needed:
        return list(error.globals_needed)
    if error.compiled_code:
        return ["compiled TorchScript code (its methods run when the archive loads)"]
    return []


def ask_trust(parent: QWidget | None, spec: str, error: UntrustedPickleError) -> bool:
    """Ask whether to open a file whose loading runs code; True only on an explicit yes."""
    wanted = code_it_runs(error)
    listed = ", ".join(f"<code>{html.escape(name)}</code>" for name in wanted)
    commands = [name for name in wanted if RUNS_COMMANDS.search(name)]
    details = [
        f"To load it, Python would have to run: {listed}." if listed else html.escape(str(error)),
        "Loading a pickle calls whatever the file names, with your permissions: a file from "
        "someone else can read, change or delete your files, or install software.",
    ]
    if commands:
        names = ", ".join(f"<code>{html.escape(n)}</code>" for n in commands)
        details.append(
            f"<span style='color:#b00020'><b>{names} runs commands or arbitrary code: a "
            "checkpoint has no need for it. This file is very likely malicious.</b></span>"
        )
    details.append(
        "Open it only if you made it yourself or trust where it came from. Formats that "
        "hold only data (safetensors, a plain state_dict) never need this."
    )
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("This file can run code")
    box.setTextFormat(Qt.TextFormat.RichText)
    name = html.escape(display_name(spec))
    box.setText(f"<b>{name}</b> can run code on this computer when it is opened.")
    box.setInformativeText("<br><br>".join(details))
    box.setDetailedText(str(error))
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Yes).setText("Trust it and run its code")
    box.button(QMessageBox.StandardButton.Cancel).setText("Cancel (don't open)")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)  # Enter must not run code
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Yes


def open_for_window(spec: str, options: OpenOptions) -> ModuleTree:
    """Worker task: open `spec`, made ready to show (`ready_for_window`)."""
    return ready_for_window(open_source(spec, options))


def ready_for_window(tree: ModuleTree) -> ModuleTree:
    """Worker side: what the window would do first on the GUI thread when it shows `tree`,
    done here. For a live model, what its pass engine needs (`passes.prepare`: a walk of
    its modules); for a checkpoint, the modules the window asks about it (whether it can be
    made live, whether a config names its architecture), imported the first time here
    (10 ms of imports stalled the window as a million-tensor tree was set)."""
    if tree.module is not None:
        from ..core.passes import prepare  # torch is imported: the model is live

        prepare(tree)
    else:
        from ..core import hf_library, launch  # noqa: F401
        from ..core.sources import hf_architecture  # noqa: F401
    return tree


class SourceOpener(QObject):
    """Opens sources in a worker, one at a time (a newer request supersedes an older one).

    `on_opened(tree)` runs on the GUI thread once a source is open; failures end in a
    dialog (or the trust question) and never touch what the window shows."""

    # (request, fraction, text): emitted by the reader in the worker, delivered queued
    progress_reported = Signal(int, float, str)

    def __init__(self, window: QMainWindow, progress: ProgressBar, verb: str = "Opening") -> None:
        super().__init__(window)
        self.window = window
        self.progress = progress
        self.verb = verb
        self.runner = TaskRunner(self)
        self._request = 0
        self._task = None
        self.progress_reported.connect(self._on_progress_reported)

    @property
    def busy(self) -> bool:
        return self.runner.pending

    def open(
        self,
        spec: str,
        on_opened: Callable[[ModuleTree], None],
        trust: bool = False,
    ) -> None:
        """Open `spec` in a worker; `trust` only after the user said yes (or --trust)."""
        self._request += 1
        request = self._request
        stop = threading.Event()

        def report(fraction: float, text: str) -> None:  # runs in the worker thread
            self.progress_reported.emit(request, fraction, text)

        options = OpenOptions(
            trust=trust,
            seed=getattr(self.window, "seed", 0),
            progress=report,
            cancelled=stop.is_set,
        )
        self._status(f"{self.verb} {spec}…")
        self.runner.run(
            open_for_window,
            spec,
            options,
            on_result=lambda tree: self._on_opened(tree, on_opened),
            on_error=lambda error: self._on_failed(spec, error, on_opened, trust),
        )
        self._task = self.progress.track(
            self.runner,
            f"{self.verb} {display_name(spec)}…",
            cancel=lambda: self._on_cancelled(spec, stop),
        )

    def _on_progress_reported(self, request: int, fraction: float, text: str) -> None:
        if request == self._request and self._task is not None:
            self._task.report(fraction, text)

    def _on_opened(self, tree: ModuleTree, on_opened: Callable[[ModuleTree], None]) -> None:
        self._status("")
        on_opened(tree)

    def _on_cancelled(self, spec: str, stop: threading.Event) -> None:
        stop.set()  # readers that check `options.cancelled` stop early
        self._status(f"Stopped {self.verb.lower()} {spec}", 5000)

    def _on_failed(
        self,
        spec: str,
        error: BaseException,
        on_opened: Callable[[ModuleTree], None],
        trusted: bool,
    ) -> None:
        if isinstance(error, UntrustedPickleError) and not trusted:
            self._status(f"{display_name(spec)} can run code: waiting for your answer")
            if ask_trust(self.window, spec, error):
                self.open(spec, on_opened, trust=True)
            else:
                self._status(f"Did not open {spec}: it would run code from the file", 8000)
            return
        self._status(f"Could not open {spec}", 8000)
        if not isinstance(error, NetExplorerError):  # a bug, not the user's mistake
            error = RuntimeError(f"{type(error).__name__}: {error}")
        QMessageBox.warning(self.window, "Cannot open", f"Cannot open {spec}:\n\n{error}")

    def _status(self, text: str, timeout_ms: int = 0) -> None:
        bar = self.window.statusBar()
        if text:
            bar.showMessage(text, timeout_ms)
        else:
            bar.clearMessage()
