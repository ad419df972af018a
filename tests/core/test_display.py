"""Tensors to display arrays, statistics and histograms."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netexplorer.core.display import display_array, symmetric_levels, tensor_stats
from netexplorer.core.handles import TorchHandle, decode_raw


def test_matrix_is_shown_as_is_row_zero_first():
    w = np.arange(32, dtype=np.float32).reshape(8, 4)
    d = display_array(w)
    assert d.layout == "matrix" and d.data.shape == (8, 4)
    assert d.data[0, 3] == 3 and d.data[7, 0] == 28
    assert d.data.flags.c_contiguous and d.data.dtype == np.float32
    assert not np.shares_memory(d.data, w)  # the display never aliases the tensor


def test_vector_is_a_one_row_strip_and_scalar_one_cell():
    d = display_array(np.arange(5, dtype=np.float32))
    assert d.layout == "strip" and d.data.shape == (1, 5)
    assert d.lookup(np.arange(5, dtype=np.float32), 0, 3) == ((3,), 3.0)
    s = display_array(np.array(2.5, dtype=np.float32))
    assert s.layout == "scalar" and s.data.shape == (1, 1) and s.data[0, 0] == 2.5
    assert s.lookup(np.array(2.5), 0, 0) == ((), 2.5)


def test_conv_weights_become_a_mosaic_of_kernels_with_gaps():
    w = np.random.default_rng(0).normal(size=(6, 3, 5, 5)).astype(np.float32)
    d = display_array(w)
    assert d.layout == "mosaic"
    assert d.data.shape == (6 * 6 - 1, 3 * 6 - 1)
    # kernel (o=2, i=1) sits at rows 12..16, columns 6..10
    np.testing.assert_array_equal(d.data[12:17, 6:11], w[2, 1])
    assert np.isnan(d.data[5, 0]) and d.gap_mask[5, 0]  # a gap row between kernels
    assert not d.nan_mask().any()  # gaps are not NaN values
    assert d.lookup(w, 13, 9) == ((2, 1, 1, 3), float(w[2, 1, 1, 3]))
    with pytest.raises(IndexError):
        d.lookup(w, 5, 0)


def test_huge_conv_weights_fall_back_to_a_flattened_matrix():
    w = np.zeros((512, 512, 3, 3), dtype=np.float32)
    d = display_array(w)
    assert d.layout == "flattened" and d.matrix_shape == (512, 512 * 9)
    w[3, 7, 2, 1] = 9.0
    d = display_array(w)
    r, c = np.unravel_index(np.argmax(d.data), d.data.shape)
    assert d.lookup(w, r, c) == ((3, 7, 2, 1), 9.0)


def test_other_nd_tensors_show_a_chosen_slice():
    t = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    d = display_array(t, slice_index=(1,))
    assert d.layout == "slice" and d.data.shape == (3, 4)
    np.testing.assert_array_equal(d.data, t[1])
    assert d.lookup(t, 2, 1) == ((1, 2, 1), float(t[1, 2, 1]))
    assert display_array(t).slice_index == (0,)
    with pytest.raises(IndexError):
        display_array(t, slice_index=(2,))


def test_reduction_keeps_a_single_large_weight_and_a_single_nan():
    t = np.zeros((50257, 64), dtype=np.float32)
    t[31337, 17] = -7.5
    t[100, 3] = np.nan
    d = display_array(t, max_rows=1000, max_cols=1000)
    assert d.reduced and d.data.shape[0] <= 1000
    assert np.nanmin(d.data) == -7.5  # the one large weight survives, with its sign
    assert np.isnan(d.data).sum() == 1  # and so does the one NaN
    r, c = np.argwhere(d.data == -7.5)[0]
    assert d.lookup(t, r, c) == ((31337, 17), -7.5)  # hover reads the full tensor
    assert symmetric_levels(d.data) == (-7.5, 7.5)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 60), st.integers(1, 60)),
        elements=st.floats(-1e6, 1e6, width=32),
    ),
    st.integers(1, 9),
    st.integers(1, 9),
)
def test_reduction_preserves_the_largest_magnitude(values, max_rows, max_cols):
    d = display_array(values, max_rows=max_rows, max_cols=max_cols)
    assert d.data.shape[0] <= max_rows and d.data.shape[1] <= max_cols
    assert np.abs(d.data).max() == np.abs(values).max()


@pytest.mark.parametrize(
    ("dtype", "expect"),
    [
        (torch.bfloat16, [1.5, -2.0]),
        (torch.float16, [1.5, -2.0]),
        (torch.int8, [1.0, -2.0]),
        (torch.bool, [1.0, 0.0]),
    ],
)
def test_low_precision_and_integer_dtypes_display_as_float32(dtype, expect):
    t = torch.tensor([1.5, -2.0]).to(dtype) if dtype != torch.bool else torch.tensor([True, False])
    values = TorchHandle(t).array()
    d = display_array(values)
    assert d.data.dtype == np.float32
    assert d.data.tolist() == [expect]


def test_decode_raw_bfloat16_and_float8():
    ref = torch.tensor([1.0, -3.5, 0.15625, float("inf")])
    raw = ref.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(decode_raw(raw, "bfloat16"), ref.to(torch.bfloat16).float())
    for name in ("float8_e4m3fn", "float8_e5m2"):
        dtype = getattr(torch, name)
        codes = torch.arange(256, dtype=torch.uint8)
        expected = codes.view(dtype).float().numpy()
        np.testing.assert_array_equal(decode_raw(codes.numpy(), name), expected)


def test_statistics_match_torch():
    t = torch.randn(300, 70, generator=torch.Generator().manual_seed(1)) * 3 + 1
    t[0, :5] = 0
    s = tensor_stats(t.numpy())
    assert s.min == pytest.approx(t.min().item())
    assert s.max == pytest.approx(t.max().item())
    assert s.mean == pytest.approx(t.mean().item(), rel=1e-5)
    assert s.std == pytest.approx(t.std().item(), rel=1e-5)  # sample std, like torch
    assert s.norm == pytest.approx(t.norm().item(), rel=1e-5)
    assert s.sum == pytest.approx(t.sum().item(), rel=1e-4)
    assert s.zero_fraction == pytest.approx(5 / t.numel())
    counts, edges = s.histogram
    assert counts.sum() == t.numel() and edges[0] == s.min and edges[-1] == s.max


def test_statistics_count_nan_and_inf_and_use_finite_values():
    t = np.array([1.0, np.nan, 3.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    s = tensor_stats(t)
    assert (s.nan_count, s.inf_count, s.finite) == (2, 2, 2)
    assert (s.min, s.max, s.mean, s.sum) == (1.0, 3.0, 2.0, 4.0)
    assert s.norm == pytest.approx(math.sqrt(10))
    assert s.histogram[0].sum() == 2
    assert all(v is None or math.isfinite(v) for v in s.as_dict().values())


def test_statistics_of_all_nan_are_none_and_chunks_merge_exactly():
    s = tensor_stats(np.full(4, np.nan, dtype=np.float32))
    assert s.min is None and s.std is None and s.nan_count == 4
    from netexplorer.core.display import iter_tensor_stats

    values = np.random.default_rng(3).normal(5, 2, size=10_001)
    gen = iter_tensor_stats(values, chunk=997)  # many chunks: the merge must be exact
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as done:
            chunked = done.value
            break
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert chunked.std == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert chunked.mean == pytest.approx(values.mean(), rel=1e-12)
