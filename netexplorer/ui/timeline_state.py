"""The time slider's state, in one place: which training run is open, which of its
checkpoints the window shows, the difference mode, whether it plays, and how every tensor
moved over the run once that is measured.

`Timeline` is owned by the Document. For a run of files (core/run.py) moving the slider
points the run's tree at that checkpoint (`Run.place_step`), so the heatmap, statistics,
histogram, optimizer state and values all follow, each reading only its own tensor. For a
live model (the snapshots the window keeps while training, live_history.py) the slider has
one more place at its end, "now": there the window shows the live model as before; on an
earlier snapshot it shows that snapshot, and live results wait.

Each part has its own signal, emitted only on a real change; widgets render from it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.handles import TensorHandle
from ..core.movement import MovementTable
from ..core.run import AbsentHandle, Run
from ..core.tree import ModuleTree

MODES = {
    "values": "Values",
    "previous": "Change since previous",
    "first": "Change since first",
}
PLAY_MS = 700  # one checkpoint per this long while playing


class Timeline(QObject):
    run_changed = Signal(object)  # Run | None
    step_changed = Signal(int)  # the position shown
    mode_changed = Signal(str)  # a key of MODES
    playing_changed = Signal(bool)
    movement_changed = Signal(object)  # MovementTable | None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tree: ModuleTree | None = None
        self._run: Run | None = None
        self._step = 0
        self._mode = "values"
        self._movement: MovementTable | None = None
        self._timer = QTimer(self, interval=PLAY_MS)
        self._timer.timeout.connect(self._advance)

    # -- reading ----------------------------------------------------------------------------

    @property
    def run(self) -> Run | None:
        return self._run

    @property
    def step(self) -> int:
        return self._step

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    @property
    def movement(self) -> MovementTable | None:
        return self._movement

    @property
    def live(self) -> bool:
        return self._run is not None and self._run.live

    @property
    def positions(self) -> int:
        """Places on the slider: the run's checkpoints, and "now" for a live model."""
        if self._run is None:
            return 0
        return len(self._run) + (1 if self._run.live else 0)

    @property
    def last(self) -> int:
        return max(0, self.positions - 1)

    @property
    def rewound(self) -> bool:
        """A live model's earlier snapshot is shown, not the model as it is now."""
        return self.live and self._step < self.last

    def label(self, position: int | None = None) -> str:
        """`step 500 · checkpoint-500 (4 of 20)`, or `now (live model)`."""
        run = self._run
        if run is None:
            return ""
        i = self._step if position is None else position
        if run.live and i == len(run):
            return "now (the live model)"
        checkpoint = run.checkpoints[i]
        name = "" if checkpoint.name == checkpoint.label else f" · {checkpoint.name}"
        return f"{checkpoint.label}{name} ({i + 1} of {len(run)})"

    def reference(self) -> int | None:
        """The checkpoint the difference modes compare with (None in values mode, or at
        the first checkpoint)."""
        if self._mode == "values" or self._run is None or self._step == 0:
            return None
        return self._step - 1 if self._mode == "previous" else 0

    def handle_at(self, path: str, position: int) -> TensorHandle | None:
        """The tensor at `path` at a position of the slider: a checkpoint's handle, an
        AbsentHandle where it lacks the key, None for "now" (the live model)."""
        run = self._run
        if run is None or position >= len(run):
            return None
        handle = run.handle(path, position)
        if handle is None:
            shape, dtype = run.shape_dtype(path, position)
            handle = AbsentHandle(shape, dtype, run.absent_reason(path, position))
        return handle

    def rewound_handle(self, path: str) -> TensorHandle | None:
        """The snapshot of a live model's tensor the slider rests on (None when it shows
        the model as it is now, or the run is of files: their tree follows the slider)."""
        if not self.rewound:
            return None
        try:
            return self.handle_at(path, self._step)
        except KeyError:
            return None

    # -- writing ----------------------------------------------------------------------------

    def set_tree(self, tree: ModuleTree | None) -> None:
        """Another tree is open: its run (if it is one), at its latest checkpoint."""
        self.set_playing(False)
        self._tree = tree
        run = tree.run if tree is not None else None
        self._run = run
        self._step = self.last
        self._set_movement(None)
        self.run_changed.emit(run)
        self.step_changed.emit(self._step)

    def set_live_run(self, run: Run | None) -> None:
        """The live model's snapshots changed (live_history.py). The slider stays at "now"
        if it was there, else on the snapshot of the same step (or the nearest kept)."""
        if run is not None and not run.live:
            raise ValueError("set_live_run takes the snapshots of a live model")
        old, was_now = self._run, not self.rewound
        step = None
        if old is not None and old.live and not was_now:
            step = old.checkpoints[self._step].info.step
        self._run = run
        if run is None:
            self._step = 0
        elif was_now:
            self._step = self.last
        else:
            steps = [c.info.step or 0 for c in run.checkpoints]
            self._step = min(range(len(steps)), key=lambda i: abs(steps[i] - (step or 0)))
        if run is None:
            self._set_movement(None)
        # else the movement of the snapshots before stays until they are measured again
        self.run_changed.emit(run)
        if not was_now or run is None:  # at "now" the live model is still what is shown
            self.step_changed.emit(self._step)

    def set_step(self, position: int) -> None:
        """Show another checkpoint (clamped to the slider)."""
        if self._run is None:
            return
        position = max(0, min(self.last, int(position)))
        if position == self._step:
            return
        self._step = position
        if not self._run.live and self._tree is not None:
            self._run.place_step(self._tree, position)
        self.step_changed.emit(position)

    def step_by(self, delta: int) -> None:
        self.set_step(self._step + delta)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown difference mode {mode!r}; one of {', '.join(MODES)}")
        if mode != self._mode:
            self._mode = mode
            self.mode_changed.emit(mode)

    def cycle_mode(self) -> None:
        """Values -> change since the previous -> change since the first -> values."""
        modes = list(MODES)
        self.set_mode(modes[(modes.index(self._mode) + 1) % len(modes)])

    def set_playing(self, playing: bool) -> None:
        """Play through the checkpoints (from the first, if at the end) or pause."""
        if playing == self.playing:
            return
        if playing:
            if self._run is None or self.positions < 2:
                return
            if self._step >= self.last:
                self.set_step(0)
            self._timer.start()
        else:
            self._timer.stop()
        self.playing_changed.emit(playing)

    def toggle_playing(self) -> None:
        self.set_playing(not self.playing)

    def set_movement(self, movement: MovementTable | None) -> None:
        """How every tensor moved (computed in a worker by movement_column.py)."""
        self._set_movement(movement)

    def _set_movement(self, movement: MovementTable | None) -> None:
        if movement is not self._movement:
            self._movement = movement
            self.movement_changed.emit(movement)

    def _advance(self) -> None:
        if self._step >= self.last:
            self.set_playing(False)
        else:
            self.set_step(self._step + 1)
