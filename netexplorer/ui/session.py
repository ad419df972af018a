"""Passes from buttons: runs the core PassEngine off the GUI thread.

One action runs at a time (forward, backward, zero grad, step, or a training loop). Results
are plain data (`PassResult`) delivered on the GUI thread. A training loop yields to the GUI
at most ~30 times a second however fast it steps (the worker batches the losses of the steps
in between), and Pause stops it between two steps.

While an action runs, nothing on the GUI thread touches the module: what the window shows of
the watched parameter comes with the results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.errors import NetExplorerError
from ..core.inputs import InputSpec
from ..core.tree import ModuleTree
from .workers import TaskRunner

if TYPE_CHECKING:  # torch loads when a live model is opened, not when the window starts
    from ..core.passes import PassEngine, PassResult

FRAME_SECONDS = 1 / 30  # what an eye can follow
GUI_SHARE_FACTOR = 3  # frames at least 3x as far apart as the GUI takes to draw one


@dataclass
class TrainingFrame:
    """What a training loop sends to the GUI per frame: the latest result and the losses
    of every step since the previous frame."""

    result: PassResult
    losses: list[tuple[int, float]] = field(default_factory=list)


class FramePacer:
    """Back-pressure between a training worker and the GUI: a new frame is sent only once
    the GUI has drawn the previous one, and frames are spaced so that drawing takes at most
    about a third of the time (the rest is left to training, which needs the GIL too)."""

    def __init__(self, frame_seconds: float) -> None:
        self.frame_seconds = frame_seconds
        self.interval = frame_seconds
        self._drawn = threading.Event()
        self._drawn.set()
        self._sent_at = 0.0

    def may_send(self, now: float) -> bool:
        return self._drawn.is_set() and now - self._sent_at >= self.interval

    def sent(self, now: float) -> None:
        self._drawn.clear()
        self._sent_at = now

    def drawn(self) -> None:
        """Called on the GUI thread once a frame is on screen."""
        gui_seconds = time.monotonic() - self._sent_at
        self.interval = max(self.frame_seconds, GUI_SHARE_FACTOR * gui_seconds)
        self._drawn.set()


def train_frames(
    engine: PassEngine, stop: threading.Event, steps: int | None, pacer: FramePacer
) -> Iterator[TrainingFrame]:
    """Worker task: train until stopped, sending a frame when the GUI is ready for one."""
    losses: list[tuple[int, float]] = []
    result = None
    for result in engine.train(steps, cancelled=stop.is_set):
        if result.loss is not None:
            losses.append((result.step, result.loss))
        now = time.monotonic()
        if pacer.may_send(now):
            pacer.sent(now)
            yield TrainingFrame(result, losses)
            losses = []
    if result is not None and losses:
        yield TrainingFrame(result, losses)
    return result


class PassSession(QObject):
    """The pass engine of the open tree, if the tree is live."""

    result_ready = Signal(object)  # PassResult
    losses_added = Signal(object)  # list[(step, loss)] from a training loop
    failed = Signal(str)
    busy_changed = Signal(bool)
    training_changed = Signal(bool)
    engine_changed = Signal()
    _warmed = False  # torch's lazy imports are done once per process

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine: PassEngine | None = None
        self.unavailable_reason = "nothing is open"
        self._runner = TaskRunner(self)
        self._runner.busy_changed.connect(self.busy_changed)
        self._warm_runner = TaskRunner(self)
        self._stop = threading.Event()
        self._pacer = FramePacer(FRAME_SECONDS)
        self._captured = True
        self._training = False
        self.last_result: PassResult | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._runner.busy

    @property
    def training(self) -> bool:
        return self._training

    def set_tree(self, tree: ModuleTree | None, seed: int = 0) -> None:
        self.stop()
        self._runner.cancel()
        self.engine = None
        self.last_result = None
        if tree is None:
            self.unavailable_reason = "nothing is open"
        elif not tree.is_live:
            self.unavailable_reason = (
                "a checkpoint without code has no forward pass: open it with "
                "--model pkg.module:factory --weights FILE to make it live"
            )
        else:
            from ..core.passes import PassEngine, warm_up

            try:
                self.engine = PassEngine(tree, seed=seed)
                self.engine.capture_activations = True
                # the sum of the output (the CLI's loss) has no minimum: training on it
                # diverges, so the window starts on a loss that training can lower
                self.engine.loss_name = "mse"
                if not PassSession._warmed:
                    PassSession._warmed = True
                    self._warm_runner.run(warm_up, on_result=lambda _r: None)
                self.unavailable_reason = ""
            except NetExplorerError as exc:
                self.unavailable_reason = str(exc)
        self.engine_changed.emit()

    # -- actions ----------------------------------------------------------------------------

    def run(self, action: str) -> bool:
        """Start forward / backward / zero_grad / step in a worker. False if busy."""
        if self.engine is None or self.busy:
            return False
        self._runner.run(
            getattr(self.engine, action), on_result=self._on_result, on_error=self._on_error
        )
        return True

    def train(self, steps: int | None = None) -> bool:
        """Train until Pause (or `steps` steps)."""
        if self.engine is None or self.busy:
            return False
        self._stop = threading.Event()
        self._pacer = FramePacer(FRAME_SECONDS)
        # activations of every step would be copied and never looked at
        self._captured = self.engine.capture_activations
        self.engine.capture_activations = False
        self._set_training(True)
        self._runner.run(
            train_frames,
            self.engine,
            self._stop,
            steps,
            self._pacer,
            on_progress=self._on_frame,
            on_result=self._on_training_done,
            on_error=self._on_error,
        )
        return True

    def stop(self) -> None:
        """Pause: the loop stops between two steps."""
        self._stop.set()

    def watch(self, paths: set[str]) -> None:
        """Which parameters' values and gradients results carry. When idle, the current
        ones are sent at once (read on this thread: nothing else touches the module)."""
        if self.engine is None:
            return
        paths = {p for p in paths if p in self.engine.tree.tensors}
        try:
            self.engine.watch = paths
        except NetExplorerError:
            self.engine.watch = set()  # buffers are not watched; they have no gradient
        if not self.busy:
            self._on_result(self.engine.snapshot())

    def configure(self, **settings: object) -> None:
        """Change loss_name, optimizer_name, lr, record, seed or input_spec between actions."""
        if self.engine is None:
            return
        for name, value in settings.items():
            if name == "input_spec" and value is not None and not isinstance(value, InputSpec):
                raise TypeError("input_spec must be an InputSpec")
            setattr(self.engine, name, value)

    # -- results ----------------------------------------------------------------------------

    def _on_result(self, result: PassResult) -> None:
        self.last_result = result
        self.result_ready.emit(result)

    def _on_frame(self, frame: TrainingFrame) -> None:
        self.losses_added.emit(frame.losses)
        self._on_result(frame.result)
        # a zero timer runs after the repaints this frame asked for
        QTimer.singleShot(0, self._pacer.drawn)

    def _on_training_done(self, result: PassResult | None) -> None:
        self._set_training(False)
        if self.engine is not None:  # the final state, whatever the last frame showed
            self._on_result(self.engine.snapshot())

    def _on_error(self, error: BaseException) -> None:
        self._set_training(False)
        message = str(error) if isinstance(error, NetExplorerError) else repr(error)
        if self.engine is not None:  # show what the model holds after the failure
            self._on_result(self.engine.snapshot())
        self.failed.emit(message)

    def _set_training(self, training: bool) -> None:
        if not training and self._training and self.engine is not None:
            self.engine.capture_activations = self._captured
        if training != self._training:
            self._training = training
            self.training_changed.emit(training)

    def shutdown(self) -> None:
        self.stop()
        self._runner.cancel()
