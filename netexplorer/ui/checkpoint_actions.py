"""What the window does with checkpoints (DESIGN.md, user 2): File ▸ Open…, Open folder…,
Open recent, dropping files or folders on the window, File ▸ Compare with…, and Tools ▸ Find
identical tensors. Every opening goes through `SourceOpener` (a worker, progress, the trust
question, errors in a dialog while the open model stays).

`CheckpointActions(window)` adds its actions to the window's menus and owns the Compare tab
and the identical-tensors dialog; the window keeps it as `window.checkpoint_actions`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QUrl
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from ..core.lesson import is_lesson_file
from ..core.sources.files import file_dialog_filters
from ..core.tree import ModuleTree
from .identical_view import IdenticalTensorsDialog
from .opening import RecentSources, SourceOpener, display_name
from .progress import ProgressBar

if TYPE_CHECKING:
    from .compare_view import CompareView
    from .stats_panel import DetailsPanel

DROP_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


def dropped_paths(urls: list[QUrl]) -> list[str]:
    """The local files and folders among dropped URLs."""
    return [u.toLocalFile() for u in urls if u.isLocalFile() and os.path.exists(u.toLocalFile())]


class CheckpointActions(QObject):
    """File ▸ Open/Open folder/Open recent/Compare with, drag and drop, Tools ▸ Find
    identical tensors, for a MainWindow (which has `document`, `progress`, `centre`,
    `set_tree`)."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.progress: ProgressBar = window.progress
        self.recent = RecentSources()
        self.opener = SourceOpener(window, self.progress)
        self.compare_opener = SourceOpener(window, self.progress, verb="Opening for comparison")
        self._compare_view: CompareView | None = None  # a centre tab from the first comparison
        self.identical = IdenticalTensorsDialog(self.document, self.progress, window)
        self._make_actions()
        # Qt passes a drag that a widget ignores (a heatmap, the tree) up to its parents,
        # so files dropped anywhere on the window reach this filter
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        self.document.tree_changed.connect(self._on_tree_changed)
        self._on_tree_changed(self.document.tree)
        self._stats_task = None

    def watch_statistics(self, details: DetailsPanel) -> None:
        """Statistics of huge tensors (the details panel's) report to the same bar."""
        details.stats_runner.busy_changed.connect(self._on_statistics_busy)
        details.stats_progress.connect(self._on_statistics_progress)

    @property
    def compare_view(self) -> CompareView:
        if self._compare_view is None:
            from .compare_view import CompareView  # pyqtgraph: not before it is needed

            self._compare_view = CompareView(self.document, self.progress, self.window)
            self._compare_view.setVisible(False)
        return self._compare_view

    # -- actions ----------------------------------------------------------------------------

    def _make_actions(self) -> None:
        w = self.window
        self.open_action = self._action(
            "Open…", QKeySequence.StandardKey.Open, self.ask_open, "Open a checkpoint file"
        )
        self.open_folder_action = self._action(
            "Open folder…",
            "Ctrl+Shift+O",
            self.ask_open_folder,
            "Open a Hugging Face model folder (config.json and (sharded) weights)",
        )
        self.recent_menu = QMenu("Open recent", w)
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        self.clear_recent_action = self._action(
            "Clear recent", "", self.clear_recent, "Forget the recently opened files"
        )
        self.compare_action = self._action(
            "Compare with…",
            "Ctrl+Shift+D",
            self.ask_compare,
            "Compare the open checkpoint (A) with a second one (B): changed, added and removed "
            "tensors, B − A as a heatmap",
        )
        self.identical_action = self._action(
            "Find identical tensors",
            "Ctrl+Shift+I",
            self.find_identical,
            "Hash every tensor and list byte-identical ones: probable ties that the file "
            "format could not keep (safetensors)",
        )
        file_menu = self._menu("&File")
        first = file_menu.actions()[0] if file_menu.actions() else None
        for action in (self.open_action, self.open_folder_action):
            file_menu.insertAction(first, action)
        file_menu.insertMenu(first, self.recent_menu)
        file_menu.insertSeparator(first)
        file_menu.insertAction(first, self.compare_action)
        file_menu.insertSeparator(first)
        tools = self._menu("&Tools")
        tools.addAction(self.identical_action)
        self.fill_recent_menu()

    def _action(self, text: str, shortcut, slot, tip: str) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        action.setToolTip(tip)
        action.setStatusTip(tip)
        return action

    def _menu(self, title: str) -> QMenu:
        """The window's menu titled `title`, or a new one before Help."""
        bar = self.window.menuBar()
        help_action = None
        for action in bar.actions():
            if action.menu() is not None and action.text() == title:
                return action.menu()
            if action.text().replace("&", "") == "Help":
                help_action = action
        menu = QMenu(title, self.window)
        if help_action is not None:
            bar.insertMenu(help_action, menu)
        else:
            bar.addMenu(menu)
        return menu

    def _on_tree_changed(self, tree: ModuleTree | None) -> None:
        has_tree = tree is not None
        self.compare_action.setEnabled(has_tree)
        self.identical_action.setEnabled(has_tree)

    # -- opening ----------------------------------------------------------------------------

    def open(self, spec: str) -> None:
        """Open a source in a worker; the open model stays until the new one is ready, and
        stays for good if opening fails or the user does not trust the file. A lesson file
        starts the lesson."""
        if is_lesson_file(spec):
            if self.window.open_lesson(spec):
                self.recent.add(spec)
            return
        self.opener.open(spec, lambda tree: self._on_opened(spec, tree))

    def _on_opened(self, spec: str, tree: ModuleTree) -> None:
        self.window.set_tree(tree)
        if os.path.exists(spec):
            self.recent.add(spec)

    def ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Open checkpoint", RecentSources.last_folder(), self._filters()
        )
        if path:
            self.open(path)

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self.window, "Open model folder (Hugging Face)", RecentSources.last_folder()
        )
        if path:
            self.open(path)

    @staticmethod
    def _filters() -> str:
        checkpoints, *formats = file_dialog_filters()
        everything = checkpoints.replace(")", " *.json)").replace(
            "Checkpoints", "Checkpoints and lessons"
        )
        return ";;".join([everything, *formats[:-1], "Lessons (*.json)", formats[-1]])

    # -- recent -----------------------------------------------------------------------------

    def fill_recent_menu(self) -> None:
        """(Re)build Open recent from the settings, dropping files that no longer exist."""
        self.recent_menu.clear()
        paths = self.recent.paths()
        for i, path in enumerate(paths):
            label = display_name(path).replace("&", "&&")
            action = self.recent_menu.addAction(f"&{(i + 1) % 10}  {label}" if i < 10 else label)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open(p))
        if not paths:
            empty = self.recent_menu.addAction("No recent files")
            empty.setEnabled(False)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction(self.clear_recent_action)
        self.clear_recent_action.setEnabled(bool(paths))

    def clear_recent(self) -> None:
        self.recent.clear()
        self.fill_recent_menu()

    # -- drag and drop ----------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() not in DROP_EVENTS:
            return False
        mime = event.mimeData()
        paths = dropped_paths(mime.urls()) if mime is not None and mime.hasUrls() else []
        if not paths:
            return False  # not files: leave it to the widget (text into a field)
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.open(paths[0])
            if len(paths) > 1:
                self.window.statusBar().showMessage(
                    f"Opening {display_name(paths[0])}, the first of {len(paths)} dropped items",
                    8000,
                )
        return True

    # -- comparing --------------------------------------------------------------------------

    def ask_compare(self) -> None:
        if self.document.tree is None:
            return
        path, _ = QFileDialog.getOpenFileName(
            self.window,
            "Compare the open checkpoint with…",
            RecentSources.last_folder(),
            self._filters(),
        )
        if path:
            self.compare_with(path)

    def compare_with(self, spec: str) -> None:
        """Open `spec` as B (with the trust question if needed) and compare the open tree
        (A) with it in the Compare tab."""
        self.compare_opener.open(spec, self.compare_with_tree)

    def compare_with_tree(self, b: ModuleTree) -> None:
        """Compare the open tree (A) with `b`; the Compare tab shows the result."""
        a = self.document.tree
        if a is None:
            return
        centre = self.window.centre
        if centre.indexOf(self.compare_view) < 0:
            centre.addTab(self.compare_view, "Compare")
            centre.setTabToolTip(
                centre.indexOf(self.compare_view), "The open checkpoint (A) against B"
            )
        centre.setCurrentWidget(self.compare_view)
        self.compare_view.compare(a, b)

    # -- statistics of huge tensors (computed by the details panel) -------------------------

    def _on_statistics_busy(self, busy: bool) -> None:
        if not busy:
            return
        details = self.window.details
        path = self.document.selected or ""
        self._stats_task = self.progress.track(
            details.stats_runner, f"Statistics of {path}…", cancel=details.cancel_stats
        )

    def _on_statistics_progress(self, fraction: float) -> None:
        if self._stats_task is not None:
            self._stats_task.report(fraction)

    # -- identical tensors ------------------------------------------------------------------

    def find_identical(self) -> None:
        self.identical.find()
