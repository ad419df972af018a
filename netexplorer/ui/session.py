"""Passes from buttons: the one owner of the open model's pass engine and its `PassState`.

Everything that runs or reads the live model goes through the session:

- actions (forward, backward, zero grad, step) and training run in a thread of their own
  (not a slot of the shared pool), one at a time. A training loop yields to the GUI at most
  ~30 times a second however fast it steps (the worker batches the losses of the steps in
  between), and Pause stops it between two steps. The phase stays "running", "training" or
  "stopping" until the worker's thread has finished;
- reading the values of watched tensors. While an action runs, its result (or the next
  training frame) carries them: nothing on the GUI thread touches a module that a worker is
  changing. While none runs, small tensors are read on the GUI thread at once (no lock: no
  action can start meanwhile, since actions start on this thread) and large ones in a
  worker, which takes the engine's state lock there. The GUI thread never waits for a lock.

Results go to `state` (the last result and what the model holds); the values read go out
with `tensors_read`, which is not a pass result and changes neither.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.collector import freeze_once
from ..core.errors import NetExplorerError
from ..core.live_run import Snapshot, SnapshotBuffer, take_snapshot
from ..core.tree import ModuleTree
from .gui_gate import wait_for_gui
from .pass_state import PassState, Phase
from .workers import GUI_THREAD_ELEMENTS, TaskRunner

if TYPE_CHECKING:  # torch loads when a live model is opened, not when the window starts
    from ..core.passes import PassEngine, PassResult

FRAME_SECONDS = 1 / 30  # what an eye can follow
GUI_SHARE_FACTOR = 3  # frames at least 3x as far apart as the GUI takes to draw one
HOLD_SECONDS = 0.25  # the longest training waits for the GUI to draw a selection
SINGLE_ACTIONS = ("forward", "backward", "zero_grad", "step")
NO_CODE = (
    "a checkpoint without code has no forward pass: open it with "
    "--model pkg.module:factory --weights FILE to make it live"
)


@dataclass
class TrainingFrame:
    """What a training loop sends to the GUI per frame: the latest result and the losses
    of every step since the previous frame."""

    result: PassResult
    losses: list[tuple[int, float]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)  # the history (live_run.py)


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
        # A selection while training: the GUI draws it, then the first frame that brings the
        # new tensor (its heatmaps and panels made anew), with the worker waiting meanwhile.
        # Otherwise each of the thousands of calls from Qt into Python that those repaints
        # make (the tree's data(), parent(), index()) must win the GIL back from the
        # training thread: the 35-45 ms of drawing took 70-130 ms.
        self._free = threading.Event()  # cleared while the GUI draws a selection
        self._free.set()
        self._wait_for_frame = False  # the worker waits until its next frame is drawn

    def hold(self) -> None:
        """GUI side: a selection is about to be drawn (`release` when it is)."""
        self._free.clear()
        self._wait_for_frame = True

    def release(self) -> None:
        self._free.set()

    def wait_free(self) -> None:
        """Worker side, between steps and module calls: at once unless the GUI holds it
        (at most HOLD_SECONDS: a GUI that never releases slows training, never stops it)."""
        if not self._free.is_set():
            self._free.wait(HOLD_SECONDS)
        wait_for_gui()

    def frame_sent(self) -> None:
        """Worker side, after a frame was sent: the first after a hold is drawn before the
        worker goes on."""
        if self._wait_for_frame:
            self._wait_for_frame = False
            self._drawn.wait(HOLD_SECONDS)

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
    engine: PassEngine,
    stop: threading.Event,
    steps: int | None,
    pacer: FramePacer,
    history: SnapshotBuffer | None = None,
) -> Iterator[TrainingFrame]:
    """Worker task: train until stopped, sending a frame when the GUI is ready for one;
    returns the last step's result. Between steps, snapshots for the `history` when it
    asks for one (the model before the first step too)."""
    losses: list[tuple[int, float]] = []
    snapshots: list[Snapshot] = []
    last = None if history is None else history.last_step  # of the snapshots taken here
    if history is not None and history.due(engine.steps_taken, last):
        snapshots.append(take_snapshot(engine.tree, engine.steps_taken, pacer.wait_free))
        last = engine.steps_taken
    result = None
    for result in engine.train(steps, cancelled=stop.is_set, pause=pacer.wait_free):
        if result.loss is not None:
            losses.append((result.step, result.loss))
        if history is not None and history.due(result.step, last):
            snapshots.append(take_snapshot(engine.tree, result.step, pacer.wait_free))
            last = result.step
        now = time.monotonic()
        if pacer.may_send(now):
            pacer.sent(now)
            yield TrainingFrame(result, losses, snapshots)
            losses, snapshots = [], []
            pacer.frame_sent()
    if result is not None and (losses or snapshots):
        yield TrainingFrame(result, losses, snapshots)
    return result


def repeat_action(engine: PassEngine, action: str, times: int) -> PassResult:
    """Worker task: run one engine action `times` times (`--backward N`); the last result."""
    result = None
    for _ in range(max(1, times)):
        result = getattr(engine, action)()
    return result


class PassSession(QObject):
    """The pass engine of the open tree, if the tree is live, and its state."""

    tensors_read = Signal(object)  # PassResult ("snapshot") with the watched tensors' values
    losses_added = Signal(object)  # list[(step, loss)] from a training loop
    engine_changed = Signal()
    history_changed = Signal()  # snapshots taken while training (`history`)
    busy_changed = Signal(bool)  # a pass worker's thread is running (or finishing)
    _warmed = False  # torch's lazy imports are done once per process

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = PassState(self)
        self.engine: PassEngine | None = None
        self._runner = TaskRunner(self, dedicated=True)  # actions and training
        self._runner.busy_changed.connect(self._on_runner_busy_changed)
        self._reader = TaskRunner(self)  # values of large tensors while idle
        self._warm_runner = TaskRunner(self)
        self._stop = threading.Event()
        self._pacer = FramePacer(FRAME_SECONDS)
        self._failure = ""  # the error of the action running now, shown once it has finished
        self._sizes: dict[str, int] = {}  # path -> elements, to choose where to read
        # what a new engine starts with (the window's saved settings); the sum of the output
        # (the CLI's loss) has no minimum: training on it diverges, so the window starts on a
        # loss that training can lower
        self.defaults: dict[str, Any] = {"loss_name": "mse"}
        # the live model's history while it trains: the time slider rewinds it
        self.history = SnapshotBuffer()

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A pass worker is running (or finishing): the model may be changing."""
        return self._runner.busy

    @property
    def training(self) -> bool:
        return self.state.training

    @property
    def unavailable_reason(self) -> str:
        return self.state.unavailable_reason

    def set_tree(self, tree: ModuleTree | None, seed: int = 0) -> None:
        """The open tree changed: stop what runs on the old model (it finishes in the
        background, its results dropped) and make an engine for the new one."""
        self._stop.set()
        self._runner.cancel()
        self._reader.cancel()
        self.engine = None
        self._failure = ""
        self._sizes = {}
        if self.history.snapshots:
            self.history.clear()
            self.history_changed.emit()
        reason = ""
        if tree is None:
            reason = "nothing is open"
        elif not tree.is_live:
            reason = NO_CODE
        else:
            from ..core.passes import PassEngine, meta_problem, warm_up

            reason = meta_problem(tree) or ""
        if not reason and tree is not None:
            try:
                engine = PassEngine(tree, seed=seed)
                engine.configure(capture_activations=True)
                defaults = dict(self.defaults)
                if defaults.get("loss_name") == "model" and tree.default_loss != "model":
                    defaults.pop("loss_name")  # only a model that computes a loss has one
                with contextlib.suppress(NetExplorerError):  # a setting this version lacks
                    engine.configure(**defaults)
                if tree.default_loss:  # the loss that fits this model (its own, given labels)
                    engine.configure(loss_name=tree.default_loss)
                self.engine = engine
                self._sizes = {path: t.numel for path, t in tree.tensors.items()}
                if not PassSession._warmed:
                    PassSession._warmed = True
                    self._warm_runner.run(warm_up, on_result=lambda _r: freeze_once("torch"))
            except NetExplorerError as exc:
                reason = str(exc)
        finishing = Phase.STOPPING if self.busy and not reason else None
        self.state.reset(reason, self._input_text(), phase=finishing)
        self.engine_changed.emit()

    # -- actions ----------------------------------------------------------------------------

    def run(self, action: str, times: int = 1) -> bool:
        """Start forward / backward / zero_grad / step (`times` in a row) in a worker. False
        when no action may start now (no live model, or one is running)."""
        if action not in SINGLE_ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if self.engine is None or not self.state.can_act or self.busy:
            return False
        self._failure = ""
        self.state.set_phase(Phase.RUNNING, action)
        self._runner.run(
            repeat_action,
            self.engine,
            action,
            times,
            on_result=self.state.take_result,
            on_error=self._on_error,
        )
        return True

    def edit_value(self, path: str, index: tuple[int, ...], value: float) -> bool:
        """`….data[index] = value` on the live model, in the worker (then a forward pass,
        so that the output and the loss follow). False when no action may start now."""
        return self._start("edit", "edit_value", path, tuple(index), float(value))

    def initialise(self, paths: list[str], scheme: str, value: float = 1.0) -> bool:
        """An initialisation scheme on the tensors at `paths` (core/passes/edits.py)."""
        return self._start("init", "initialise", list(paths), scheme, float(value))

    def undo(self) -> bool:
        """Put back what the newest edit or initialisation changed."""
        return self._start("undo", "undo")

    def _start(self, action: str, method: str, *args: Any) -> bool:
        if self.engine is None or not self.state.can_act or self.busy:
            return False
        self._failure = ""
        self.state.set_phase(Phase.RUNNING, action)
        self._runner.run(
            getattr(self.engine, method),
            *args,
            on_result=self.state.take_result,
            on_error=self._on_error,
        )
        return True

    def train(self, steps: int | None = None) -> bool:
        """Train until Pause (or `steps` steps). False when no action may start now."""
        engine = self.engine
        if engine is None or not self.state.can_act or self.busy:
            return False
        self._stop = threading.Event()
        self._pacer = FramePacer(FRAME_SECONDS)
        self._failure = ""
        # activations of every step would be copied and never looked at
        engine.configure(capture_activations=False)
        self.state.set_phase(Phase.TRAINING, "train")
        self._runner.run(
            train_frames,
            engine,
            self._stop,
            steps,
            self._pacer,
            self.history,
            on_progress=self._on_frame,
            on_result=self._on_training_done,
            on_error=self._on_error,
        )
        return True

    def stop(self) -> None:
        """Pause: the loop stops between two steps; the phase says "stopping" until then."""
        self._stop.set()
        if self.state.phase is Phase.TRAINING:
            self.state.set_phase(Phase.STOPPING, "train")

    def configure(self, **settings: Any) -> None:
        """Change loss_name, optimizer_name, lr, record, seed, input_spec or eval_mode.
        Applies to the next action (a running one keeps the settings it started with)."""
        if self.engine is None:
            return
        self.engine.configure(**settings)
        if "input_spec" in settings:
            self.state.set_input_text(self._input_text())

    # -- reading values ---------------------------------------------------------------------

    def watch(self, paths: Iterable[str]) -> None:
        """Which parameters and buffers results carry. While no action runs, their current
        values are read now (`tensors_read`); while one runs, its result brings them."""
        engine = self.engine
        if engine is None:
            return
        watched = frozenset(p for p in paths if p in self._sizes)
        engine.configure(watch=watched)
        self._reader.cancel()
        if watched and not self.busy:
            self.read(watched)

    def read(self, paths: Iterable[str] | None = None) -> None:
        """Read the current values of `paths` (default: the watched ones), gradient norms
        and step counts, without running anything: on this thread when small and no action
        runs; otherwise in a worker."""
        engine = self.engine
        if engine is None:
            return
        paths = engine.config.watch if paths is None else frozenset(paths)
        if self.busy:
            return  # the running action's result carries them
        elements = sum(self._sizes.get(p, 0) for p in paths)
        if elements <= GUI_THREAD_ELEMENTS:
            self._on_read(engine.snapshot_while_idle(paths))
        else:
            self._reader.run(engine.snapshot, paths, on_result=self._on_read)

    def guarded(self, task: Callable[..., Any]) -> Callable[..., Any]:
        """`task` (a function or a progress generator that reads the model's tensors in a
        worker), made to hold the engine's state lock while it runs, so that no pass changes
        what it reads; `task` itself for a checkpoint without code."""
        engine = self.engine
        if engine is None:
            return task
        if inspect.isgeneratorfunction(task):

            def guarded_steps(*args: Any) -> Any:
                with engine.reading():
                    return (yield from task(*args))

            return guarded_steps

        def guarded_call(*args: Any) -> Any:
            with engine.reading():
                return task(*args)

        return guarded_call

    # -- results ----------------------------------------------------------------------------

    def _on_read(self, result: PassResult) -> None:
        self.state.take_result(result)  # holdings only: a snapshot is not a pass result
        self.tensors_read.emit(result)

    def hold_for_gui(self) -> None:
        """While training: the worker pauses between steps while the GUI draws what it is
        about to (a zero timer runs after the repaints asked for before it), and again
        while it draws the next frame."""
        if self.training:
            self._pacer.hold()
            QTimer.singleShot(0, self, self._pacer.release)

    def _on_frame(self, frame: TrainingFrame) -> None:
        if frame.snapshots:
            for snapshot in frame.snapshots:
                self.history.add(snapshot)
            self.history_changed.emit()
        self.losses_added.emit(frame.losses)
        self.state.take_result(frame.result)
        # a zero timer runs after the repaints this frame asked for
        QTimer.singleShot(0, self, self._pacer.drawn)

    def _on_training_done(self, result: PassResult | None) -> None:
        if result is not None:  # the final state, whatever the last frame showed
            self.state.take_result(result)

    def _on_error(self, error: BaseException) -> None:
        self._failure = str(error) if isinstance(error, NetExplorerError) else repr(error)

    def _on_runner_busy_changed(self, busy: bool) -> None:
        self.busy_changed.emit(busy)
        if busy:
            return
        engine = self.engine
        if engine is not None:
            engine.configure(capture_activations=True)
        if self.engine is None and self.state.phase is not Phase.UNAVAILABLE:
            self.state.set_phase(Phase.UNAVAILABLE)
        elif self._failure:
            action = self.state.action
            self.state.set_phase(Phase.FAILED, action, self._failure)
            self.read()  # what the model holds after the failure
        elif self.state.phase is not Phase.UNAVAILABLE:
            self.state.set_phase(Phase.IDLE)
            # a tensor selected after the last result was made: read it now
            carried = self.state.result.watched if self.state.result is not None else {}
            missing = [p for p in engine.config.watch if p not in carried] if engine else []
            if missing:
                self.read(missing)

    def _input_text(self) -> str:
        if self.engine is None:
            return ""
        try:
            return self.engine.input_spec.describe()
        except NetExplorerError:
            return ""

    def shutdown(self) -> None:
        self._stop.set()
        self._runner.cancel()
        self._reader.cancel()
