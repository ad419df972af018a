"""How every tensor of a training run moved: per checkpoint its relative change since the
checkpoint before, ‖Wₜ − Wₜ₋₁‖ / ‖Wₜ₋₁‖, and its statistics (norm, max |w|, min, max, NaN
and Inf counts; no mean: its pass over the data cost as much as the norm's).

`iter_movement(run)` reads each tensor once per checkpoint, in chunks: for a tensor stored as
one byte range of its file (safetensors, torch zip files), chunk by chunk across the
checkpoints, each chunk read with a plain read into a buffer used again and again, so the
chunk of the checkpoint before is still in the CPU's cache when its difference is taken, and
no memory map grows with the run's gigabytes; other tensors (arrays in memory, legacy
pickles, distributed-checkpoint chunks) through their handle, one checkpoint after the other.
It is a generator: it yields (fraction done, what it reads) between chunks, where a worker may
stop it, and returns a `MovementTable`.

Norms are sums of squares in float64 of float32 dot products of each chunk; a chunk whose sum
of squares is not finite is counted again slowly, element by element (NaN, Inf), so the
common case costs one pass per statistic over data already in the cache.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Hashable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import NetExplorerError
from .handles import TensorHandle
from .run import Run
from .tensor_ranges import FileRange, OpenFiles, file_range

CHUNK = 1 << 16  # elements per chunk: a row of them (one per checkpoint) fits the L3 cache
ROW_BYTES = 16 << 20  # at most this much per row, two rows in memory (one read ahead)


@dataclass(frozen=True)
class StepStats:
    """Statistics of one tensor in one checkpoint, over its finite values."""

    count: int
    norm: float | None
    max_abs: float | None
    min: float | None
    max: float | None
    nan: int = 0
    inf: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "norm": self.norm,
            "max_abs": self.max_abs,
            "min": self.min,
            "max": self.max,
            "nan": self.nan,
            "inf": self.inf,
        }


class _Accumulator:
    """Running sums of one tensor in one checkpoint, chunk after chunk."""

    __slots__ = ("count", "finite", "hi", "inf", "lo", "nan", "ss")

    def __init__(self) -> None:
        self.count = self.finite = self.nan = self.inf = 0
        self.ss = 0.0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, x: np.ndarray) -> None:
        self.count += x.size
        if not x.size:
            return
        ss = float(np.dot(x, x))
        if math.isfinite(ss):  # no NaN or Inf (a square sum overflowing float32 goes slow)
            self.ss += ss
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
            self.finite += x.size
            return
        wide = x.astype(np.float64)
        finite = np.isfinite(wide)
        nan = int(np.isnan(wide).sum())
        self.nan += nan
        self.inf += int(wide.size - finite.sum()) - nan
        wide = wide[finite]
        if wide.size:
            self.ss += float(np.dot(wide, wide))
            self.lo = min(self.lo, float(wide.min()))
            self.hi = max(self.hi, float(wide.max()))
            self.finite += wide.size

    def stats(self) -> StepStats:
        if not self.finite:
            return StepStats(self.count, None, None, None, None, self.nan, self.inf)
        return StepStats(
            self.count,
            math.sqrt(self.ss),
            max(abs(self.lo), abs(self.hi)),
            self.lo,
            self.hi,
            self.nan,
            self.inf,
        )


@dataclass
class TensorMovement:
    """One tensor over a run: per checkpoint whether it is there, ‖Wₜ − Wₜ₋₁‖ (None at its
    first checkpoint, after a gap, or where the shape changed) and its statistics."""

    path: str
    present: list[bool]
    change_norm: list[float | None]
    stats: list[StepStats | None]
    note: str = ""  # a checkpoint whose values could not be read, and why

    @property
    def relative_change(self) -> list[float | None]:
        """‖Wₜ − Wₜ₋₁‖ / ‖Wₜ₋₁‖ per checkpoint: 0 for equal tensors, inf when Wₜ₋₁ is zero
        (a bias initialised to zeros) and Wₜ is not, None where unknown (see change_norm)
        or not finite (NaN in either)."""
        out: list[float | None] = [None]
        for t in range(1, len(self.present)):
            change, before = self.change_norm[t], self.stats[t - 1]
            out.append(_ratio(change, None if before is None else before.norm))
        return out

    @property
    def total(self) -> float | None:
        """The sum of its finite relative changes over the run (how far it travelled), or
        None when none is known."""
        known = [r for r in self.relative_change if r is not None and math.isfinite(r)]
        return sum(known) if known else None

    def as_dict(self) -> dict[str, Any]:
        """One entry of the JSON's `timeline.tensors`."""
        return {
            "path": self.path,
            "present": list(self.present),
            "relative_change": [_json_number(r) for r in self.relative_change],
            "total_movement": self.total,
            "stats": [None if s is None else s.as_dict() for s in self.stats],
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class MovementTable:
    """Every tensor's movement over a run (or those asked for)."""

    steps: int
    tensors: dict[str, TensorMovement] = field(default_factory=dict)

    def group_change(self, paths: Iterable[str]) -> list[float | None]:
        """The relative change of several tensors taken as one (a module): per checkpoint
        √(Σ‖ΔW‖²) / √(Σ‖Wₜ₋₁‖²) over the tensors known at both checkpoints."""
        rows = [self.tensors[p] for p in paths if p in self.tensors]
        out: list[float | None] = [None] * self.steps
        for t in range(1, self.steps):
            num = den = 0.0
            known = False
            for row in rows:
                change, before = row.change_norm[t], row.stats[t - 1]
                if change is None or before is None or before.norm is None:
                    continue
                if not (math.isfinite(change) and math.isfinite(before.norm)):
                    continue
                num += change * change
                den += before.norm * before.norm
                known = True
            if known:
                out[t] = _ratio(math.sqrt(num), math.sqrt(den))
        return out

    def as_dict(self, run: Run) -> dict[str, Any]:
        """The JSON's `timeline` object (README: The JSON format)."""
        return {
            "order": run.note,
            "ordered_by": run.ordering_key,
            "x_label": run.x_label,
            "steps": run.steps_as_dicts(),
            "skipped": [{"name": n, "why": why} for n, why in run.skipped],
            "tensors": [self.tensors[p].as_dict() for p in run.paths if p in self.tensors],
        }


def movement(run: Run, paths: Sequence[str] | None = None) -> MovementTable:
    """`iter_movement` run to the end."""
    from .tasks import run_to_end

    return run_to_end(iter_movement(run, paths))


def iter_movement(
    run: Run, paths: Sequence[str] | None = None, chunk: int = CHUNK
) -> Generator[tuple[float, str], None, MovementTable]:
    """The movement of `paths` (default: every tensor of the run), reading each tensor once
    per checkpoint; yields (fraction done, what is read) between chunks."""
    paths = list(run.paths if paths is None else paths)
    steps = len(run)
    plans = [(p, [run.handle(p, t) for t in range(steps)]) for p in paths]
    total = sum(_elements(h) for _, handles in plans for h in handles) or 1
    table = MovementTable(steps)
    computed: dict[Hashable, TensorMovement] = {}
    done = 0
    with OpenFiles() as files, ThreadPoolExecutor(1, "netexplorer-movement") as reader:
        for number, (path, handles) in enumerate(plans, 1):
            text = f"measuring how {path} moved ({number} of {len(plans)})"
            identity = _identity(handles)
            if identity is not None and identity in computed:  # a tied tensor: once
                table.tensors[path] = replace(computed[identity], path=path)
                done += sum(_elements(h) for h in handles)
                yield min(1.0, done / total), text
                continue
            ranges = _ranges(handles)
            work = (
                _by_chunks(ranges, files, reader, chunk)
                if ranges is not None
                else _by_arrays(handles, chunk)
            )
            while True:
                try:
                    done += next(work)
                except StopIteration as finished:
                    accumulators, changes, note = finished.value
                    break
                yield min(1.0, done / total), text
            row = TensorMovement(
                path,
                [h is not None for h in handles],
                changes,
                [None if a is None else a.stats() for a in accumulators],
                note,
            )
            table.tensors[path] = row
            if identity is not None:
                computed[identity] = row
            if not any(_elements(h) for h in handles):
                yield min(1.0, done / total), text
    return table


Result = tuple[list["_Accumulator | None"], list[float | None], str]


def _by_chunks(
    ranges: list[FileRange | None], files: OpenFiles, reader: Executor, chunk: int
) -> Generator[int, None, Result]:
    """Chunk by chunk, each chunk across the checkpoints (a row): the chunk before is still
    in the cache when the difference is taken. A thread of its own reads the next row
    while this one is measured (reading releases the interpreter's lock, and so does
    numpy), so the copies from the page cache and the arithmetic overlap."""
    steps = len(ranges)
    present = [t for t, r in enumerate(ranges) if r is not None]
    wheres = [ranges[t] for t in present]
    first = wheres[0]
    assert first is not None
    count = first.count
    accumulators: list[_Accumulator | None] = [
        None if r is None else _Accumulator() for r in ranges
    ]
    squares = [0.0] * steps
    compared = [t > 0 and ranges[t] is not None and ranges[t - 1] is not None for t in range(steps)]
    size = max(1, min(chunk, count, ROW_BYTES // (len(present) * first.raw.itemsize)))
    rows = [np.empty((len(present), size), first.raw) for _ in range(2)]
    work = _numbers(first.decode(rows[0][0, :1])).dtype
    as_stored = work == first.raw  # float32 or float64 in the file: no conversion
    difference = np.empty(size, work)

    def read_row(start: int, row: np.ndarray) -> np.ndarray:
        k = min(size, count - start)
        for j, where in enumerate(wheres):
            files.read(where, start, row[j, :k])  # type: ignore[arg-type]
        return row

    starts = range(0, count, size)
    pending = reader.submit(read_row, 0, rows[0])
    for n, start in enumerate(starts):
        row = pending.result()
        if n + 1 < len(starts):
            pending = reader.submit(read_row, starts[n + 1], rows[(n + 1) % 2])
        k = min(size, count - start)
        before: np.ndarray | None = None
        for j, t in enumerate(present):
            stored = row[j, :k]
            x = stored if as_stored else _numbers(wheres[j].decode(stored))  # type: ignore[union-attr]
            accumulators[t].add(x)  # type: ignore[union-attr]
            if before is not None and compared[t]:
                # the chunk before is not needed again: its buffer takes the difference
                out = before if as_stored else difference[:k]
                d = np.subtract(x, before, out=out)
                squares[t] += float(np.dot(d, d))
            before = x
        yield k * len(present)
    changes = [math.sqrt(squares[t]) if compared[t] else None for t in range(steps)]
    return accumulators, changes, ""


def _by_arrays(handles: list[TensorHandle | None], chunk: int) -> Generator[int, None, Result]:
    """Checkpoint after checkpoint through the handles, keeping the one before."""
    accumulators: list[_Accumulator | None] = []
    changes: list[float | None] = []
    notes: list[str] = []
    before: np.ndarray | None = None
    for handle in handles:
        if handle is None or not handle.has_values:
            accumulators.append(None)
            changes.append(None)
            before = None
            continue
        try:
            values = np.asarray(handle.array())
        except (NetExplorerError, ValueError, OSError) as exc:
            notes.append(str(exc))
            accumulators.append(None)
            changes.append(None)
            before = None
            continue
        accumulator = _Accumulator()
        comparable = before is not None and before.shape == values.shape
        flat = values.reshape(-1)
        squares = 0.0
        for start in range(0, flat.size, chunk):
            x = _numbers(flat[start : start + chunk])
            accumulator.add(x)
            if comparable:
                d = x - _numbers(before.reshape(-1)[start : start + chunk])  # type: ignore[union-attr]
                squares += float(np.dot(d, d))
            yield x.size
        accumulators.append(accumulator)
        changes.append(math.sqrt(squares) if comparable else None)
        before = values
    return accumulators, changes, "; ".join(dict.fromkeys(notes))


def difference(current: TensorHandle, reference: TensorHandle) -> np.ndarray:
    """Wₜ − W_ref of one tensor, for the difference heatmap (float32, float64 if either is).
    Raises ValueError when either has no values or the shapes differ."""
    a = np.asarray(reference.array())
    b = np.asarray(current.array())
    if a.shape != b.shape:
        raise ValueError(
            f"the shape changed from {list(a.shape)} to {list(b.shape)}: there is no "
            "difference to show"
        )
    wide = np.float64 in (a.dtype, b.dtype)
    out = _numbers(b).astype(np.float64 if wide else np.float32) - _numbers(a)
    return out.astype(np.float64 if wide else np.float32, copy=False)


def _ranges(handles: list[TensorHandle | None]) -> list[FileRange | None] | None:
    """The byte ranges of a tensor in every checkpoint holding it, or None when one of
    them has none, or they differ in shape or dtype (then it is read through handles)."""
    ranges: list[FileRange | None] = []
    kinds = set()
    for handle in handles:
        if handle is None:
            ranges.append(None)
            continue
        where = file_range(handle) if handle.has_values else None
        if where is None:
            return None
        kinds.add((tuple(handle.shape), where.dtype))
        ranges.append(where)
    if len(kinds) != 1:
        return None
    return ranges


def _identity(handles: list[TensorHandle | None]) -> Hashable | None:
    """What makes two paths the same tensor in every checkpoint (a tie), if known."""
    keys = []
    for handle in handles:
        if handle is None:
            keys.append(None)
            continue
        key = handle.storage_key()
        if key is None:
            return None
        keys.append(key)
    return tuple(keys) if any(k is not None for k in keys) else None


def _elements(handle: TensorHandle | None) -> int:
    return 0 if handle is None or not handle.has_values else math.prod(handle.shape)


def _numbers(x: np.ndarray) -> np.ndarray:
    """Values as float32 or float64 (the dtypes np.dot is fast and exact enough for)."""
    if x.dtype in (np.float32, np.float64):
        return x
    if np.iscomplexobj(x):
        return np.abs(x).astype(np.float64)
    if x.dtype == np.float16:
        return x.astype(np.float32)
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    return x.astype(np.float64)


def _ratio(change: float | None, before: float | None) -> float | None:
    if change is None or before is None:
        return None
    if not (math.isfinite(change) and math.isfinite(before)):
        return None
    if before == 0:
        return 0.0 if change == 0 else math.inf
    return change / before


def _json_number(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "inf"
