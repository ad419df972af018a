"""Tensors as pictures and numbers: display arrays, statistics, histograms.

Everything here works on numpy arrays (what handles return) and returns plain data, so it can
run in a worker thread and its results can cross to the GUI thread.

Display rules (a tensor -> a 2-D float32 array, row 0 at the top like `print(tensor)`):
- 0-D: one cell; 1-D: a one-row strip; 2-D: as is;
- 4-D (conv weights, out x in x kh x kw): a mosaic of kernels, `out` rows by `in` columns of
  kernels with a one-cell gap between them (gaps are NaN in the data and flagged in
  `gap_mask`); when the mosaic would exceed the display size, the (out, in*kh*kw) matrix;
- other N-D: the 2-D slice over the last two dimensions at `slice_index`;
- larger than the display size: reduced by blocks, each block showing its signed extreme
  (the value of largest magnitude; NaN if the block has one), so one large weight or one NaN
  never vanishes.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from .handles import repeats, stored_values
from .tasks import run_to_end

DEFAULT_MAX_SIDE = 1024  # display cells per axis; more than a screen shows
HISTOGRAM_BINS = 64
REDUCE_CHUNK_BYTES = 1 << 20  # tensor bytes reduced at a time for a display array
STATS_CHUNK = 1 << 22  # elements per step of chunked statistics (progress and cancel points)


# -- display arrays -------------------------------------------------------------------------


@dataclass
class DisplayArray:
    """A tensor drawn as a 2-D float32 array, and how its cells map back to the tensor."""

    data: np.ndarray  # 2-D float32, C-contiguous, row 0 at the top
    layout: str  # "scalar" | "strip" | "matrix" | "mosaic" | "slice" | "flattened"
    shape: tuple[int, ...]  # the tensor's shape
    matrix_shape: tuple[int, int]  # the 2-D arrangement before reduction
    row_step: int = 1  # tensor rows per display row (1: not reduced)
    col_step: int = 1
    slice_index: tuple[int, ...] = ()  # fixed leading indices of a "slice" layout
    kernel: tuple[int, int] | None = None  # (kh, kw) of a "mosaic"
    gap_mask: np.ndarray | None = field(default=None, repr=False)  # True on mosaic gaps
    scale: float = 1.0  # each cell shows value / scale (values float32 cannot hold)

    def nan_mask(self) -> np.ndarray:
        """True on cells that show NaN (not on the gaps between mosaic kernels)."""
        nan = np.isnan(self.data)
        if self.gap_mask is not None:
            nan &= ~self.gap_mask
        return nan

    @property
    def reduced(self) -> bool:
        return self.row_step > 1 or self.col_step > 1

    @property
    def description(self) -> str:
        dims = " x ".join(str(s) for s in self.shape) or "scalar"
        if self.layout == "scalar":
            text = "one value"
        elif self.layout == "strip":
            text = f"{dims}, one row"
        elif self.layout == "matrix":
            text = f"{dims}, row 0 at the top"
        elif self.layout == "mosaic":
            out, inp, kh, kw = self.shape
            text = f"{dims}: {out} rows x {inp} columns of {kh}x{kw} kernels"
        elif self.layout == "slice":
            text = f"{dims}: slice [{', '.join(map(str, self.slice_index))}, :, :]"
        else:
            text = f"{dims} as {self.matrix_shape[0]} x {self.matrix_shape[1]}"
        if self.reduced:
            text += (
                f"; shown at {self.data.shape[0]} x {self.data.shape[1]}, each cell the "
                f"largest-magnitude value of a {self.row_step}x{self.col_step} block"
            )
        if self.scale != 1.0:
            text += f"; colours show values / {self.scale:.0e} (float32 cannot hold them)"
        return text

    def lookup(self, values: np.ndarray, row: int, col: int) -> tuple[tuple[int, ...], float]:
        """The tensor index and value that display cell (row, col) shows, read from the full
        tensor `values`. Raises IndexError outside the picture or on a mosaic gap."""
        rows, cols = self.data.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError("outside the tensor")
        if self.gap_mask is not None and self.gap_mask[row, col]:
            raise IndexError("between kernels")
        matrix = matrix_view(values, self)
        r0, c0 = row * self.row_step, col * self.col_step
        block = matrix[r0 : r0 + self.row_step, c0 : c0 + self.col_step]
        br, bc = _extreme_position(block)
        mr, mc = r0 + br, c0 + bc
        return self._tensor_index(mr, mc), _as_float(matrix[mr, mc])

    def _tensor_index(self, mr: int, mc: int) -> tuple[int, ...]:
        if self.layout == "scalar":
            return ()
        if self.layout == "strip":
            return (mc,)
        if self.layout == "matrix":
            return (mr, mc)
        if self.layout == "slice":
            return (*self.slice_index, mr, mc)
        if self.layout == "mosaic":
            kh, kw = self.kernel  # type: ignore[misc]
            return (mr // (kh + 1), mc // (kw + 1), mr % (kh + 1), mc % (kw + 1))
        # flattened: (out, rest) -> unravel rest over the trailing dimensions
        return (mr, *(int(i) for i in np.unravel_index(mc, self.shape[1:])))


def display_array(
    values: np.ndarray,
    max_rows: int = DEFAULT_MAX_SIDE,
    max_cols: int = DEFAULT_MAX_SIDE,
    slice_index: tuple[int, ...] | None = None,
) -> DisplayArray:
    """Any tensor's values as a DisplayArray (see the module docstring for the rules)."""
    return run_to_end(iter_display_array(values, max_rows, max_cols, slice_index))


def iter_display_array(
    values: np.ndarray,
    max_rows: int = DEFAULT_MAX_SIDE,
    max_cols: int = DEFAULT_MAX_SIDE,
    slice_index: tuple[int, ...] | None = None,
    chunk_bytes: int = REDUCE_CHUNK_BYTES,
) -> Generator[float, None, DisplayArray]:
    """`display_array` a piece at a time: yields progress in [0, 1] between pieces of at
    most `chunk_bytes` of the tensor (where a worker may cancel: closed there, it reduces
    nothing more and returns nothing), returns the DisplayArray. Memory: the display array
    and a piece, whatever the tensor's size."""
    values = np.asarray(values)
    shape = tuple(values.shape)
    layout, matrix_shape, kernel, slice_index = _layout(shape, max_rows, max_cols, slice_index)
    probe = DisplayArray(np.empty((0, 0), np.float32), layout, shape, matrix_shape)
    probe.slice_index, probe.kernel = slice_index, kernel
    matrix = matrix_view(values, probe)
    row_step = max(1, math.ceil(matrix.shape[0] / max_rows))
    col_step = max(1, math.ceil(matrix.shape[1] / max_cols))
    reduced = yield from _reduce_extremes(matrix, row_step, col_step, chunk_bytes)
    scale = _display_scale(reduced)
    data = _to_float32(reduced / scale if scale != 1.0 else reduced)
    gap_mask = None
    if layout == "mosaic":
        gap_mask = _mosaic_gaps(shape, kernel)  # type: ignore[arg-type]
        data[gap_mask] = np.nan  # data is always a fresh array (see _reduce_extremes)
    data = np.ascontiguousarray(data, dtype=np.float32)
    return DisplayArray(
        data=data,
        layout=layout,
        shape=shape,
        matrix_shape=matrix_shape,
        row_step=row_step,
        col_step=col_step,
        slice_index=slice_index,
        kernel=kernel,
        gap_mask=gap_mask,
        scale=scale,
    )


FLOAT32_MAX = 3.4e38
FLOAT32_TINY = 1e-30  # below this, float32 keeps few digits (its normal range ends at 1.2e-38)


def _display_scale(reduced: np.ndarray) -> float:
    """A power of ten to divide the display data by when float32 would turn its values into
    inf (float64 values past 3.4e38) or into 0 (below 1e-30); 1 otherwise."""
    if reduced.dtype.itemsize <= 4 or np.iscomplexobj(reduced) or not reduced.size:
        return 1.0
    magnitudes = np.abs(reduced[np.isfinite(reduced)])
    largest = float(magnitudes.max()) if magnitudes.size else 0.0
    if largest == 0.0 or FLOAT32_TINY <= largest <= FLOAT32_MAX:
        return 1.0
    return 10.0 ** math.floor(math.log10(largest))


def _layout(
    shape: tuple[int, ...], max_rows: int, max_cols: int, slice_index: tuple[int, ...] | None
) -> tuple[str, tuple[int, int], tuple[int, int] | None, tuple[int, ...]]:
    ndim = len(shape)
    if ndim == 0:
        return "scalar", (1, 1), None, ()
    if ndim == 1:
        return "strip", (1, shape[0]), None, ()
    if ndim == 2:
        return "matrix", (shape[0], shape[1]), None, ()
    if ndim == 4 and slice_index is None:
        out, inp, kh, kw = shape
        rows, cols = out * (kh + 1) - 1, inp * (kw + 1) - 1
        if rows <= max_rows and cols <= max_cols and out and inp:
            return "mosaic", (rows, cols), (kh, kw), ()
        return "flattened", (out, inp * kh * kw), None, ()
    lead = shape[:-2]
    index = tuple(slice_index or (0,) * len(lead))
    if len(index) != len(lead) or any(not 0 <= i < n for i, n in zip(index, lead, strict=True)):
        raise IndexError(f"slice index {index} does not fit leading dimensions {lead}")
    return "slice", (shape[-2], shape[-1]), None, index


def matrix_view(values: np.ndarray, display: DisplayArray) -> np.ndarray:
    """The full-resolution 2-D arrangement of `values` for a display layout (mosaic gaps
    excluded: a mosaic's matrix is built with gap cells)."""
    layout = display.layout
    if layout == "scalar":
        return values.reshape(1, 1)
    if layout == "strip":
        return values.reshape(1, -1)
    if layout == "matrix":
        return values
    if layout == "slice":
        return values[display.slice_index]
    if layout == "flattened":
        return _flattened(values)
    # mosaic: (out, in, kh, kw) -> rows of kernels with a gap row/column between them
    out, inp, kh, kw = values.shape
    padded = np.zeros((out, kh + 1, inp, kw + 1), dtype=_float_dtype(values.dtype))
    padded[:, :kh, :, :kw] = values.transpose(0, 2, 1, 3)
    return padded.reshape(out * (kh + 1), inp * (kw + 1))[:-1, :-1]


MAX_FLATTEN_COPY = 1 << 28  # elements copied to flatten a view that cannot be reshaped in place


def _flattened(values: np.ndarray) -> np.ndarray:
    """(out, in, kh, kw) as (out, in*kh*kw): a view where the strides allow (a contiguous
    tensor, an expanded one), else a copy, refused past MAX_FLATTEN_COPY elements (a crafted
    view of overlapping strides can name 10**12 elements over a few stored ones)."""
    shape = (values.shape[0], math.prod(values.shape[1:]))
    if values.size > MAX_FLATTEN_COPY:
        try:
            return np.reshape(values, shape, copy=False)
        except ValueError:
            raise ValueError(
                f"no values: a view of {values.size:,} elements whose strides cannot be "
                "flattened without copying them all"
            ) from None
        except TypeError:  # numpy before 2.1 has no copy=False: it would copy silently
            pass
    return values.reshape(shape)


def _mosaic_gaps(shape: tuple[int, ...], kernel: tuple[int, int]) -> np.ndarray:
    out, inp, _, _ = shape
    kh, kw = kernel
    rows = np.arange(out * (kh + 1) - 1) % (kh + 1) == kh
    cols = np.arange(inp * (kw + 1) - 1) % (kw + 1) == kw
    return rows[:, None] | cols[None, :]


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)


def _to_float32(a: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(a):
        a = np.abs(a)
    return a.astype(np.float32, copy=a.dtype != np.float32)


def _reduce_extremes(
    matrix: np.ndarray, row_step: int, col_step: int, chunk_bytes: int = REDUCE_CHUNK_BYTES
) -> Generator[float, None, np.ndarray]:
    """Blocks of row_step x col_step -> their signed extreme (NaN wins), a piece at a time
    (yields progress). An axis of stride 0 repeats one row (or column): it is reduced once
    and the result repeated, so a view of 10**12 elements over one stored value costs one
    value of work."""
    rows, cols = matrix.shape
    same_rows = rows > 1 and matrix.strides[0] == 0
    same_cols = cols > 1 and matrix.strides[1] == 0
    if same_rows or same_cols:
        stored = matrix[: 1 if same_rows else rows, : 1 if same_cols else cols]
        steps = (1 if same_rows else row_step, 1 if same_cols else col_step)
        reduced = yield from _reduce_extremes(stored, *steps, chunk_bytes)
        shape = (
            -(-rows // row_step) if same_rows else reduced.shape[0],
            -(-cols // col_step) if same_cols else reduced.shape[1],
        )
        return np.array(np.broadcast_to(reduced, shape))
    if matrix.dtype == np.bool_:
        matrix = matrix.view(np.uint8)
    if row_step == 1 and col_step == 1:  # a copy: the display never aliases the tensor
        return np.abs(matrix) if np.iscomplexobj(matrix) else np.array(matrix)
    hi, lo = yield from _block_max_min(matrix, row_step, col_step, chunk_bytes)
    if not np.issubdtype(hi.dtype, np.floating):
        hi, lo = hi.astype(np.float64), lo.astype(np.float64)
    return np.where(np.abs(hi) >= np.abs(lo), hi, lo)  # NaN compares False: lo is NaN too


def _block_max_min(
    matrix: np.ndarray, row_step: int, col_step: int, chunk_bytes: int
) -> Generator[float, None, tuple[np.ndarray, np.ndarray]]:
    """Max and min of every row_step x col_step block (NaN propagates; edge blocks may be
    smaller; complex values by magnitude). The matrix is taken a piece at a time, whole
    blocks of at most `chunk_bytes` (rows of blocks; parts of one row of blocks when a
    row is larger, as in a strip of 10**8 values), so max and min read a piece from cache
    and nothing larger than a piece is ever copied (a strided view, |z|); reducing rows
    this way is 20-40x faster than ufunc.reduceat along axis 0, which made a 50257x1024
    embedding take seconds. Yields progress about a hundred times at most."""
    rows, cols = matrix.shape
    n_row_blocks = -(-rows // row_step)
    n_col_blocks = -(-cols // col_step)
    complex_values = np.iscomplexobj(matrix)
    dtype = np.abs(matrix[:0, :0]).dtype if complex_values else matrix.dtype
    hi = np.empty((n_row_blocks, n_col_blocks), dtype)
    lo = np.empty((n_row_blocks, n_col_blocks), dtype)
    itemsize = matrix.itemsize
    if row_step * cols * itemsize <= chunk_bytes:  # whole rows of blocks per piece
        col_blocks = n_col_blocks
    else:
        col_blocks = max(1, chunk_bytes // max(1, row_step * col_step * itemsize))
    piece_cols = min(cols, col_blocks * col_step)
    row_blocks = max(1, chunk_bytes // max(1, row_step * piece_cols * itemsize))
    pieces = -(-n_row_blocks // row_blocks) * -(-n_col_blocks // col_blocks)
    done, reported = 0, 0.0
    for b0 in range(0, n_row_blocks, row_blocks):
        b1 = min(n_row_blocks, b0 + row_blocks)
        for c0 in range(0, n_col_blocks, col_blocks):
            c1 = min(n_col_blocks, c0 + col_blocks)
            part = matrix[b0 * row_step : b1 * row_step, c0 * col_step : c1 * col_step]
            if complex_values:
                part = np.abs(part)
            part_hi = _reduce_blocks(part, row_step, 0, np.maximum)
            part_lo = _reduce_blocks(part, row_step, 0, np.minimum)
            hi[b0:b1, c0:c1] = _reduce_blocks(part_hi, col_step, 1, np.maximum)
            lo[b0:b1, c0:c1] = _reduce_blocks(part_lo, col_step, 1, np.minimum)
            done += 1
            if done == pieces or done / pieces - reported >= 0.01:
                reported = done / pieces
                yield reported
    return hi, lo


def _reduce_blocks(a: np.ndarray, step: int, axis: int, ufunc: np.ufunc) -> np.ndarray:
    """`ufunc` over consecutive blocks of `step` along `axis` of a 2-D array (the last block
    may be shorter)."""
    if step == 1:
        return a
    n = a.shape[axis]
    full = n // step * step
    pieces = []
    if full:
        if axis == 0:
            pieces.append(ufunc.reduce(a[:full].reshape(full // step, step, a.shape[1]), axis=1))
        else:
            pieces.append(ufunc.reduce(a[:, :full].reshape(a.shape[0], full // step, step), axis=2))
    if full < n:
        tail = a[full:] if axis == 0 else a[:, full:]
        pieces.append(ufunc.reduce(tail, axis=axis, keepdims=True))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis)


def _extreme_position(block: np.ndarray) -> tuple[int, int]:
    block = stored_values(block)  # an axis of stride 0 repeats its first entry
    if block.dtype == np.bool_:
        block = block.view(np.uint8)
    mag = np.abs(block.astype(np.float64))
    nan = np.isnan(mag)
    flat = int(np.argmax(nan)) if nan.any() else int(np.argmax(mag))
    r, c = np.unravel_index(flat, block.shape)
    return int(r), int(c)


def sum_mismatch(parts: list[np.ndarray], whole: np.ndarray) -> float:
    """The largest |sum of parts - whole|: how far per-use gradients are from adding up to
    the gradient (float rounding only, when all is well)."""
    total = np.sum(parts, axis=0)
    return float(np.max(np.abs(total - whole), initial=0.0))


def symmetric_levels(data: np.ndarray) -> tuple[float, float]:
    """Colour levels (-m, m) centred at zero, m the largest finite magnitude (1 if none)."""
    finite = data[np.isfinite(data)]
    m = float(np.abs(finite).max()) if finite.size else 0.0
    if m == 0.0:
        m = 1.0
    return -m, m


def _as_float(x: object) -> float:
    return float(np.abs(x)) if np.iscomplexobj(x) else float(x)  # type: ignore[arg-type]


# -- statistics and histograms --------------------------------------------------------------


@dataclass
class TensorStats:
    """Statistics over a tensor's finite values, and counts of the others."""

    count: int  # all elements
    finite: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None  # sample standard deviation (like torch.std), 0 for one value
    norm: float | None  # L2 norm of the finite values
    sum: float | None
    zero_fraction: float | None
    nan_count: int
    inf_count: int
    histogram: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    note: str | None = None  # what the numbers are of, when not plainly the values

    def as_dict(self) -> dict[str, float | int | str | None]:
        """The JSON `stats` object: numbers, or "inf" / "-inf" for a sum, norm or standard
        deviation past the float64 range (values near 1.7e308 add up past it)."""
        out: dict[str, float | int | str | None] = {
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": _json_number(self.std),
            "norm": _json_number(self.norm),
            "sum": _json_number(self.sum),
            "zero_fraction": self.zero_fraction,
            "nan": self.nan_count,
            "inf": self.inf_count,
        }
        if self.note:
            out["note"] = self.note
        return out


def _json_number(x: float | None) -> float | str | None:
    return x if x is None or math.isfinite(x) else str(x)


def histogram_bins(count: int) -> int:
    """Enough bins to show a shape, few enough that a small tensor is not all spikes."""
    return int(min(HISTOGRAM_BINS, max(8, round(2 * math.sqrt(count)))))


def _numbers(values: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The real numbers statistics are computed over, and what they are if not the values:
    magnitudes of complex values, 0 and 1 for booleans."""
    if values.dtype == np.bool_:
        return values.view(np.uint8), "of true = 1, false = 0"
    if np.iscomplexobj(values):
        return np.abs(values), "of the magnitudes |z| of complex values"
    return values, None


def value_chunks(values: np.ndarray, chunk: int, order: str = "K"):
    """1-D pieces of at most `chunk` elements covering `values` (in memory order, or "C":
    row-major), copying one piece at a time: a transposed or strided view is never copied
    whole."""
    if values.flags.c_contiguous or values.ndim <= 1:
        flat = values.reshape(-1)
        for start in range(0, flat.size, chunk):
            yield flat[start : start + chunk]
        return
    if values.size == 0:
        return
    iterator = np.nditer(
        values, flags=["external_loop", "buffered", "zerosize_ok"], buffersize=chunk, order=order
    )
    for piece in iterator:
        yield piece.copy()  # the iterator reuses its buffer


@dataclass
class _Moments:
    """Running count, mean, sum of squared deviations, sum and sum of squares (Chan et al.'s
    merge, numerically stable), of values divided by `scale`."""

    scale: float = 1.0
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    total: float = 0.0
    sumsq: float = 0.0

    def add(self, part: np.ndarray) -> None:
        """Add the finite values `part` (any real dtype: summed in float64)."""
        if self.scale != 1.0:
            part = part / self.scale
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected by `exact`
            self._add(part)

    def _add(self, part: np.ndarray) -> None:
        k = part.size
        part_sum = float(np.add.reduce(part, dtype=np.float64))  # no float64 copy for this
        part_mean = part_sum / k
        deviations = part.astype(np.float64)  # one copy of the chunk, made in place below
        deviations -= part_mean
        part_m2 = float(np.dot(deviations, deviations))
        delta = part_mean - self.mean
        self.m2 += part_m2 + delta * delta * self.n * k / (self.n + k)
        self.mean += delta * k / (self.n + k)
        self.n += k
        self.total += part_sum
        self.sumsq += part_m2 + k * part_mean * part_mean  # the sum of squares, from the same

    @property
    def exact(self) -> bool:
        """False when a sum left the float64 range (overflow to inf, or NaN from inf - inf)."""
        return all(math.isfinite(x) for x in (self.mean, self.m2, self.total, self.sumsq))


def _scale_for(largest: float) -> float:
    """A power of two that brings magnitudes near 1: 1 for ordinary values, so squares and
    sums of values near 1.7e308 (or 1e-310) neither overflow nor underflow."""
    if largest == 0.0 or 1e-100 < largest < 1e100:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)  # 2**1023 at most: finite


def iter_tensor_stats(
    values: np.ndarray, bins: int | None = None, chunk: int = STATS_CHUNK
) -> Generator[float, None, TensorStats]:
    """Statistics and histogram in chunks: yields progress in [0, 1] between chunks (the
    places where a worker may cancel: closed there, it computes nothing more and returns
    nothing), returns TensorStats. Two passes over the values (moments and range, then the
    histogram once the range is known), a third over scaled values only when values are so
    large or small that plain sums leave the float64 range. Memory: a few copies of one
    chunk (`chunk` elements), whatever the tensor's size; a tensor read from a file is
    read from its map a chunk at a time.

    The histogram is numpy's, `np.histogram(finite values, bins, range=(min, max))`, made a
    chunk at a time (bins of equal width, as numpy makes them).

    An axis of stride 0 (an expanded tensor) repeats its values: statistics are computed
    from the values stored, each counted as often as it is seen, so 10**12 elements of one
    stored value cost one element of work."""
    values = np.asarray(values)
    repeat = repeats(values)
    stored, note = _numbers(stored_values(values))
    n_stored = stored.size
    steps = max(1, math.ceil(n_stored / chunk)) * 2
    floating = stored.dtype.kind == "f"
    moments = _Moments()
    lo, hi = math.inf, -math.inf
    zeros = nans = infs = 0
    for step, piece in enumerate(value_chunks(stored, chunk)):
        if not piece.size:
            continue
        part = piece
        if floating:
            with np.errstate(invalid="ignore"):
                low, high = float(piece.min()), float(piece.max())  # NaN if any is NaN
            if not (math.isfinite(low) and math.isfinite(high)):
                finite = np.isfinite(piece)
                nan_here = int(np.isnan(piece).sum())
                nans += nan_here
                infs += piece.size - int(np.count_nonzero(finite)) - nan_here
                part = piece[finite]
                if part.size:
                    low, high = float(part.min()), float(part.max())
        elif part.size:
            low, high = float(part.min()), float(part.max())
        if part.size:
            moments.add(part)
            lo, hi = min(lo, low), max(hi, high)
            zeros += int(part.size - np.count_nonzero(part))
        yield (step + 1) / steps
    n = moments.n
    scale = _scale_for(max(abs(lo), abs(hi))) if n else 1.0
    if n and (scale != 1.0 or not moments.exact):
        moments = _Moments(scale=scale)
        for piece in value_chunks(stored, chunk):
            part = piece[np.isfinite(piece)] if floating else piece
            if part.size:
                moments.add(part)
    hist = None
    if n:
        count = bins or histogram_bins(n * repeat)
        widen = stored.dtype == np.float16  # numpy would make float16 edges and bin indices
        # the range as numpy finds it itself (the minimum and maximum in the values' dtype):
        # it computes bins in that dtype, and a float64 range would put some values in the
        # bin beside the one np.histogram(values) puts them in
        empty = stored.reshape(-1)[:0]
        value_type = np.float32 if widen else stored.dtype.type
        bounds = (value_type(lo), value_type(hi)) if stored.dtype.kind in "fiu" else (lo, hi)
        edges = _equal_width_edges(empty.astype(np.float32) if widen else empty, *bounds, count)
        equal_width = edges is not None
        if edges is None:
            edges = _histogram_edges(lo, hi, count)
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        for step, piece in enumerate(value_chunks(stored, chunk)):
            if widen:
                piece = piece.astype(np.float32)
            with np.errstate(invalid="ignore"):  # NaN and Inf fall outside the range
                if equal_width:
                    counts += np.histogram(piece, bins=count, range=bounds)[0]
                else:
                    part = piece[np.isfinite(piece)] if floating else piece
                    counts += np.histogram(part, bins=edges)[0]
            yield 0.5 + (step + 1) / steps
        hist = (counts * repeat, edges)
    if repeat > 1:
        plural = "s" if n_stored != 1 else ""
        seen = f"{n_stored:,} stored value{plural}, each seen {repeat:,} times (stride 0)"
        note = f"{note}; from {seen}" if note else f"from {seen}"
    s = moments.scale
    return TensorStats(
        count=n_stored * repeat,
        finite=n * repeat,
        min=lo if n else None,
        max=hi if n else None,
        mean=moments.mean * s if n else None,
        std=_times(math.sqrt(moments.m2 * repeat / (n * repeat - 1)), s)
        if n * repeat > 1
        else (0.0 if n else None),
        norm=_times(math.sqrt(moments.sumsq * repeat), s) if n else None,
        sum=_times(moments.total * repeat, s) if n else None,
        zero_fraction=zeros / n if n else None,
        nan_count=nans * repeat,
        inf_count=infs * repeat,
        histogram=hist,
        note=note,
    )


def _times(x: float, scale: float) -> float:
    """x * scale, inf when the product leaves the float64 range (no OverflowError)."""
    try:
        return x * scale
    except OverflowError:  # pragma: no cover - float multiplication gives inf, not this
        return math.copysign(math.inf, x)


def _equal_width_edges(empty: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray | None:
    """The edges `np.histogram(values, bins, range=(lo, hi))` makes for values of the dtype
    of `empty` (an empty array of it), or None when numpy cannot make them (a range past
    float64's, or too narrow for the dtype: subnormal float32 values)."""
    if not (hi > lo and math.isfinite(float(hi) - float(lo))):  # Python floats: no warning
        return None
    try:
        return np.histogram(empty, bins=bins, range=(lo, hi))[1]
    except ValueError:
        return None


def _histogram_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """Bin edges from lo to hi; computed from halves when hi - lo leaves the float64 range
    (-1.7e308 to 1.7e308), and around the value when all values are equal."""
    if hi > lo:
        if math.isfinite(hi - lo):
            return np.linspace(lo, hi, bins + 1)
        edges = np.linspace(lo / 2, hi / 2, bins + 1) * 2
        edges[0], edges[-1] = lo, hi  # exact ends, whatever the rounding
        return edges
    d = max(0.5, abs(lo) * 2**-20)
    left, right = lo - d, hi + d
    return np.array([left if math.isfinite(left) else lo, right if math.isfinite(right) else hi])


def tensor_stats(values: np.ndarray, bins: int | None = None) -> TensorStats:
    """Statistics and histogram of a tensor's values, all at once."""
    return run_to_end(iter_tensor_stats(values, bins))
