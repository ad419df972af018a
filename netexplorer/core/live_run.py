"""A live model's history while it trains in the window: snapshots of every tensor taken every
few steps, in a buffer bounded in bytes (and in number), offered as a `Run` so that the time
slider rewinds a live model as it scrubs through a run's checkpoints.

The training worker takes the snapshots between two steps (`take_snapshot`: plain numpy
copies, read-only, a tied tensor copied once for all its paths); the window adds them to
the buffer. When a snapshot would pass the buffer's bounds, every other snapshot is dropped
(the first and the newest are always kept) and the interval doubles: the buffer keeps the
whole history, coarser as it grows, never more than `max_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .handles import ArrayHandle
from .run import Run, RunCheckpoint
from .run_steps import StepInfo

if TYPE_CHECKING:
    import numpy as np

    from .tree import ModuleTree

DEFAULT_EVERY = 10  # steps between two snapshots, to begin with
DEFAULT_MAX_BYTES = 128 << 20
DEFAULT_MAX_SNAPSHOTS = 200  # a slider of more places cannot be read, nor measured quickly
SOURCE = "training in the window"
PAUSE_EVERY = 64  # tensors copied into a snapshot between two pauses


@dataclass(frozen=True)
class Snapshot:
    """Every tensor of a live model after `step` optimizer steps, as numpy copies."""

    step: int
    values: dict[str, np.ndarray]
    nbytes: int  # a tied tensor counted once


def take_snapshot(tree: ModuleTree, step: int, pause: Callable[[], None] | None = None) -> Snapshot:
    """Copy every tensor of a live tree (in the thread that trains it, between two steps).
    The copies are read-only; the paths of a tie group share one. `pause()` is called every
    PAUSE_EVERY tensors (a training worker gives way to the GUI there)."""
    values: dict[str, np.ndarray] = {}
    nbytes = 0
    for i, group in enumerate(tree.tie_groups):
        if pause is not None and not (i + 1) % PAUSE_EVERY:
            pause()
        first = tree.tensors[group.paths[0]]
        if not first.handle.has_values:
            continue
        array = _copy(first.handle.array())
        nbytes += array.nbytes
        for path in group.paths:
            values[path] = array
    for i, (path, node) in enumerate(tree.tensors.items()):
        if pause is not None and not (i + 1) % PAUSE_EVERY:
            pause()
        if path in values or not node.handle.has_values:
            continue
        array = _copy(node.handle.array())
        nbytes += array.nbytes
        values[path] = array
    return Snapshot(step, values, nbytes)


def _copy(array: np.ndarray) -> np.ndarray:
    import numpy as np

    out = np.array(array, copy=True)
    out.flags.writeable = False
    return out


class SnapshotBuffer:
    """Snapshots of one live model, oldest first, within `max_bytes` and `max_snapshots`.

    `every` (steps between snapshots) is read by the training worker (`due`) and doubled
    here when the buffer thins out; reading and replacing an int are atomic, so the worker
    at worst takes one snapshot more or less. The worker keeps the step of the last
    snapshot it took itself (`due(step, last)`)."""

    def __init__(
        self,
        every: int = DEFAULT_EVERY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_snapshots: int = DEFAULT_MAX_SNAPSHOTS,
    ) -> None:
        if every < 1 or max_bytes < 1 or max_snapshots < 2:
            raise ValueError("a snapshot buffer needs every >= 1, max_bytes >= 1, 2+ snapshots")
        self.first_every = every
        self.every = every
        self.max_bytes = max_bytes
        self.max_snapshots = max_snapshots
        self.snapshots: list[Snapshot] = []
        self.refused = ""  # why the last snapshot was not kept (larger than the budget)
        self._last_step: int | None = None
        self._checkpoints: list[tuple[Snapshot, RunCheckpoint]] = []  # made for as_run

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots)

    @property
    def last_step(self) -> int | None:
        """The step of the newest snapshot added (None before any)."""
        return self._last_step

    def due(self, step: int, last: int | None = None) -> bool:
        """Whether the model after `step` steps should be snapshotted, the last snapshot
        having been taken after `last` steps (default: the newest added). A training
        worker passes the last one it took: the ones it sent are added later, on the GUI
        thread."""
        last = self._last_step if last is None else last
        return last is None or step >= last + self.every or step < last

    def add(self, snapshot: Snapshot) -> None:
        """Keep a snapshot, thinning out older ones to stay within the bounds."""
        self._last_step = snapshot.step
        if self.snapshots and snapshot.step <= self.snapshots[-1].step:  # the model was reset
            self.snapshots = [s for s in self.snapshots if s.step < snapshot.step]
        if snapshot.nbytes > self.max_bytes:
            self.refused = (
                f"the model's {snapshot.nbytes / 2**20:.0f} MB exceed the history's "
                f"{self.max_bytes / 2**20:.0f} MB: no snapshots are kept"
            )
            return
        self.refused = ""
        while self.snapshots and (
            self.nbytes + snapshot.nbytes > self.max_bytes
            or len(self.snapshots) + 1 > self.max_snapshots
        ):
            if len(self.snapshots) > 2:
                self._thin()
            else:  # the newer of the two goes first, the first snapshot last
                self.snapshots.pop()
        self.snapshots.append(snapshot)

    def _thin(self) -> None:
        """Drop every other snapshot (keeping the first and the newest); double `every`."""
        kept = self.snapshots[::2]
        if kept[-1] is not self.snapshots[-1]:
            kept.append(self.snapshots[-1])
        self.snapshots = kept
        self.every *= 2

    def clear(self) -> None:
        self.snapshots = []
        self.every = self.first_every
        self.refused = ""
        self._last_step = None

    def note(self) -> str:
        """How the history is kept, for people."""
        used = self.nbytes / 2**20
        return (
            f"a snapshot every {self.every} steps of training, {len(self.snapshots)} kept "
            f"({used:.1f} of {self.max_bytes / 2**20:.0f} MB)"
        )

    def as_run(self) -> Run | None:
        """The snapshots as a Run the time slider shows (None before the first)."""
        if not self.snapshots:
            return None
        made = {id(s): c for s, c in self._checkpoints}
        self._checkpoints = [(s, made.get(id(s)) or _checkpoint(s)) for s in self.snapshots]
        run = Run([c for _, c in self._checkpoints], "step", self.note(), source=SOURCE)
        run.live = True
        return run


def _checkpoint(snapshot: Snapshot) -> RunCheckpoint:
    """A snapshot as a checkpoint of a Run: its arrays behind handles."""
    name = f"step {snapshot.step}"
    handles = {
        path: ArrayHandle(a.shape, str(a.dtype), lambda a=a: a)
        for path, a in snapshot.values.items()
    }
    info = StepInfo(name, step=snapshot.step, sources={"step": SOURCE})
    return RunCheckpoint("", name, info, "snapshot", handles)
