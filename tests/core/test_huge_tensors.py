"""Huge tensors, small here: statistics, histograms and display arrays made a chunk at a
time (a chunk size makes a million-element tensor hundreds of chunks) equal those of the
whole array; stopping between chunks computes nothing more; the cache of shown tensors
stays within its byte budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netexplorer.core import display
from netexplorer.core.display import (
    display_array,
    iter_display_array,
    iter_tensor_stats,
    tensor_stats,
)
from netexplorer.core.display_cache import DisplayCache, owned_bytes
from netexplorer.core.tasks import run_to_end

N = 1_000_000
CHUNK = 7_919  # elements per chunk of statistics: 127 chunks, the last one short


def _values(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    if dtype == "bool":
        return rng.random(N) < 0.3
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), N).astype(dtype)
    if dtype.startswith("complex"):
        return (rng.standard_normal(N) + 1j * rng.standard_normal(N)).astype(dtype)
    values = (rng.standard_normal(N) * 3).astype(dtype)
    values[::1000] = 0
    values[5] = np.nan
    values[7] = np.inf
    values[11] = -np.inf
    return values


def _reference(values: np.ndarray) -> np.ndarray:
    """The real numbers statistics are of, each element once, in float64."""
    numbers = np.abs(values) if np.iscomplexobj(values) else values
    return numbers.astype(np.float64).reshape(-1)


DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int32", "int64", "bool", "complex64"]


def _views(values: np.ndarray) -> dict[str, np.ndarray]:
    matrix = values.reshape(1000, 1000)
    return {
        "contiguous": values,
        "transposed": matrix.T,
        "every-third": values[::3],
        "stride-0": np.broadcast_to(values[:1000], (1000, 1000)),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", ["contiguous", "transposed", "every-third", "stride-0"])
def test_chunked_statistics_equal_those_of_the_whole_array(dtype, view):
    values = _views(_values(dtype))[view]
    chunked = run_to_end(iter_tensor_stats(values, chunk=CHUNK))
    numbers = _reference(np.ascontiguousarray(values))
    finite = numbers[np.isfinite(numbers)]
    assert chunked.count == values.size
    assert chunked.nan_count == int(np.isnan(numbers).sum())
    assert chunked.inf_count == int(np.isinf(numbers).sum())
    assert chunked.finite == finite.size
    assert (chunked.min, chunked.max) == (finite.min(), finite.max())
    assert chunked.mean == pytest.approx(finite.mean(), rel=1e-9, abs=1e-12)
    assert chunked.std == pytest.approx(finite.std(ddof=1), rel=1e-9)
    assert chunked.sum == pytest.approx(finite.sum(), rel=1e-9, abs=1e-9)
    assert chunked.norm == pytest.approx(math.sqrt(np.dot(finite, finite)), rel=1e-9)
    assert chunked.zero_fraction == np.count_nonzero(finite == 0) / finite.size
    whole = tensor_stats(values)  # one chunk of 4M elements
    assert (whole.min, whole.max, whole.finite) == (chunked.min, chunked.max, chunked.finite)
    np.testing.assert_array_equal(whole.histogram[0], chunked.histogram[0])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int64", "uint8"])
def test_the_histogram_is_numpys(dtype):
    values = _values(dtype)
    stats = run_to_end(iter_tensor_stats(values, bins=50, chunk=CHUNK))
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    counts, edges = np.histogram(finite, bins=50, range=(finite.min(), finite.max()))
    np.testing.assert_array_equal(stats.histogram[0], counts)
    np.testing.assert_array_equal(stats.histogram[1], edges)
    if dtype in ("float32", "float64"):  # without NaN and Inf, numpy's own range too
        plain = finite.astype(dtype)
        stats = run_to_end(iter_tensor_stats(plain, bins=64, chunk=CHUNK))
        np.testing.assert_array_equal(stats.histogram[0], np.histogram(plain, bins=64)[0])


def _counting_chunks(monkeypatch) -> list[int]:
    """How many chunks the statistics read, patched into display.value_chunks."""
    read: list[int] = []
    real = display.value_chunks

    def counted(values, chunk, order="K"):
        for piece in real(values, chunk, order):
            read.append(piece.size)
            yield piece

    monkeypatch.setattr(display, "value_chunks", counted)
    return read


def test_statistics_stopped_between_chunks_compute_nothing_more(monkeypatch):
    read = _counting_chunks(monkeypatch)
    work = iter_tensor_stats(_values("float32"), chunk=CHUNK)
    progress = [next(work) for _ in range(3)]
    work.close()  # what a worker does when a newer request supersedes it
    assert progress == sorted(progress) and progress[-1] < 0.5
    assert len(read) == 3  # of 2 x 127 chunks
    with pytest.raises(StopIteration) as done:  # closed: it returns nothing
        next(work)
    assert done.value.value is None


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(2).standard_normal(N).astype(np.float32),  # a strip
        np.random.default_rng(3).standard_normal((3000, 333)).astype(np.float64).T,  # strided
        np.random.default_rng(4).integers(-9, 9, (2500, 400)).astype(np.int16),
        (np.random.default_rng(5).standard_normal((1200, 900)) * 1j).astype(np.complex64),
        np.random.default_rng(6).random((1500, 700)) < 0.5,
        np.broadcast_to(np.arange(3000.0), (2000, 3000)),  # stride 0
        np.random.default_rng(7).standard_normal((40, 30, 50, 20)).astype(np.float32),
    ],
    ids=["strip", "transposed", "int16", "complex", "bool", "stride-0", "4-d"],
)
def test_display_arrays_made_in_small_pieces_equal_those_made_at_once(values):
    at_once = display_array(values)
    pieces = iter_display_array(values, chunk_bytes=4096)
    steps = 0
    while True:
        try:
            next(pieces)
            steps += 1
        except StopIteration as done:
            in_pieces = done.value
            break
    np.testing.assert_array_equal(in_pieces.data, at_once.data)
    assert (in_pieces.row_step, in_pieces.col_step) == (at_once.row_step, at_once.col_step)
    assert steps <= 101  # progress about a hundred times at most


def test_a_display_reduction_stopped_between_pieces_reduces_nothing_more(monkeypatch):
    pieces: list[int] = []
    real = display._reduce_blocks

    def counted(a, step, axis, ufunc):
        if axis == 0 and ufunc is np.maximum:
            pieces.append(a.size)
        return real(a, step, axis, ufunc)

    monkeypatch.setattr(display, "_reduce_blocks", counted)
    work = iter_display_array(np.ones((4000, 3000), np.float32), chunk_bytes=1 << 16)
    next(work)
    next(work)
    work.close()
    assert 0 < len(pieces) < 200  # of about 1,000 pieces


def test_the_cache_drops_the_least_recently_used_past_its_bytes():
    cache = DisplayCache(max_bytes=100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", 40)  # 120 > 100: b goes
    assert "b" not in cache and cache.get("a") == "A" and cache.get("c") == "C"
    assert cache.bytes == 80
    cache.put("huge", "H", 101)  # larger than the whole budget: not kept, nothing dropped
    assert "huge" not in cache and len(cache) == 2
    cache.put("a", "A2", 70)  # replaced: its old bytes no longer count
    assert cache.bytes <= 100 and cache.get("a") == "A2"
    for i in range(100):
        cache.put(i, i, i % 37)
        assert cache.bytes <= 100


def test_values_read_from_a_files_map_hold_no_memory_of_their_own(tmp_path):
    path = tmp_path / "m.bin"
    np.arange(1000, dtype=np.float32).tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    view = np.asarray(mapped[40:4000]).view(np.float32).reshape(craft := (craft_rows := 10, 99))
    assert owned_bytes(view) == 0 and craft[0] == craft_rows
    decoded = view.astype(np.float64)
    assert owned_bytes(decoded) == decoded.nbytes
    assert owned_bytes(decoded[::2]) == decoded.nbytes  # a view holds what it views
