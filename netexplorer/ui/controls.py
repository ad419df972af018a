"""Pass controls: Forward, Backward, Zero grad, Step, Train/Pause, with the loss, optimizer and
input settings, the output of the last forward pass (like the notebook's `net(X)`), and a
live loss curve."""

from __future__ import annotations

import re

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import NetExplorerError
from ..core.inputs import DISTRIBUTIONS, InputSpec
from .appearance import Look, follow
from .document import Document
from .pass_state import Phase, status_html
from .plotting import apply_plot_look, pg

LOSS_LABELS = {
    "sum": "sum",
    "mse": "MSE",
    "cross_entropy": "cross-entropy",
    "model": "the model's own",
}
LOSS_TIPS = {
    "sum": "The sum of the output (the notebook's loss; it has no minimum: training diverges)",
    "mse": "Mean squared error to a fixed random target of the output's shape",
    "cross_entropy": "Cross-entropy to fixed random class labels (classes in the last dimension)",
    "model": "The loss the model computes itself from the labels in the input (a Hugging "
    "Face model given labels)",
}
OPTIMIZER_LABELS = {"sgd": "SGD", "adam": "Adam"}
MAX_CURVE_POINTS = 100_000
MAX_CURVE_SYMBOLS = 200
CURVE_DRAWN_POINTS = 2_000  # the loss curve's points drawn, at most


def is_batch_text(text: str) -> bool:
    """Whether the input field holds a whole input as --input takes it (kinds, names,
    several arguments) rather than one shape (`2, 4`, `2x3x32x32`)."""
    if any(mark in text for mark in (":", "=", "<", ";")):
        return True
    return len(re.sub(r"\s*[,x]\s*", ",", text.strip()).split()) > 1


def peaks(
    xs: list[float], ys: list[float], most: int
) -> tuple[list[float] | np.ndarray, list[float] | np.ndarray]:
    """At most `most` points that draw like all of them: for each of `most // 2 - 1`
    stretches, its lowest and highest y at its first x (a spike stays), then the last
    point; as they are when there are not more than `most`."""
    n = len(xs)
    if n <= most:
        return xs, ys
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    starts = np.linspace(0, n - 1, most // 2 - 1, endpoint=False).astype(np.int64)
    low = np.fmin.reduceat(y[:-1], starts)  # fmin, fmax: a NaN is skipped, not spread
    high = np.fmax.reduceat(y[:-1], starts)
    return (
        np.append(np.repeat(x[starts], 2), x[-1]),
        np.append(np.column_stack([low, high]).ravel(), y[-1]),
    )


def format_output(output: np.ndarray) -> str:
    """A numpy array printed the way `print(tensor)` prints it."""
    text = np.array2string(
        output, precision=4, separator=", ", threshold=200, edgeitems=3, suppress_small=True
    )
    return "tensor(" + text.replace("\n", "\n       ") + ")"


class PassControls(QWidget):
    """The pass buttons and settings; they render the session's `PassState`."""

    settings_changed = Signal(dict)  # loss_name, optimizer_name, lr, record: to remember

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.session = document.session
        self.actions: dict[str, QAction] = {}
        buttons = QHBoxLayout()
        for name, text, key, tip in [
            ("forward", "Forward", "F5", "Run net(X) on the input batch"),
            ("backward", "Backward", "F6", "Forward, then loss.backward(): .grad accumulates"),
            ("zero_grad", "Zero grad", "F7", "Set every .grad back to None"),
            ("step", "Step", "F8", "One optimizer step with the current gradients"),
            ("train", "Train", "F9", "Train on the batch until Pause (zero grad, backward, step)"),
        ]:
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            action.setToolTip(f"{tip} ({key})")
            action.triggered.connect(lambda _checked=False, n=name: self.trigger(n))
            self.actions[name] = action
            button = QPushButton(text, self)
            button.setToolTip(f"{tip} ({key})")
            button.clicked.connect(action.trigger)
            button.setMinimumHeight(34)
            buttons.addWidget(button)
            setattr(self, f"{name}_button", button)
        buttons.addStretch(1)
        self.settings_button = QToolButton(self)
        self.settings_button.setText("Settings")
        self.settings_button.setCheckable(True)
        self.settings_button.setChecked(True)
        self.settings_button.setToolTip("Show or hide the loss, optimizer and input settings")
        self.settings_button.toggled.connect(lambda on: self.settings_box.setVisible(on))
        buttons.addWidget(self.settings_button)

        self.loss = QComboBox(self)
        for key, label in LOSS_LABELS.items():
            self.loss.addItem(label, key)
            self.loss.setItemData(
                self.loss.count() - 1, LOSS_TIPS[key], Qt.ItemDataRole.ToolTipRole
            )
        self.loss.setToolTip("What backward differentiates")
        self.optimizer = QComboBox(self)
        for key, label in OPTIMIZER_LABELS.items():
            self.optimizer.addItem(label, key)
        self.lr = QDoubleSpinBox(self)
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 10.0)
        self.lr.setSingleStep(0.01)
        self.lr.setToolTip("Learning rate of the optimizer step")
        self.record = QCheckBox("Per-use gradients", self)
        self.record.setChecked(True)
        self.record.setToolTip(
            "Record the gradient through each use of a shared parameter (slower training)"
        )
        self.eval_mode = QCheckBox("Eval mode", self)
        self.eval_mode.setToolTip(
            "Run passes in eval mode: dropout off, batch-norm statistics frozen (repeatable "
            "passes); off: training mode"
        )
        self.shape = QLineEdit(self)
        self.shape.setToolTip(
            "Input batch shape, e.g. 2, 4 (batch size first); or the whole input as --input "
            "takes it: tokens:2,8<1000, several for several arguments, name=SPEC for keywords "
            "(input_ids=tokens:2,8<50 labels=@input_ids)"
        )
        self.shape.setMaximumWidth(130)
        self.distribution = QComboBox(self)
        self.distribution.addItems(DISTRIBUTIONS)
        self.distribution.setToolTip("uniform: torch.rand; normal: torch.randn; tokens: randint")
        self.high = QSpinBox(self)
        self.high.setRange(1, 10_000_000)
        self.high.setPrefix("below ")
        self.high.setToolTip("Tokens are drawn from 0 to this value minus one")
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("seed ")
        self.seed.setToolTip("Seed of the input batch and the loss target")

        self.input_error = QLabel(self)  # a shape that cannot be read, next to its field
        self.input_error.setStyleSheet("color: #c0392b;")
        self.input_error.setVisible(False)

        # two short rows: they fit a narrow column at presentation size, where they are
        # folded away behind the Settings button (a lecture needs the heatmaps' space)
        self.settings_box = QWidget(self)
        settings = QVBoxLayout(self.settings_box)
        settings.setContentsMargins(0, 0, 0, 0)
        rows = (
            (QLabel("Loss", self), self.loss, QLabel("Optimizer", self), self.optimizer,
             QLabel("lr", self), self.lr, self.eval_mode),
            (QLabel("Input", self), self.shape, self.distribution, self.high, self.seed,
             self.record, self.input_error),
        )  # fmt: skip
        for widgets in rows:
            row = QHBoxLayout()
            for w in widgets:
                row.addWidget(w)
            row.addStretch(1)
            settings.addLayout(row)

        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setWordWrap(True)
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(200)
        self.output.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)  # rows as printed
        font = self.output.font()
        font.setFamily("monospace")
        self.output.setFont(font)
        self.output.setToolTip("The output of the last forward pass, like the notebook's net(X)")
        self.curve_plot = pg.PlotWidget(self)
        self.curve_plot.showGrid(x=True, y=True, alpha=0.3)
        self.curve_plot.setMenuEnabled(False)
        for name in ("left", "bottom"):
            self.curve_plot.getAxis(name).enableAutoSIPrefix(False)
        self.curve = self.curve_plot.plot([], [], pen=pg.mkPen("#C0392B", width=2), antialias=True)
        # A long run has 100,000 points, drawn as at most CURVE_DRAWN_POINTS (`peaks`:
        # each stretch's lowest and highest, the first and last points kept). Not by
        # pyqtgraph's automatic downsampling: it follows the view while the view follows the
        # drawn points (auto range), and for some counts the first point was dropped and
        # restored in turn: 400 repaints a second, idle or not, training 3-10x slower.
        self.curve_plot.setToolTip("Loss per optimizer step while training")
        bottom = QHBoxLayout()
        bottom.addWidget(self.output, 1)
        bottom.addWidget(self.curve_plot, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.settings_box)
        layout.addWidget(self.status)
        layout.addLayout(bottom, 1)

        self._steps: list[float] = []
        self._losses: list[float] = []
        self.loss.currentIndexChanged.connect(self._on_settings_changed)
        self.optimizer.currentIndexChanged.connect(self._on_optimizer_changed)
        self.lr.valueChanged.connect(self._on_settings_changed)
        self.record.toggled.connect(self._on_settings_changed)
        self.eval_mode.toggled.connect(self._on_eval_mode_changed)
        self.shape.editingFinished.connect(self._on_input_changed)
        self.distribution.currentIndexChanged.connect(self._on_input_changed)
        self.high.valueChanged.connect(self._on_input_changed)
        self.seed.valueChanged.connect(self._on_settings_changed)
        state = self.session.state
        self.session.engine_changed.connect(self._on_engine_changed)
        self.session.losses_added.connect(self._add_points)
        state.phase_changed.connect(self._render)
        state.holdings_changed.connect(self._render)
        state.result_changed.connect(self._on_result_changed)
        self._syncing = False
        self._batch_shown = False  # the field holds a batch of several arguments
        follow(self.apply_look)
        self._on_engine_changed()

    def apply_look(self, look: Look) -> None:
        apply_plot_look(self.curve_plot, look, {"bottom": "optimizer step", "left": "loss"})
        self.curve.setPen(pg.mkPen("#C0392B", width=2 * look.scale))
        for name in self.actions:
            getattr(self, f"{name}_button").setMinimumHeight(look.px(34))
        self._look = look
        self._fit_input_field()
        self.settings_button.setChecked(not look.presenting)

    # -- actions ----------------------------------------------------------------------------

    def trigger(self, name: str) -> None:
        """What a button or its shortcut does."""
        if name == "train":
            if self.session.state.training:
                self.session.stop()
            else:
                self.session.train()
        else:
            self.session.run(name)

    # -- state -> controls ------------------------------------------------------------------

    def _on_engine_changed(self) -> None:
        self._steps, self._losses = [], []
        self.curve.setSymbol("o")
        self.curve.setData([], [])
        # not the last model's ranges: a first point alone keeps the width of the range it
        # lands in, so start from a small one around step 0
        self.curve_plot.setRange(xRange=(-1, 1), yRange=(0, 1), padding=0)
        self.curve_plot.enableAutoRange()
        self.sync_from_engine()
        self._on_result_changed(self.session.state.result)
        self._render()

    def sync_from_engine(self) -> None:
        """The settings' fields show the engine's settings (after it changed them)."""
        engine = self.session.engine
        self.input_error.setVisible(False)
        if engine is not None:
            self._syncing = True
            try:
                config = engine.config
                try:
                    self._show_input(engine.input_spec)
                except NetExplorerError as exc:  # no input to infer: say so by the field
                    self.shape.setText("")
                    self._show_input_error(str(exc))
                own = engine.tree.default_loss == "model"
                item = self.loss.model().item(self.loss.findData("model"))
                item.setEnabled(own)  # only a model that computes a loss has its own
                training = engine.module.training
                eval_on = config.eval_mode if config.eval_mode is not None else not training
                self.eval_mode.setChecked(bool(eval_on))
                self.seed.setValue(config.seed)
                self.loss.setCurrentIndex(self.loss.findData(config.loss_name))
                self.optimizer.setCurrentIndex(self.optimizer.findData(config.optimizer_name))
                self.lr.setValue(config.effective_lr)
                self.record.setChecked(config.record)
            finally:
                self._syncing = False

    def _render(self, *_args: object) -> None:
        """Status text, enabled actions and the Train/Pause button, from the pass state."""
        state = self.session.state
        self.status.setText(status_html(state))
        can_act = state.can_act
        training = state.phase is Phase.TRAINING
        for name, action in self.actions.items():
            enabled = can_act or (name == "train" and training)
            action.setEnabled(enabled)
            getattr(self, f"{name}_button").setEnabled(enabled)
        pause = state.training
        self.actions["train"].setText("Pause" if pause else "Train")
        self.train_button.setText("Pause" if pause else "Train")
        for w in (self.loss, self.optimizer, self.lr, self.record, self.shape, self.eval_mode):
            w.setEnabled(can_act)
        batch = self._batch_shown
        for w in (self.distribution, self.high):  # a batch of several: all in the field
            w.setEnabled(can_act and not batch)
        self.seed.setEnabled(can_act)
        self.distribution.setVisible(not batch)
        self.high.setVisible(not batch and self.distribution.currentText() == "tokens")

    def _on_result_changed(self, result) -> None:
        if result is None:
            self.output.clear()
            return
        if result.output is not None:
            lines = [f"net(X) = {format_output(result.output)}"]
            if result.output_note:
                lines.append(f"# {result.output_note}")
            if result.loss is not None:
                name = LOSS_LABELS.get(result.loss_name, result.loss_name)
                lines.append(f"loss ({name}) = {result.loss:.6g}")
            self.output.setPlainText("\n".join(lines))
        if result.action in ("backward", "step") and result.loss is not None:
            self._add_points([(result.step, result.loss)])

    def _add_points(self, points: list[tuple[int, float]]) -> None:
        for step, loss in points:
            self._steps.append(step)
            self._losses.append(loss)
        if len(self._steps) > MAX_CURVE_POINTS:  # keep long runs light, and their spikes
            steps, losses = peaks(self._steps, self._losses, MAX_CURVE_POINTS // 2)
            self._steps, self._losses = list(steps), list(losses)
        if len(self._steps) > MAX_CURVE_SYMBOLS:  # dots help a few presses, slow a long run
            self.curve.setSymbol(None)
        self.curve.setData(*peaks(self._steps, self._losses, CURVE_DRAWN_POINTS))

    def _show_input(self, spec) -> None:
        """The input in the field: a shape with its kind, or a whole batch as --input
        writes it (several arguments, keywords)."""
        from ..core.inputs import as_batch

        batch = as_batch(spec)
        single = batch.single
        self._batch_shown = single is None
        self._fit_input_field()
        if single is None:
            self.shape.setText(batch.spec_text())
            return
        self.shape.setText(", ".join(str(s) for s in single.shape))
        self.distribution.setCurrentText(single.distribution)
        self.high.setValue(single.high or 10)

    def _fit_input_field(self) -> None:
        """A shape is short; a batch of several arguments needs room."""
        look = getattr(self, "_look", None)
        batch = getattr(self, "_batch_shown", False)
        scale = look.px if look is not None else int
        self.shape.setMaximumWidth(scale(420 if batch else 130))
        self.shape.setMinimumWidth(scale(300) if batch else 0)

    def _show_input_error(self, text: str) -> None:
        self.input_error.setText(text)
        self.input_error.setToolTip(text)
        self.input_error.setVisible(bool(text))

    # -- controls -> session ----------------------------------------------------------------

    def _on_settings_changed(self) -> None:
        if self._syncing or self.session.engine is None:
            return
        remembered = {
            "loss_name": self.loss.currentData(),
            "optimizer_name": self.optimizer.currentData(),
            "lr": self.lr.value(),
            "record": self.record.isChecked(),
        }
        self.session.configure(**remembered, seed=self.seed.value())
        self.settings_changed.emit(remembered)

    def _on_optimizer_changed(self) -> None:
        engine = self.session.engine
        if self._syncing or engine is None:
            return
        self.session.configure(optimizer_name=self.optimizer.currentData(), lr=None)
        self._syncing = True
        self.lr.setValue(engine.effective_lr)  # each optimizer has its own sensible default
        self._syncing = False
        self._on_settings_changed()

    def _on_eval_mode_changed(self, on: bool) -> None:
        if self._syncing or self.session.engine is None:
            return
        self.session.configure(eval_mode=bool(on))

    def _on_input_changed(self) -> None:
        if self._syncing or self.session.engine is None:
            return
        text = self.shape.text().strip()
        if is_batch_text(text):
            self._on_batch_typed(text)
            return
        self._batch_shown = False
        self._fit_input_field()
        self.distribution.setVisible(True)
        self.high.setVisible(self.distribution.currentText() == "tokens")
        try:
            shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
            distribution = self.distribution.currentText()
            high = self.high.value() if distribution == "tokens" else None
            spec = InputSpec(shape, distribution, high)
        except ValueError as exc:
            self._show_input_error(f"input: {exc}" if "shape" in str(exc) else f"shape: {exc}")
            return
        self._show_input_error("")
        self.session.configure(input_spec=spec)

    def _on_batch_typed(self, text: str) -> None:
        """The whole input typed as --input takes it."""
        from ..core.input_parse import InputSyntaxError, parse_input

        try:
            batch = parse_input(text)
        except InputSyntaxError as exc:
            self._show_input_error(str(exc))
            return
        self._show_input_error("")
        self.session.configure(input_spec=batch.single or batch)
        self._syncing = True
        try:
            self._show_input(batch)
        finally:
            self._syncing = False
        self._render()
