"""Under the heatmap, for a training run: the time slider and what follows it.

- the slider over the run's checkpoints (a live model's snapshots and "now"), with the
  previous/next buttons, Play/Pause, the checkpoint's name and step, and the difference
  mode (values, change since the previous checkpoint, change since the first);
- the difference heatmap (difference_view.py) in the difference modes;
- the shown tensor's statistics over the run (step_chart.py);
- the tree's Moved column (movement_column.py), measured when the run opens.

Keys (the Timeline menu): ] or . the next checkpoint, [ or , the previous one, F10 play or
pause, Ctrl+D the difference mode; on the slider, the arrows, Page Up/Down, Home and End.
Everything renders from the Document's `Timeline` state.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.run import Run
from .appearance import MUTED, Look, follow
from .difference_view import DifferenceView
from .movement_column import MovementColumn
from .step_chart import StepChart
from .timeline_state import MODES

KEYS = {
    "next": ("]", "."),
    "previous": ("[", ","),
    "play": ("F10",),
    "mode": ("Ctrl+D",),
}


class TimelinePanel(QWidget):
    """The time slider of a training run, the difference heatmap and the step chart;
    hidden when no run is open. Made by the window with its other panels."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.timeline = self.document.timeline

        self.previous_button = QToolButton(self)
        self.previous_button.setText("◀")
        self.previous_button.setToolTip("The previous checkpoint ([ or ,)")
        self.play_button = QPushButton("Play", self)
        self.play_button.setToolTip("Play through the checkpoints, or pause (F10)")
        self.next_button = QToolButton(self)
        self.next_button.setText("▶")
        self.next_button.setToolTip("The next checkpoint (] or .)")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setPageStep(1)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.position_label = QLabel(self)
        self.position_label.setTextFormat(Qt.TextFormat.RichText)
        self.position_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mode_box = QComboBox(self)
        self.mode_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for key, text in MODES.items():
            self.mode_box.addItem(text, key)
        self.mode_box.setToolTip(
            "Values, or the change since the previous or the first checkpoint as a heatmap "
            "with its own scale (Ctrl+D)"
        )
        self.measure_button = QPushButton("Measure movement", self)
        self.measure_button.setToolTip("Measure how every tensor moved (the tree's Moved column)")
        self.measure_button.setVisible(False)
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for widget in (self.previous_button, self.play_button, self.next_button):
            controls.addWidget(widget)
        controls.addWidget(self.slider, 1)
        self.note = QLabel(self)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.note.setWordWrap(True)
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        where = QHBoxLayout()
        where.setContentsMargins(0, 0, 0, 0)
        where.addWidget(self.position_label)
        where.addWidget(self.note, 1)
        where.addWidget(self.mode_box)
        where.addWidget(self.measure_button)

        self.difference = DifferenceView(self.document, self)
        self.chart = StepChart(self.document, self)
        self.body = QSplitter(Qt.Orientation.Horizontal, self)
        self.body.addWidget(self.difference)
        self.body.addWidget(self.chart)
        self.body.setStretchFactor(0, 1)
        self.body.setStretchFactor(1, 1)
        self.body.setSizes([400, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(controls)
        layout.addLayout(where)
        layout.addWidget(self.body, 1)

        self.movement = MovementColumn(window.tree_panel, self.document, window.progress)
        self.actions = self._make_actions()
        self.previous_button.clicked.connect(lambda: self.timeline.step_by(-1))
        self.next_button.clicked.connect(lambda: self.timeline.step_by(1))
        self.play_button.clicked.connect(self.timeline.toggle_playing)
        self.slider.valueChanged.connect(self.timeline.set_step)
        self.mode_box.currentIndexChanged.connect(
            lambda i: self.timeline.set_mode(self.mode_box.itemData(i))
        )
        self.measure_button.clicked.connect(self.movement.start)
        self.movement.status_changed.connect(self._on_movement_status)
        self.timeline.run_changed.connect(self._on_run_changed)
        self.timeline.step_changed.connect(self._on_step_changed)
        self.timeline.mode_changed.connect(self._on_mode_changed)
        self.timeline.playing_changed.connect(self._on_playing_changed)
        follow(self.apply_look)
        self._on_run_changed(self.timeline.run)  # made after a run may be open

    def apply_look(self, look: Look) -> None:
        self.slider.setMinimumHeight(look.px(24))
        self.slider.setMinimumWidth(look.px(160))
        self.body.setMinimumHeight(look.px(150))  # the change heatmap stays readable

    # -- actions ----------------------------------------------------------------------------

    def _make_actions(self) -> dict[str, QAction]:
        specs = {
            "next": ("Next checkpoint", lambda: self.timeline.step_by(1)),
            "previous": ("Previous checkpoint", lambda: self.timeline.step_by(-1)),
            "play": ("Play / pause the run", self.timeline.toggle_playing),
            "mode": ("Difference mode", self.timeline.cycle_mode),
        }
        menu = _menu_before_help(self.window, "T&imeline")
        actions = {}
        for name, (text, slot) in specs.items():
            action = QAction(text, self.window)
            action.setShortcuts([QKeySequence(k) for k in KEYS[name]])
            action.triggered.connect(lambda _checked=False, s=slot: s())
            tip = f"{text} ({' or '.join(KEYS[name])})"
            action.setToolTip(tip)
            action.setStatusTip(tip)
            action.setEnabled(False)
            menu.addAction(action)
            actions[name] = action
        return actions

    # -- timeline -> panel ------------------------------------------------------------------

    def _on_run_changed(self, run: Run | None) -> None:
        self.setVisible(run is not None)
        for action in self.actions.values():
            action.setEnabled(run is not None)
        if run is None:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.timeline.last)
        self.slider.setValue(self.timeline.step)
        self.slider.blockSignals(False)
        self.slider.setToolTip(
            f"{len(run)} {'snapshots' if run.live else 'checkpoints'}, {run.note}"
        )
        self._on_step_changed(self.timeline.step)
        self._on_movement_status(self.movement.status)

    def _on_step_changed(self, step: int) -> None:
        if self.slider.value() != step:
            self.slider.blockSignals(True)
            self.slider.setValue(step)
            self.slider.blockSignals(False)
        timeline = self.timeline
        self.position_label.setText(f"<b>{html.escape(timeline.label())}</b>")
        self.previous_button.setEnabled(step > 0)
        self.next_button.setEnabled(step < timeline.last)
        self.note.setText(self._note())

    def _note(self) -> str:
        run = self.timeline.run
        if run is None:
            return ""
        parts = [html.escape(run.note)]
        if self.timeline.rewound:
            parts.append("<b>an earlier snapshot</b>: the end of the slider is the model now")
        if run.skipped:
            names = ", ".join(name for name, _ in run.skipped)
            parts.append(
                f"<span style='color:#c0392b'>skipped (unreadable): {html.escape(names)}</span>"
            )
        movement = self.movement.status
        if movement.startswith("cannot"):
            parts.append(f"<span style='color:#c0392b'>{html.escape(movement)}</span>")
        elif movement == "cancelled":
            parts.append("movement not measured (cancelled)")
        return f"<span style='color:{MUTED}'>{' · '.join(parts)}</span>"

    def _on_mode_changed(self, mode: str) -> None:
        if mode != "values":  # the difference heatmap and the chart share the width
            half = max(1, self.body.width() // 2)
            self.body.setSizes([half, half])
        index = self.mode_box.findData(mode)
        if index != self.mode_box.currentIndex():
            self.mode_box.blockSignals(True)
            self.mode_box.setCurrentIndex(index)
            self.mode_box.blockSignals(False)

    def _on_playing_changed(self, playing: bool) -> None:
        self.play_button.setText("Pause" if playing else "Play")

    def _on_movement_status(self, status: str) -> None:
        self.measure_button.setVisible(status == "cancelled" or status.startswith("cannot"))
        self.note.setText(self._note())


def _menu_before_help(window: QMainWindow, title: str) -> QMenu:
    """A new menu of the window, placed before Help."""
    bar = window.menuBar()
    help_action = next((a for a in bar.actions() if a.text().replace("&", "") == "Help"), None)
    menu = QMenu(title, window)
    if help_action is not None:
        bar.insertMenu(help_action, menu)
    else:
        bar.addMenu(menu)
    return menu
