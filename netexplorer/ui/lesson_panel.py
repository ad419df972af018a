"""Lessons in the window: the lesson's setup applied, its steps one after another with a
short text for the class, Back and Next (PageUp / PageDown: a presenter's clicker sends
those), and File ▸ Save lesson… for the current setup.

`LessonRunner` applies a lesson to the window: the look, the source (opened as File ▸ Open
opens, in a worker), seed, input, loss and optimizer, then a step's selection, view and
action. A step whose source differs from what is open opens it first and goes on once it is
open. `LessonPanel` is the strip above the centre tabs that shows the step."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import NetExplorerError
from ..core.lesson import PASS_ACTIONS, Lesson, LessonStep, parse_set_action
from ..core.tree import ModuleNode, ModuleTree, TensorNode
from .appearance import Look, appearance, follow

if TYPE_CHECKING:
    from .main_window import MainWindow


class LessonRunner(QObject):
    """The open lesson and its current step."""

    step_changed = Signal(int)  # index of the step shown (-1: the setup, no steps)
    lesson_changed = Signal(object)  # Lesson | None

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.lesson: Lesson | None = None
        self.index = -1
        self._pending: LessonStep | None = None  # waits for its source to open
        self._source: str | None = None  # what the lesson opened last

    # -- starting and moving ----------------------------------------------------------------

    def start(self, lesson: Lesson) -> None:
        """Apply the lesson's setup (look, seed, source) and show its first step."""
        self.lesson = lesson
        self.index = -1
        self._source = None
        look = lesson.look
        actions = self.window.view_actions
        if "theme" in look:
            actions.set_theme(look["theme"])
        if look.get("present"):
            if "scale" in look:
                self.window.settings.presentation_scale = look["scale"]
            actions.set_presenting(True)
        elif "scale" in look:
            appearance().update(scale=look["scale"])
        self.window.seed = lesson.seed
        self.lesson_changed.emit(lesson)
        if lesson.steps:
            self.go(0)
        else:  # a saved setup: what it opens, selects and shows
            self.step_changed.emit(-1)
            self._apply(LessonStep(title=lesson.title, select=lesson.select, view=lesson.view))

    def stop(self) -> None:
        self.lesson = None
        self.index = -1
        self._pending = None
        self.lesson_changed.emit(None)

    def go(self, index: int) -> None:
        """Show step `index` (its source, selection and view), and run its action."""
        lesson = self.lesson
        if lesson is None or not 0 <= index < len(lesson.steps):
            return
        self.index = index
        self.step_changed.emit(index)
        self._apply(lesson.steps[index])

    def next(self) -> None:
        self.go(self.index + 1)

    def back(self) -> None:
        self.go(self.index - 1)

    @property
    def at_end(self) -> bool:
        return self.lesson is None or self.index >= len(self.lesson.steps) - 1

    # -- applying ---------------------------------------------------------------------------

    def _apply(self, step: LessonStep) -> None:
        """Open the step's source if another one is open (then go on), else show it. A step
        without a source stays on the one the lesson opened last."""
        lesson = self.lesson
        if lesson is None:
            return
        wanted = lesson.resolve(step.source) or self._source or lesson.resolve(lesson.source)
        tree = self.window.document.tree
        if wanted is not None and (tree is None or tree.source != wanted):
            self._pending = step
            self.window.checkpoint_actions.opener.open(wanted, self._on_opened)
            return
        self._pending = None
        self._show(step)

    def _on_opened(self, tree: ModuleTree) -> None:
        self.window.set_tree(tree)
        self._source = tree.source
        self._configure()
        step, self._pending = self._pending, None
        if step is not None:
            self._show(step)

    def _configure(self) -> None:
        """The lesson's input, loss and optimizer, on the model just opened."""
        lesson, session = self.lesson, self.window.document.session
        if lesson is None or session.engine is None:
            return
        settings = {
            "input_spec": lesson.input,
            "loss_name": lesson.loss,
            "optimizer_name": lesson.optimizer,
            "lr": lesson.lr,
            "seed": lesson.seed,
        }
        try:
            session.configure(**{k: v for k, v in settings.items() if v is not None})
        except NetExplorerError as exc:
            self.window.statusBar().showMessage(f"Lesson settings not applied: {exc}", 8000)
        if self.window.panels_built:
            self.window.controls.sync_from_engine()

    def _show(self, step: LessonStep) -> None:
        window = self.window
        if step.select is not None:
            try:
                window.document.select(step.select)
            except NetExplorerError as exc:
                window.statusBar().showMessage(f"Lesson: {exc}", 8000)
        if step.view is not None:
            window.set_view(step.view)
        if step.action is not None:
            self._run(step.action)

    def _run(self, action: str) -> None:
        session = self.window.document.session
        if action in PASS_ACTIONS:
            session.run(action)
        elif action.startswith("init:"):
            session.initialise(self._selected_parameters(), action.removeprefix("init:"))
        elif action.startswith("set:"):
            path, index, value = parse_set_action(action)
            session.edit_value(path, index, value)

    def _selected_parameters(self) -> list[str]:
        node = self.window.document.selected_node()
        if isinstance(node, TensorNode):
            return [node.path]
        if isinstance(node, ModuleNode):
            return [t.path for t in node.walk_tensors() if t.kind == "parameter"]
        return []


class LessonPanel(QFrame):
    """The current step: its title, its text, Back and Next."""

    def __init__(self, runner: LessonRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.heading = QLabel(self)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.back_button = QPushButton("◀ Back", self)
        self.back_button.setToolTip("The previous step (PageUp)")
        self.back_button.clicked.connect(runner.back)
        self.next_button = QPushButton("Next ▶", self)
        self.next_button.setToolTip("The next step (PageDown)")
        self.next_button.clicked.connect(runner.next)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Close the lesson (the model stays open)")
        self.close_button.clicked.connect(runner.stop)
        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.back_button)
        top.addWidget(self.next_button)
        top.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(top)
        layout.addWidget(self.text)
        runner.step_changed.connect(self._render)
        runner.lesson_changed.connect(lambda lesson: self.setVisible(lesson is not None))
        self.setVisible(False)
        follow(self.apply_look)

    def apply_look(self, look: Look) -> None:
        self.setStyleSheet(f"LessonPanel {{ background: {look.colors.panel}; }}")
        font = self.text.font()
        font.setPointSizeF(self.font().pointSizeF() * 1.15)
        self.text.setFont(font)

    def _render(self, index: int) -> None:
        lesson = self.runner.lesson
        if lesson is None:
            return
        steps = lesson.steps
        if index < 0:
            self.heading.setText(f"<b>{html.escape(lesson.title)}</b>")
            self.text.setText("")
        else:
            step = steps[index]
            self.heading.setText(
                f"<b>{html.escape(lesson.title)}</b> · step {index + 1} of {len(steps)}: "
                f"<b>{html.escape(step.title)}</b>"
            )
            self.text.setText(step.text)
        self.back_button.setEnabled(index > 0)
        self.next_button.setEnabled(0 <= index < len(steps) - 1)
