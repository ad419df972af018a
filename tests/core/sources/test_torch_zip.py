"""Torch zip files read without torch (core/sources/torch_zip.py): the same tree as
`torch.load(weights_only=True)` gives, torch not imported, everything else left to torch."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import (
    example_net,
    lightning_checkpoint,
    mixed_state_dict,
    training_dict,
    write_torch,
)

from netexplorer.core.describe import describe
from netexplorer.core.errors import SourceError, UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source, torch_file
from netexplorer.core.sources.torch_zip import NotPlain, StoredTensorHandle, read_plain_zip


def _views() -> dict[str, torch.Tensor]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "base": base,
        "transposed": base.t(),  # strides (1, 6)
        "rows": base[1:3],  # an offset into the same storage
        "every_other": base[:, ::2],
        "expanded": torch.ones(3, 1).expand(3, 4),  # stride 0
        "tied": base,  # the same tensor twice: a tie
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 5),
    }


def _odd_dtypes() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 7, generator=g)
    return {
        "f8_e4m3": x.to(torch.float8_e4m3fn),
        "f8_e5m2": x.to(torch.float8_e5m2),
        "u16": torch.arange(6).to(torch.uint16),
        "c64": torch.complex(x, -x),
        "nan": torch.tensor([float("nan"), float("inf"), -1.0]),
        "param": torch.nn.Parameter(x[:2].clone()),
        "frozen": torch.nn.Parameter(x[2:].clone(), requires_grad=False),
    }


CHECKPOINTS = {
    "mixed-dtypes": mixed_state_dict,
    "views-and-ties": _views,
    "float8-uint16-complex-parameters": _odd_dtypes,
    "tied-net": lambda: example_net("tied").state_dict(),
    "lightning-adam": lightning_checkpoint,
    "model-optimizer-epoch": training_dict,
    "nested-with-bytes-and-sets": lambda: {
        "model": {"w": torch.ones(2, 2)},
        "notes": {"raw": b"\x00\xffbytes", "tags": {"a", "b"}, "z": 1 + 2j, "none": None},
        "history": [torch.tensor(0.5), 3, "text", (1, 2)],
    },
}


def _via_torch_load(monkeypatch, path: Path):
    with monkeypatch.context() as m:
        m.setattr(torch_file, "read_plain_zip", _never_plain)
        return open_source(str(path))


def _never_plain(path, size, **options):
    raise NotPlain("forced")


@pytest.mark.parametrize("build", CHECKPOINTS.values(), ids=CHECKPOINTS.keys())
def test_same_tree_as_torch_load(tmp_path, monkeypatch, build):
    path = write_torch(tmp_path / "c.pt", build())
    fast = open_source(str(path))
    slow = _via_torch_load(monkeypatch, path)
    assert all(isinstance(n.handle, StoredTensorHandle) for n in fast.tensors.values())
    assert list(fast.tensors) == list(slow.tensors)
    for key, node in fast.tensors.items():
        other = slow.tensors[key]
        assert (node.shape, node.dtype, node.kind) == (other.shape, other.dtype, other.kind), key
        np.testing.assert_array_equal(node.handle.array(), other.handle.array(), err_msg=key)
    assert [g.paths for g in fast.tie_groups] == [g.paths for g in slow.tie_groups]
    assert fast.metadata == slow.metadata
    assert fast.optimizer_state.keys() == slow.optimizer_state.keys()
    for key, states in fast.optimizer_state.items():
        assert states.keys() == slow.optimizer_state[key].keys()
        for name, handle in states.items():
            np.testing.assert_array_equal(handle.array(), slow.optimizer_state[key][name].array())
    assert json.dumps(describe(fast, stats=True)) == json.dumps(describe(slow, stats=True))


def test_views_keep_their_strides_and_ties_their_storage(tmp_path):
    sd = _views()
    tree = open_source(str(write_torch(tmp_path / "v.pt", sd)))
    for key in ("transposed", "rows", "every_other", "expanded"):
        np.testing.assert_array_equal(tree.tensors[key].handle.array(), sd[key].numpy())
    assert [g.paths for g in tree.tie_groups] == [("base", "tied")]
    assert tree.tensors["rows"].tie is None  # same storage, other offset: not a tie


def test_opening_imports_no_torch(tmp_path):
    path = write_torch(tmp_path / "run.ckpt", lightning_checkpoint())
    script = (
        "import sys\n"
        "from netexplorer.core.describe import describe\n"
        "from netexplorer.core.sources import open_source\n"
        f"tree = open_source({str(path)!r})\n"
        "describe(tree, stats=True)\n"  # every value read, every statistic computed
        "print(len(tree.tensors), len(tree.optimizer_state), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    tensors, matched, torch_imported = out.stdout.split()
    assert int(tensors) > 0 and int(matched) > 0
    assert torch_imported == "False"


def test_values_are_mapped_not_copied(tmp_path):
    sd = {"w": torch.randn(64, 64)}
    sd["t"] = sd["w"].t()
    tree = open_source(str(write_torch(tmp_path / "m.pt", sd)))
    for key in ("w", "t"):
        array = base = tree.tensors[key].handle.array()
        while base is not None and not isinstance(base, np.memmap):
            base = getattr(base, "base", None)
        assert isinstance(base, np.memmap), key
        assert not array.flags.writeable


def _quantized() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, still saved
        return {"q": torch.quantize_per_tensor(torch.randn(3, 3), 0.1, 0, torch.qint8)}


@pytest.mark.parametrize(
    "build",
    [
        _quantized,
        lambda: {"s": torch.eye(3).to_sparse()},
        lambda: {"w": torch.ones(2), "size": torch.Size([2, 3])},
    ],
    ids=["quantized", "sparse", "torch.Size"],
)
def test_what_it_does_not_know_goes_to_torch_load(tmp_path, monkeypatch, build):
    obj = build()
    path = write_torch(tmp_path / "o.pt", obj)
    with pytest.raises(NotPlain):
        read_plain_zip(str(path), path.stat().st_size)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    tree = open_source(str(path))
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]
    key, tensor = next(iter(obj.items()))
    expected = tensor.dequantize() if tensor.is_quantized else tensor.to_dense()
    np.testing.assert_array_equal(tree.tensors[key].handle.array(), expected.numpy())


class _Call:
    """`module.name(*args)` in a hand-assembled pickle (the shape of every torch.save tensor;
    the pickler itself would refuse to name a function it cannot import)."""

    def __init__(self, module: str, name: str, *args) -> None:
        self.module, self.name, self.args = module, name, args


class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Build:
    """`obj`, then BUILD with `state` (what sets a state dict's `_metadata`)."""

    def __init__(self, obj, state) -> None:
        self.obj, self.state = obj, state


class _Raw:
    def __init__(self, opcodes: bytes) -> None:
        self.opcodes = opcodes


def _assemble(x) -> bytes:
    if isinstance(x, _Raw):
        return x.opcodes
    if isinstance(x, _Build):
        return _assemble(x.obj) + _assemble(x.state) + b"b"
    if isinstance(x, _Call):
        args = b"".join(_assemble(a) for a in x.args)
        return f"c{x.module}\n{x.name}\n".encode() + b"(" + args + b"tR"
    if isinstance(x, _Storage):  # BINPERSID of ("storage", torch.FloatStorage, key, ...)
        return (
            b"("
            + _assemble("storage")
            + b"ctorch\nFloatStorage\n"
            + _assemble(x.key)
            + (_assemble("cpu") + _assemble(x.numel) + b"tQ")
        )
    if isinstance(x, dict):
        return b"}(" + b"".join(_assemble(k) + _assemble(v) for k, v in x.items()) + b"u"
    if isinstance(x, tuple):
        return b"(" + b"".join(_assemble(v) for v in x) + b"t"
    return pickle.dumps(x, protocol=2)[2:-1]  # a plain value, without PROTO and STOP


def _crafted(tmp_path: Path, obj, storages: dict[str, bytes]) -> Path:
    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("crafted/data.pkl", b"\x80\x02" + _assemble(obj) + b".")
        z.writestr("crafted/byteorder", "little")
        z.writestr("crafted/version", "3\n")
        for key, raw in storages.items():
            z.writestr(f"crafted/data/{key}", raw)
    return path


def _tensor(storage, offset, shape, stride):
    return _Call("torch._utils", "_rebuild_tensor_v2", storage, offset, shape, stride, False, {})


def test_a_crafted_file_is_read_like_torch_save(tmp_path):
    raw = np.arange(6, dtype="<f4").tobytes()
    path = _crafted(tmp_path, {"w": _tensor(_Storage("0", 6), 0, (2, 3), (3, 1))}, {"0": raw})
    np.testing.assert_array_equal(
        open_source(str(path)).tensors["w"].handle.array(), np.arange(6).reshape(2, 3)
    )


@pytest.mark.parametrize(
    "offset, shape, stride, numel",
    [(0, (10,), (1,), 6), (5, (2,), (1,), 6), (0, (2, 3), (4, 1), 6), (0, (3,), (1,), 100)],
    ids=["longer-than-storage", "offset-past-end", "strides-past-end", "storage-past-entry"],
)
def test_a_tensor_reaching_outside_its_storage_is_never_mapped(
    tmp_path, offset, shape, stride, numel
):
    raw = np.arange(6, dtype="<f4").tobytes()
    tensors = {"w": _tensor(_Storage("0", numel), offset, shape, stride)}
    path = _crafted(tmp_path, tensors, {"0": raw})
    with pytest.raises(NotPlain):
        read_plain_zip(str(path), path.stat().st_size)
    try:  # then torch.load: it refuses such files in one clear line, or reads within the file
        open_source(str(path)).tensors["w"].handle.array()
    except SourceError as error:
        assert str(path) in str(error) and "\n" not in str(error)


def test_code_in_the_pickle_is_never_called(tmp_path):
    marker = tmp_path / "marker"
    payload = {"w": _Call("posix", "system", f"touch {marker}")}
    path = _crafted(tmp_path, payload, {})
    with pytest.raises(NotPlain, match=r"posix\.system"):
        read_plain_zip(str(path), path.stat().st_size)
    with pytest.raises(UntrustedPickleError, match=r"posix\.system"):
        open_source(str(path))
    assert not marker.exists()
    with pytest.raises(SourceError):  # trusted: it runs, and then holds no tensors
        open_source(str(path), OpenOptions(trust=True))
    assert marker.exists()


RAW = np.arange(6, dtype="<f4").tobytes()
GOOD = _tensor(_Storage("0", 6), 0, (2, 3), (3, 1))


@pytest.mark.parametrize(
    "payload",
    [
        _Build(GOOD, (None, {"shape": (1000, 1000), "stride": (1000, 1)})),  # past the check
        _Build(GOOD, {"shape": (1000, 1000)}),
        (_Build(_Raw(b"ctorch\nFloatStorage\n"), (None, {"dtype": "int32"})), GOOD),
        (_Build(_Raw(b"ctorch._utils\n_rebuild_tensor_v2\n"), {"__defaults__": (True,)}), GOOD),
    ],
    ids=["tensor-slots", "tensor-dict", "shared-storage-type", "rebuild-function"],
)
def test_build_sets_nothing_but_a_state_dicts_attributes(tmp_path, payload):
    """BUILD after a tensor's bounds were checked would let a file read outside the map,
    or change how every later file is read."""
    path = _crafted(tmp_path, {"w": payload}, {"0": RAW})
    with pytest.raises(NotPlain, match="BUILD"):
        read_plain_zip(str(path), path.stat().st_size)
    try:  # torch.load gets it: it refuses it in one line, or reads it within the file
        open_source(str(path)).tensors["w"].handle.array()
    except SourceError as error:
        assert "\n" not in str(error)
    good = write_torch(tmp_path / "good.pt", {"w": torch.tensor([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(open_source(str(good)).tensors["w"].handle.array(), [1, 2, 3])


def test_a_huge_memo_index_allocates_nothing(tmp_path):
    import tracemalloc

    memo_put = b"}r\xff\xff\xff\x7f"  # LONG_BINPUT 2**31-1: an array memo would be 16 GB
    path = _crafted(tmp_path, {"m": _Raw(memo_put), "w": GOOD}, {"0": RAW})
    tracemalloc.start()
    try:
        obj = read_plain_zip(str(path), path.stat().st_size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert obj["m"] == {} and peak < 20_000_000


@pytest.mark.parametrize(
    "stride, shape",
    [((2**62,), (1,)), ((1, 1), (0, 2**70)), ((2**63,), (1,))],
    ids=["stride-bytes-past-int64", "shape-past-int64", "stride-past-int64"],
)
def test_numbers_past_int64_are_never_mapped(tmp_path, stride, shape):
    path = _crafted(tmp_path, {"w": _tensor(_Storage("0", 6), 0, shape, stride)}, {"0": RAW})
    with pytest.raises(NotPlain):
        read_plain_zip(str(path), path.stat().st_size)


def test_conjugate_and_negative_views_show_their_values(tmp_path):
    x = torch.tensor([1 + 2j, 3 - 4j])
    sd = {"conj": x.conj(), "neg": torch._neg_view(torch.tensor([1.0, -2.0]))}
    tree = open_source(str(write_torch(tmp_path / "v.pt", sd)))
    np.testing.assert_array_equal(tree.tensors["conj"].handle.array(), [1 - 2j, 3 + 4j])
    np.testing.assert_array_equal(tree.tensors["neg"].handle.array(), [-1.0, 2.0])


def test_a_storage_saved_on_its_own_goes_to_torch(tmp_path):
    obj = {"w": torch.ones(2), "s": torch.ones(3).untyped_storage()}
    path = write_torch(tmp_path / "s.pt", obj)
    with pytest.raises(NotPlain, match="storage outside a tensor"):
        read_plain_zip(str(path), path.stat().st_size)
    assert "MappedFile" not in json.dumps(open_source(str(path)).metadata)


def test_a_state_dict_saved_twice_is_two_tied_branches(tmp_path):
    sd = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
    tree = open_source(str(write_torch(tmp_path / "ema.pt", {"model": sd, "ema": sd})))
    assert set(tree.tensors) == {"model.w", "model.b", "ema.w", "ema.b"}
    assert sorted(g.paths for g in tree.tie_groups) == [
        ("model.b", "ema.b"),
        ("model.w", "ema.w"),
    ]


def test_containers_shared_at_every_level_stop_quickly(tmp_path):
    """A few bytes of pickle can nest one list [x, x] 30 deep: 2**30 paths to walk."""
    x = [torch.ones(1)]
    for _ in range(30):
        x = [x, x]
    path = write_torch(tmp_path / "dag.pt", {"w": torch.ones(2), "notes": x})
    with pytest.raises(SourceError, match="would add over 10,000 entries"):
        open_source(str(path))
