"""The main window: examples gallery, or tree | heatmap | details for an open source.

The window shows before its plotting panels exist: the heatmap, details, graph and pass
controls import pyqtgraph (0.35-0.5 s) and build a dozen plots (0.2 s), so `build_panels`
makes them a moment after the window has shown (or at once, when something asks for one).
The tree of a file opened from the command line is on screen in about half the time.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QByteArray, QElapsedTimer, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.collector import freeze_once
from ..core.errors import NetExplorerError
from ..core.lesson import Lesson, LessonError, load_lesson, save_lesson
from ..core.sources import OpenOptions, open_source
from ..core.tree import ModuleTree
from .appearance import appearance
from .checkpoint_actions import CheckpointActions
from .document import Document
from .edit_actions import EditActions
from .gallery import GalleryPage
from .hf_actions import HuggingFaceActions
from .icons import app_icon
from .lesson_panel import LessonPanel, LessonRunner
from .progress import ProgressBar
from .settings import Settings, pass_defaults
from .tree_view import TreePanel
from .view_actions import ViewActions
from .workers import TaskRunner, run_until

if TYPE_CHECKING:
    from .controls import PassControls
    from .graph import GraphPanel
    from .heatmap_panel import HeatmapPanel
    from .stats_panel import DetailsPanel
    from .timeline import TimelinePanel
    from .values_view import ValuesPanel


# A tree of this many tensors selects its first a turn of the event loop after it is set:
# setting a million-tensor tree (9 ms) and showing its first tensor (18 ms, heatmap and
# details) each come with a repaint, and together they had made a 40-66 ms stall.
SELECT_LATER_FROM = 100_000


class Panels(NamedTuple):
    """The panels made after the window shows (they import pyqtgraph)."""

    heatmap: HeatmapPanel
    graph: GraphPanel
    values: ValuesPanel
    details: DetailsPanel
    controls: PassControls
    timeline: TimelinePanel  # a training run's time slider, under the heatmap


GALLERY, EXPLORER = range(2)
# keys that act without a menu action (listed in Help ▸ Keyboard shortcuts)
MORE_KEYS = {
    "Esc (in the tree or its filter)": "Clear the filter",
    "Up / Down, Left / Right (in the tree)": "Move in the tree, fold and unfold modules",
    "* (in the tree)": "Expand everything below the row (Esc stops it)",
    "Double-click a heatmap cell": "Type a new value (live models)",
    "F, + / - (in the graph)": "Fit the graph, zoom in and out",
    "Esc (while work shows progress)": "Cancel that work",
    "Arrows, Page Up / Down, Home / End (on the time slider)": "Move through a run's checkpoints",
}
DEFAULT_SIZE = (1640, 980)
APP_NAME = "netexplorer"
PANELS_AFTER_SHOW_MS = 100  # time for the first paint of the tree (or the gallery)
LOADING_PANELS = "Loading the heatmap, details and graph views…"


class MainWindow(QMainWindow):
    def __init__(self, *, seed: int = 0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.seed = seed
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.document = Document(self)

        self.gallery = GalleryPage(self)
        self.gallery.open_requested.connect(self.open_source)
        self.tree_panel = TreePanel(self.document, self)
        self.centre = QTabWidget(self)  # Heatmap and Graph tabs come with build_panels
        self.centre_split = QSplitter(Qt.Orientation.Vertical, self)
        self.centre_split.addWidget(self.centre)
        self.details_column = QWidget(self)  # the details panel goes here (build_panels)
        QVBoxLayout(self.details_column).setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.tree_panel)
        self.lessons = LessonRunner(self)  # a lesson's steps (File ▸ Open a lesson file)
        self.lesson_panel = LessonPanel(self.lessons, self)
        centre_column = QWidget(self)
        column = QVBoxLayout(centre_column)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.lesson_panel)
        column.addWidget(self.centre_split, 1)
        self.splitter.addWidget(centre_column)
        self.splitter.addWidget(self.details_column)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([600, 640, 400])
        self._panels: Panels | None = None

        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.gallery)
        self.pages.addWidget(self.splitter)
        self.setCentralWidget(self.pages)

        self.progress = ProgressBar(self)  # any work over half a second, with Cancel
        self.statusBar().addPermanentWidget(self.progress)
        self.source_label = QLabel("", self)
        self.statusBar().addPermanentWidget(self.source_label)

        self.settings = Settings.load()
        self.document.session.defaults = pass_defaults(self.settings)
        self.view_actions = ViewActions(self)  # text size, presentation, theme, colour map
        self._make_actions()
        self.checkpoint_actions = CheckpointActions(self)  # Open…, drops, Compare, Tools
        self.hf_actions = HuggingFaceActions(self)  # architecture from config, Make live
        self._place_on_screen()

    # -- actions ----------------------------------------------------------------------------

    def _make_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.gallery_action = self.make_action(
            "Examples gallery", "Ctrl+E", self.show_gallery, "Back to the built-in examples"
        )
        file_menu.addAction(self.gallery_action)
        self.export_action = self.make_action(
            "Export heatmap…",
            "Ctrl+Shift+S",
            self.export_heatmap,
            "Save the heatmap as PNG or SVG, for slides",
        )
        file_menu.addAction(self.export_action)
        self.export_graph_action = self.make_action(
            "Export graph…",
            "Ctrl+Shift+G",
            lambda: self.graph_panel.export_with_dialog(),
            "Save the graph as PNG or SVG, for slides",
        )
        file_menu.addAction(self.export_graph_action)
        file_menu.addAction(
            self.make_action(
                "Export for slides…", "Ctrl+Shift+E", self.export_for_slides,
                "The heatmap, the graph, the loss curve or the whole window as PNG or SVG, "
                "at a chosen size and scale",
            )
        )  # fmt: skip
        file_menu.addSeparator()
        file_menu.addAction(
            self.make_action(
                "Save lesson…", "Ctrl+Shift+L", self.save_lesson,
                "Save this setup (source, seed, input, loss, selection, view, look) as a "
                "lesson file; File ▸ Open opens it again",
            )
        )  # fmt: skip
        file_menu.addSeparator()
        file_menu.addAction(
            self.make_action("Quit", QKeySequence.StandardKey.Quit, self.close, "Close netexplorer")
        )
        self.edit_actions = EditActions(self)  # Undo, Initialise
        self.pass_menu = menu.addMenu("&Passes")  # filled by build_panels
        view_menu = menu.addMenu("&View")
        for text, keys, panel, tip in (
            ("Heatmap", ("Ctrl+1",), "heatmap_panel", "The selected tensor as heatmaps"),
            ("Graph", ("Ctrl+2", "Ctrl+G"), "graph_panel", "Module calls, data flow, tie links"),
            ("Values", ("Ctrl+3",), "values_panel", "The selection as Python prints it"),
        ):
            action = self.make_action(
                text, keys[0], lambda _c=False, p=panel: self.show_panel(p), tip
            )
            action.setShortcuts([QKeySequence(k) for k in keys])
            view_menu.addAction(action)
        view_menu.addSeparator()
        self.view_actions.fill(view_menu)
        view_menu.addSeparator()
        view_menu.addAction(
            self.make_action(
                "Find in tree", QKeySequence.StandardKey.Find, self.tree_panel.focus_filter,
                "Filter the tree by name, path or type (Esc clears the filter)",
            )
        )  # fmt: skip
        self.next_tensor = self.make_action(
            "Next tensor", "Alt+Down", lambda: self.step_tensor(1),
            "Select the next parameter or buffer (state_dict order)",
        )  # fmt: skip
        self.previous_tensor = self.make_action(
            "Previous tensor", "Alt+Up", lambda: self.step_tensor(-1),
            "Select the previous parameter or buffer",
        )  # fmt: skip
        view_menu.addAction(self.next_tensor)
        view_menu.addAction(self.previous_tensor)
        view_menu.addSeparator()
        self.next_step = self.make_action(
            "Next lesson step", "PgDown", self.lessons.next, "The lesson's next step"
        )
        self.next_step.setShortcuts([QKeySequence("PgDown"), QKeySequence("Alt+Right")])
        self.previous_step = self.make_action(
            "Previous lesson step", "PgUp", self.lessons.back, "The lesson's previous step"
        )
        self.previous_step.setShortcuts([QKeySequence("PgUp"), QKeySequence("Alt+Left")])
        for action in (self.next_step, self.previous_step):
            action.setEnabled(False)
            view_menu.addAction(action)
        self.lessons.step_changed.connect(self._sync_lesson_actions)
        self.lessons.lesson_changed.connect(self._sync_lesson_actions)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.make_action("Keyboard shortcuts", "F1", self.show_shortcuts))

    # -- plotting panels --------------------------------------------------------------------

    @property
    def panels_built(self) -> bool:
        return self._panels is not None

    @property
    def heatmap_panel(self) -> HeatmapPanel:
        return self.build_panels().heatmap

    @property
    def details(self) -> DetailsPanel:
        return self.build_panels().details

    @property
    def graph_panel(self) -> GraphPanel:
        return self.build_panels().graph

    @property
    def values_panel(self) -> ValuesPanel:
        return self.build_panels().values

    @property
    def controls(self) -> PassControls:
        return self.build_panels().controls

    @property
    def timeline_panel(self) -> TimelinePanel:
        return self.build_panels().timeline

    def build_panels(self) -> Panels:
        """Make the heatmap, graph, values, details and pass controls (once); each catches
        up with what the document already shows."""
        if self._panels is not None:
            return self._panels
        from .controls import PassControls
        from .graph import GraphPanel
        from .heatmap_panel import HeatmapPanel
        from .stats_panel import DetailsPanel
        from .timeline import TimelinePanel
        from .values_view import ValuesPanel

        panels = Panels(
            heatmap=HeatmapPanel(self.document, self),
            graph=GraphPanel(self.document, self),
            values=ValuesPanel(self.document, self),
            details=DetailsPanel(self.document, self),
            controls=PassControls(self.document, self),
            timeline=TimelinePanel(self),
        )
        self._panels = panels
        current = self.centre.currentIndex()
        for i, (widget, title, tip) in enumerate(
            (
                (
                    panels.heatmap,
                    "Heatmap",
                    "The selected tensor, its gradient and each use (Ctrl+1)",
                ),
                (panels.graph, "Graph", "Module calls, data flow and tie links (Ctrl+2)"),
                (
                    panels.values,
                    "Values",
                    "The selection as Python prints it, and print(net) (Ctrl+3)",
                ),
            )
        ):
            self.centre.insertTab(i, widget, title)
            self.centre.setTabToolTip(i, tip)
        self.centre.setCurrentIndex(current + 3 if current >= 0 else 0)
        controls, details = panels.controls, panels.details
        self.centre_split.addWidget(controls)
        self.centre_split.addWidget(panels.timeline)
        self.centre_split.setStretchFactor(0, 3)
        self.centre_split.setStretchFactor(1, 1)
        self.centre_split.setStretchFactor(2, 2)
        self.centre_split.setSizes([680, 260, 330])
        self.details_column.layout().addWidget(details)
        if self.statusBar().currentMessage() == LOADING_PANELS:
            self.statusBar().clearMessage()
        before = self.pass_menu.actions()[0] if self.pass_menu.actions() else None
        for action in controls.actions.values():  # above Make live and its separator
            self.pass_menu.insertAction(before, action)
        if before is not None:
            self.pass_menu.insertSeparator(before)
        self.checkpoint_actions.watch_statistics(details)
        controls.settings_changed.connect(self._remember_pass_settings)
        tree = self.document.tree
        controls.setVisible(tree is not None and tree.is_live)
        freeze_once("panels")
        return self._panels

    def _place_on_screen(self) -> None:
        """Where the user left the window; the first time, as large as the design wants
        (1640x980) within the screen's free area, centred."""
        if self.settings.geometry and self.restoreGeometry(QByteArray(self.settings.geometry)):
            return
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(*DEFAULT_SIZE)
            return
        area = screen.availableGeometry()
        width = min(DEFAULT_SIZE[0], int(area.width() * 0.94))
        height = min(DEFAULT_SIZE[1], int(area.height() * 0.94))
        self.resize(width, height)
        self.move(area.center().x() - width // 2, area.center().y() - height // 2)

    def _remember_pass_settings(self, values: dict) -> None:
        for name, value in values.items():
            setattr(self.settings, name, value)
        self.document.session.defaults = pass_defaults(self.settings)
        self.settings.save()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._panels is None:
            self.statusBar().showMessage(LOADING_PANELS)
            QTimer.singleShot(PANELS_AFTER_SHOW_MS, self, self.build_panels)  # not once closed

    def make_action(self, text: str, shortcut, slot, tip: str = "") -> QAction:
        """An action of this window, with its shortcut and tooltips."""
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        return action

    # -- lessons ----------------------------------------------------------------------------

    def open_lesson(self, path: str) -> bool:
        """Start the lesson in `path`; a file that is not a usable lesson gets a dialog
        saying why, and what is open stays. Whether it started."""
        try:
            lesson = load_lesson(path)
        except LessonError as exc:
            QMessageBox.warning(self, "Cannot open lesson", str(exc))
            return False
        self.lessons.start(lesson)
        return True

    def current_lesson(self) -> Lesson:
        """The setup on screen as a lesson (the open lesson's steps kept)."""
        tree = self.document.tree
        if tree is None:
            raise LessonError("nothing is open: open an example or a checkpoint first")
        engine = self.document.session.engine
        look = appearance().look
        lesson = Lesson(
            title=self.lessons.lesson.title
            if self.lessons.lesson
            else f"netexplorer: {tree.source}",
            source=tree.source,
            seed=self.seed,
            select=self.document.selected,
            view=self.centre.tabText(self.centre.currentIndex()).lower() or None,
            look={"present": look.presenting, "scale": look.scale, "theme": look.theme},
        )
        if lesson.view not in ("heatmap", "graph", "values"):
            lesson.view = None
        if engine is not None:
            config = engine.config
            lesson.input = config.input_spec
            lesson.loss = config.loss_name
            lesson.optimizer = config.optimizer_name
            lesson.lr = config.lr
            lesson.seed = config.seed
        if self.lessons.lesson is not None:
            lesson.steps = list(self.lessons.lesson.steps)
        return lesson

    def save_lesson(self, path: str | None = None) -> None:
        """Save the setup as a lesson (asks where when `path` is not given)."""
        try:
            lesson = self.current_lesson()
        except LessonError as exc:
            QMessageBox.information(self, "Save lesson", str(exc))
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save lesson", "lesson.json", "Lessons (*.json)"
            )
            if not path:
                return
        if os.path.exists(lesson.source):  # a file beside the lesson travels with it
            lesson.source = os.path.relpath(lesson.source, os.path.dirname(os.path.abspath(path)))
        try:
            save_lesson(lesson, path)
        except OSError as exc:
            QMessageBox.warning(
                self, "Cannot save lesson", f"Cannot write {path}: {exc.strerror or exc}"
            )
            return
        self.statusBar().showMessage(f"Saved the lesson {path}", 5000)

    def _sync_lesson_actions(self, *_args: object) -> None:
        runner = self.lessons
        self.next_step.setEnabled(runner.lesson is not None and not runner.at_end)
        self.previous_step.setEnabled(runner.lesson is not None and runner.index > 0)

    def shortcuts(self) -> list[tuple[str, str]]:
        """(keys, what they do) for every shortcut of the window, and the keys that work
        without an action (Help ▸ Keyboard shortcuts)."""
        rows: dict[str, str] = {}
        for action in self.findChildren(QAction):
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
            keys = [k for k in keys if k]
            if keys:
                rows[" or ".join(keys)] = action.text().replace("&", "")
        rows.update(MORE_KEYS)
        return list(rows.items())

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td><b>{html.escape(keys)}</b>&nbsp;&nbsp;</td><td>{html.escape(text)}</td></tr>"
            for keys, text in self.shortcuts()
        )
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table>")

    def step_tensor(self, step: int) -> None:
        """Select the next (1) or previous (-1) tensor, from the selection or the start."""
        tree = self.document.tree
        if tree is None or not tree.tensors:
            return
        paths = list(tree.tensors)
        shown = self.document.shown_tensor()
        if shown is None:
            target = paths[0] if step > 0 else paths[-1]
        else:
            here = paths.index(shown.path)
            target = paths[max(0, min(len(paths) - 1, here + step))]
        self.document.select(target)

    def export_for_slides(self) -> None:
        from .slides_export import ExportDialog

        ExportDialog(self).exec()

    def export_heatmap(self, path: str | None = None) -> None:
        """Save the centre heatmap; asks for a file name when none is given."""
        if self.heatmap_panel.loaded is None:
            self.statusBar().showMessage("Select a tensor first: there is no heatmap to save", 5000)
            return
        if not path:
            suggested = self.heatmap_panel.loaded.path.replace(" ", "_") + ".png"
            path, _ = QFileDialog.getSaveFileName(
                self, "Export heatmap", suggested, "PNG image (*.png);;SVG drawing (*.svg)"
            )
            if not path:
                return
        from .export import export_view

        try:
            export_view(self.heatmap_panel.view, path)
        except NetExplorerError as exc:
            QMessageBox.warning(self, "Cannot export", str(exc))
            return
        self.statusBar().showMessage(f"Saved {path}", 5000)

    # -- opening ----------------------------------------------------------------------------

    def show_gallery(self) -> None:
        self.pages.setCurrentIndex(GALLERY)

    def open_source(self, spec: str) -> None:
        """Open a source in a worker (progress, the trust question for pickles that run
        code); on failure the open model stays and a dialog says why."""
        self.checkpoint_actions.open(spec)

    def open_source_now(self, spec: str) -> None:
        """Open on the GUI thread (the command line, before the window shows)."""
        self.set_tree(open_source(spec, OpenOptions(seed=self.seed)))

    def set_tree(self, tree: ModuleTree) -> None:
        self.statusBar().clearMessage()
        self.document.set_tree(tree, seed=self.seed)
        if self._panels is not None:
            self.controls.setVisible(tree.is_live)
        self.setWindowTitle(f"{tree.source or 'module'} — {APP_NAME}")
        counted = f"{tree.total_parameters:,} parameters"
        if tree.has_unknown_kind:  # a checkpoint that does not say parameter or buffer
            counted = f"{tree.total_tensor_elements:,} elements in tensors of unknown kind"
            if tree.total_parameters:
                counted = f"{tree.total_parameters:,} parameters, " + counted
        ties = len(tree.tie_groups)
        first = next(iter(tree.tensors.values()), None)
        on_meta = first is not None and getattr(first.handle, "device", "") == "meta"
        self.source_label.setText(
            f"{tree.source} · {counted}"
            + (f" · {ties} tie group{'s' if ties != 1 else ''}" if ties else "")
            + (" · on the meta device: structure only, no values" if on_meta else "")
        )
        self.pages.setCurrentIndex(EXPLORER)
        first = next(iter(tree.tensors), "")
        if len(tree.tensors) < SELECT_LATER_FROM:
            self.document.select(first)
            self.tree_panel.view.setFocus()  # arrow keys walk the tree; shortcuts reach it
        else:  # the tree shown, then its first tensor: two turns of the event loop, not one
            QTimer.singleShot(0, self, lambda: self._select_first(tree, first))

    def _select_first(self, tree: ModuleTree, path: str) -> None:
        """Select the first tensor of a big tree set a moment ago (unless another tree was
        set, or something selected, meanwhile), then give the tree the keyboard (focus
        first would make the view select its first row, the root, itself)."""
        if self.document.tree is not tree:
            return
        if self.document.selected is None:
            self.document.select(path)
        self.tree_panel.view.setFocus()

    def show_panel(self, name: str) -> None:
        """Bring a centre tab to the front (`heatmap_panel`, `graph_panel`, `values_panel`)."""
        self.pages.setCurrentIndex(EXPLORER)
        self.centre.setCurrentWidget(getattr(self, name))

    def set_view(self, view: str) -> None:
        """--view: which part the window opens on."""
        self.pages.setCurrentIndex(EXPLORER)
        self.build_panels()
        if view == "tree":
            self.splitter.setSizes([900, 480, 260])
        elif view == "graph":  # a graph is wide: most of the window
            self.splitter.setSizes([330, 980, 330])
        for i in range(self.centre.count()):
            if self.centre.tabText(i).lower() == view:
                self.centre.setCurrentIndex(i)

    # -- lifecycle --------------------------------------------------------------------------

    def runners(self) -> list[TaskRunner]:
        return self.findChildren(TaskRunner)

    def wait_idle(self, timeout_ms: int = 10_000, settle_ms: int = 150) -> bool:
        """Run the event loop until no task has run for `settle_ms` (work is sometimes
        started a moment after what triggers it) or `timeout_ms` passed (screenshots,
        tests)."""
        self.build_panels()
        idle = QElapsedTimer()

        def settled() -> bool:
            busy = self.graph_panel.populating or self.tree_panel.busy
            if busy or any(r.busy for r in self.runners()):
                idle.invalidate()
            elif not idle.isValid():
                idle.start()
            return idle.isValid() and idle.elapsed() >= settle_ms

        result = run_until(settled, timeout_ms)
        QApplication.processEvents()
        return result

    def closeEvent(self, event) -> None:
        self.settings.geometry = bytes(self.saveGeometry().data())
        self.settings.window_state = bytes(self.saveState().data())
        self.settings.save()
        self.document.shutdown()  # a training loop stops between two steps
        for runner in self.runners():
            runner.cancel()
        super().closeEvent(event)
