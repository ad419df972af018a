"""Strange tensors through everything core shows of them: values, display array, hover
lookup, statistics, histogram and the JSON description. Each is saved by torch.save and read
back (by netexplorer's own reader, or torch's loader where only torch builds it), and also
wrapped live; each gives something truthful, or says why it has no values."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from checkpoint_builders import write_torch

from netexplorer.core.describe import describe, to_json
from netexplorer.core.display import display_array, tensor_stats
from netexplorer.core.handles import TorchHandle
from netexplorer.core.sources import open_source
from netexplorer.core.tree import tree_from_entries

HUGE = 1.7e308


def _quantized() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, still saved
        return torch.quantize_per_tensor(torch.tensor([-1.0, 0.5, 2.0]), 0.5, 0, torch.qint8)


STRANGE = {
    "nan_all": lambda: torch.full((3, 4), math.nan),
    "nan_some": lambda: torch.tensor([1.0, math.nan, -2.0, math.nan]),
    "inf_all": lambda: torch.tensor([math.inf, -math.inf]),
    "inf_some": lambda: torch.tensor([math.inf, 3.0, -1.0]),
    "huge": lambda: torch.tensor([HUGE, -HUGE, 1.0, 0.0], dtype=torch.float64),
    "tiny64": lambda: torch.tensor([5e-324, 1e-320, 0.0], dtype=torch.float64),
    "tiny32": lambda: torch.tensor([1e-45, -1e-45, 3e-45]),
    "empty": lambda: torch.zeros(0, 5),
    "scalar": lambda: torch.tensor(2.5),
    "complex": lambda: torch.tensor([3 + 4j, -1j]),
    "bool": lambda: torch.tensor([True, False, True, True]),
    "int8": lambda: torch.tensor([-128, 0, 127], dtype=torch.int8),
    "uint8": lambda: torch.tensor([0, 200, 255], dtype=torch.uint8),
    "bf16": lambda: torch.tensor([1.5, -2.25, 3e38], dtype=torch.bfloat16),
    "fp16": lambda: torch.tensor([65504.0, -0.5, 6e-8], dtype=torch.float16),
    "f8_e4m3": lambda: torch.tensor([448.0, -0.25, 1.0]).to(torch.float8_e4m3fn),
    "f8_e5m2": lambda: torch.tensor([57344.0, -0.5, math.inf]).to(torch.float8_e5m2),
    "stride0": lambda: torch.full((1,), 0.5).expand(2**20, 2**20),
    "stride0_rows": lambda: torch.arange(4.0).reshape(1, 4).expand(2**30, 4),
    "transposed": lambda: torch.arange(12.0).reshape(3, 4).t(),
    "stepped": lambda: torch.arange(20.0)[::3],
    "sparse": lambda: torch.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse(),
    "quantized": _quantized,
}


def _reference(t: torch.Tensor) -> np.ndarray:
    """What the values are, by torch (dense float or the plain dtype), never expanded."""
    if t.is_quantized:
        t = t.dequantize()
    if t.layout is not torch.strided:
        t = t.to_dense()
    if t.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        t = t.float()
    return t.numpy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tensors = {name: make() for name, make in STRANGE.items()}
    path = write_torch(tmp_path_factory.mktemp("strange") / "strange.pt", tensors)
    return tensors, open_source(str(path))


@pytest.mark.parametrize("name", STRANGE)
def test_values_display_and_statistics_are_truthful(saved, name):
    tensors, tree = saved
    t = tensors[name]
    handle = tree.tensors[name].handle
    assert handle.no_values_reason is None
    values = handle.array()
    assert values.shape == tuple(t.shape)
    small = t.numel() <= 10**6
    if small:
        np.testing.assert_array_equal(values, _reference(t))
    display = display_array(values)
    assert display.data.dtype == np.float32 and display.data.ndim == 2
    stats = tensor_stats(values)
    assert stats.count == t.numel()
    as_json = json.loads(json.dumps(stats.as_dict(), allow_nan=False))
    if small:
        expected = np.asarray(_reference(t), dtype=np.complex128 if t.is_complex() else None)
        numbers = np.abs(expected) if t.is_complex() else expected.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        assert stats.nan_count == int(np.isnan(numbers).sum())
        assert stats.inf_count == int(np.isinf(numbers).sum())
        assert stats.finite == finite.size
        if finite.size:
            assert (stats.min, stats.max) == (finite.min(), finite.max())
            assert stats.mean == pytest.approx(finite.mean(), rel=1e-12, abs=0)
            assert sum(stats.histogram[0]) == finite.size
            assert np.all(np.diff(stats.histogram[1]) > 0)
            assert np.all(np.isfinite(stats.histogram[1]))
        else:
            assert stats.min is None and stats.histogram is None and as_json["mean"] is None


def test_values_near_the_float64_limit_add_up_exactly_where_float64_can():
    stats = tensor_stats(STRANGE["huge"]().numpy())
    assert stats.sum == 1.0 and stats.mean == 0.25  # the two huge values cancel
    assert stats.std == pytest.approx(HUGE * math.sqrt(2 / 3))
    assert stats.norm == math.inf  # sqrt(2) * 1.7e308 is past float64: said, not NaN
    assert stats.as_dict()["norm"] == "inf"
    edges = stats.histogram[1]
    assert edges[0] == -HUGE and edges[-1] == HUGE


def test_tiny_values_do_not_vanish_in_their_squares():
    stats = tensor_stats(STRANGE["tiny64"]().numpy())
    assert stats.norm == pytest.approx(math.hypot(5e-324, 1e-320), rel=1e-3)
    assert stats.std > 0 and stats.zero_fraction == pytest.approx(1 / 3)


@pytest.mark.parametrize("name", ["stride0", "stride0_rows"])
def test_a_stride_0_tensor_shows_its_stored_values(saved, name):
    """10**12 elements over one stored value: statistics and heatmap are those of the
    stored values, each counted as often as it is seen, computed without expanding."""
    tensors, tree = saved
    t = tensors[name]
    values = tree.tensors[name].handle.array()
    stored = t[tuple(slice(0, 1) if s == 0 else slice(None) for s in t.stride())].numpy()
    repeat = t.numel() // stored.size
    stats = tensor_stats(values)
    assert stats.count == t.numel() and stats.finite == t.numel()
    assert stats.mean == pytest.approx(float(stored.mean()))
    assert stats.sum == pytest.approx(float(stored.sum()) * repeat)
    assert stats.norm == pytest.approx(float(np.linalg.norm(stored)) * math.sqrt(repeat))
    assert sum(stats.histogram[0]) == t.numel()
    assert "stride 0" in stats.note
    display = display_array(values)
    assert display.data.shape[0] <= 1024 and display.data.shape[1] <= 1024
    np.testing.assert_array_equal(display.data[0], display.data[-1])
    index, value = display.lookup(values, display.data.shape[0] - 1, 1)
    assert value == float(t[index])


def test_complex_and_bool_statistics_say_what_they_are_of(saved):
    _, tree = saved
    assert "magnitudes" in tensor_stats(tree.tensors["complex"].handle.array()).note
    bool_stats = tensor_stats(tree.tensors["bool"].handle.array())
    assert "true = 1" in bool_stats.note and bool_stats.mean == 0.75


def test_the_json_of_strange_tensors_is_strict_json(saved):
    _, tree = saved
    out = json.loads(to_json(describe(tree)))  # allow_nan=False inside
    by_path = {t["path"]: t for t in out["parameters"] + out["buffers"]}
    assert by_path["huge"]["stats"]["norm"] == "inf"
    assert by_path["nan_all"]["stats"]["min"] is None and by_path["nan_all"]["stats"]["nan"] == 12
    assert by_path["stride0"]["stats"]["mean"] == 0.5


def test_tensors_without_values_say_why(tmp_path):
    meta = torch.empty(3, 4, device="meta")
    many_dims = torch.zeros([1] * 65)
    broken = torch.sparse_coo_tensor(
        torch.tensor([[0, 100]]), torch.ones(2), (3,), check_invariants=False
    )
    path = write_torch(tmp_path / "novalues.pt", {"many_dims": many_dims, "broken": broken})
    tree = open_source(str(path))
    reasons = {k: n.handle.no_values_reason for k, n in tree.tensors.items()}
    assert "65 dimensions" in reasons["many_dims"]
    assert "sparse indices are invalid" in reasons["broken"]
    live = tree_from_entries([("meta", TorchHandle(meta))])
    reasons["meta"] = live.tensors["meta"].handle.no_values_reason
    assert "meta tensor" in reasons["meta"]
    for handle in [*(n.handle for n in tree.tensors.values()), live.tensors["meta"].handle]:
        assert not handle.has_values
        with pytest.raises(ValueError, match="no values"):
            handle.array()
    out = describe(tree)
    for entry in out["parameters"] + out["buffers"]:
        assert entry["stats"] is None and entry["no_values"] == reasons[entry["path"]]


def test_live_strange_tensors_read_the_same(saved):
    tensors, tree = saved
    for name in ("bf16", "f8_e5m2", "transposed", "stride0", "complex", "quantized"):
        live = TorchHandle(tensors[name])
        if tensors[name].is_quantized:
            continue  # a live model holds no quantized parameters; the file reader covers it
        ours, theirs = tree.tensors[name].handle.array(), live.array()
        if tensors[name].numel() <= 10**6:
            np.testing.assert_array_equal(ours, theirs)
        assert tensor_stats(ours).as_dict() == tensor_stats(theirs).as_dict()


def test_a_view_that_cannot_be_flattened_without_copying_everything_says_so():
    crafted = np.lib.stride_tricks.as_strided(
        np.zeros(10, np.float32), (1024, 1024, 1024, 1024), (0, 4, 0, 0)
    )
    with pytest.raises(ValueError, match="cannot be flattened without copying them all"):
        display_array(crafted)
    expanded = np.broadcast_to(np.float32(2.0), (1024,) * 4)  # all strides 0: a view
    assert display_array(expanded).data.max() == 2.0


@pytest.mark.parametrize(
    "values, scale",
    [(np.array([1.7e308, -1.7e308, 1.0]), 1e308), (np.array([5e-324, 1e-320, 0.0]), 1e-321)],
    ids=["huge", "tiny"],
)
def test_values_float32_cannot_hold_are_shown_scaled_and_said(values, scale):
    display = display_array(values)
    assert display.scale == scale and np.all(np.isfinite(display.data))
    assert display.data.max() > 1  # not flattened to zero or inf by float32
    assert f"values / {scale:.0e}" in display.description
    assert display.lookup(values, 0, 0) == ((0,), float(values[0]))  # hover: the true value


def test_a_view_naming_far_more_elements_than_it_stores_has_no_values(tmp_path):
    """unfold reads each element a few times; strides (1, 1) over (2**20, 2**20) read 2**21
    stored floats 500,000 times each: statistics would read 10**12 values."""
    base = torch.arange(2.0**21)
    sd = {"unfolded": base[:64].unfold(0, 8, 1), "crafted": base.as_strided((2**20, 2**20), (1, 1))}
    tree = open_source(str(write_torch(tmp_path / "views.pt", sd)))
    assert tree.tensors["unfolded"].handle.no_values_reason is None
    np.testing.assert_array_equal(tree.tensors["unfolded"].handle.array(), sd["unfolded"].numpy())
    assert "its strides overlap" in tree.tensors["crafted"].handle.no_values_reason
    assert "its strides overlap" in TorchHandle(sd["crafted"]).no_values_reason
