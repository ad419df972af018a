"""The fast path of the restricted unpickler: a pre-scan (pickle_scan.py) proves a pickle,
then Python's C unpickler builds it under hooks (pickle_reader._load_proven).

Every pickle the reader tests read is read both ways and compared (conftest.py,
`both_unpicklers`); these tests check that the fast path is taken where it should be, and
never where the scan cannot prove the pickle."""

from __future__ import annotations

import collections
import contextlib
import pickle
import struct
import warnings

import pytest
import torch
from checkpoint_builders import write_torch

from netexplorer.core.sources import pickle_reader
from netexplorer.core.sources.pickle_reader import NotPlain, Refused
from netexplorer.core.sources.pickle_scan import memo_bound_bits, scan
from netexplorer.core.sources.stand_ins import CALLABLES, STAND_INS, TENSOR_MAKERS
from netexplorer.core.sources.torch_file import load_checkpoint_object


@pytest.fixture
def c_unpickler_uses(monkeypatch) -> list[str]:
    """What the C unpickler built: "built" for each pickle it finished, "stopped" for each
    a hook stopped (the pure-Python reader then read it)."""
    uses: list[str] = []
    real = pickle_reader._load_proven

    def counted(*args, **kwargs):
        try:
            obj = real(*args, **kwargs)
        except pickle_reader._Unproven:
            uses.append("stopped")
            raise
        uses.append("built")
        return obj

    monkeypatch.setattr(pickle_reader, "_load_proven", counted)
    return uses


@pytest.fixture
def no_c_unpickler(monkeypatch) -> None:
    """Fail the test if the C unpickler is made at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("the C unpickler was used for a pickle the scan did not prove")

    monkeypatch.setattr(pickle_reader._HookedUnpickler, "__init__", refuse)


def _checkpoint() -> dict:
    """A training checkpoint with what torch.save writes around tensors: a module's state
    dict (an OrderedDict with _metadata, set by BUILD), parameters, a view, a tie, optimizer
    state, Python numbers, strings, bytes, tuples, sets, None."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(net.parameters(), betas=(0.9, 0.99))
    net(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    weight = torch.arange(12.0).reshape(3, 4)
    return {
        "model": net.state_dict(),
        "params": [torch.nn.Parameter(torch.ones(2)), weight, weight.t()],
        "optimizer": optimizer.state_dict(),
        "meta": {"epoch": 3, "lr": 0.5, "name": "run", "tags": {"a", "b"}, "raw": b"\x00\x01"},
        "none": None,
        "pair": (1, (2.5, "x")),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_of_torch_save_is_built_by_the_c_unpickler(
    tmp_path, protocol, legacy, c_unpickler_uses
):
    path = tmp_path / "ckpt.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(
            _checkpoint(), path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy
        )
    obj, _ = load_checkpoint_object(str(path), trust=False)
    assert obj["meta"]["epoch"] == 3
    assert obj["model"]._metadata  # set by BUILD, read by the C unpickler
    assert c_unpickler_uses and set(c_unpickler_uses) == {"built"}


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles_of_plain_data_are_proven(protocol):
    value = {"a": [1, 2.5, None, True], "b": ("x", b"y", frozenset({3})), 10**30: {4, 5}}
    data = pickle.dumps(value, protocol=protocol)
    proof = scan(data)
    assert proof is not None and proof.end == len(data)
    assert pickle_reader.load_restricted(data, stand_ins=STAND_INS, callables=CALLABLES) == value


def test_tensor_calls_are_matched_whole(tmp_path):
    state = {f"layers.{i}.weight": torch.randn(2, 3) for i in range(500)}
    path = write_torch(tmp_path / "m.pt", state)
    with __import__("zipfile").ZipFile(path) as z:
        data = z.read("m/data.pkl")
    proof = scan(data)
    assert proof is not None
    assert proof.calls_matched == 499  # all but the first, which names the globals inline
    assert proof.opcodes < 3 * 500 + 100  # the keys and the first call, one by one


def _dumps(body: bytes, protocol: int = 2) -> bytes:
    return b"\x80" + bytes([protocol]) + body + b"."


def _deep_by_memo(depth: int) -> bytes:
    """A tuple nested `depth` deep, one level at a time through the memo."""
    return b")q\x00" + b"h\x00\x85q\x00" * depth


UNPROVABLE = {
    "tuple-101-deep": _dumps(b"}" + b")" + b"\x85" * 101 + b"K\x01s"),
    "tuple-150-deep-through-the-memo": _dumps(b"}" + _deep_by_memo(150) + b"K\x01s"),
    "memo-index-2**31": _dumps(b"}r" + struct.pack("<I", 2**31)),
    "extension-code": _dumps(b"\x82\x01"),
    "newobj": _dumps(b"ccollections\nOrderedDict\n)\x81"),
    "obj": _dumps(b"(ccollections\nOrderedDict\no"),
    "inst": b"(icollections\nOrderedDict\n.",
    "build-on-a-global": _dumps(
        b"ctorch._utils\n_rebuild_tensor_v2\n}X\x0c\x00\x00\x00__defaults__)sb"
    ),
    "build-with-slot-state": _dumps(
        b"ccollections\nOrderedDict\n)RN}X\x01\x00\x00\x00aK\x01s\x86b"
    ),
    "int-text-with-a-leading-zero": b"I010\n.",  # 8 to C, 10 to Python
    "frame-straddled": b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x00.",
    "proto-twice": _dumps(b"\x80\x02N"),
    "bytearray8-past-the-end": _dumps(b"\x96" + struct.pack("<Q", 2**40), protocol=5),
    "get-of-nothing": _dumps(b"h\x05"),
    "tuple2-past-the-mark": _dumps(b"K\x01(K\x02\x86"),
}


@pytest.mark.parametrize("data", UNPROVABLE.values(), ids=UNPROVABLE.keys())
def test_a_pickle_the_scan_cannot_prove_never_reaches_the_c_unpickler(data, no_c_unpickler):
    assert scan(data) is None
    with contextlib.suppress(NotPlain, Refused):  # compared with the pure reader's outcome
        pickle_reader.load_restricted(data, stand_ins=STAND_INS, callables=CALLABLES)


HOOKED = {  # proven by the scan; a hook stops the C unpickler; the pure reader says what
    "a-global-outside-the-stand-ins": (_dumps(b"cposix\nsystem\n(X\x01\x00\x00\x00xtR"), "posix"),
    "build-on-a-tensor": (None, "BUILD"),
    "build-that-hides-items": (
        _dumps(b"ccollections\nOrderedDict\n)R}X\x05\x00\x00\x00itemsK\x01sb"),
        "items",
    ),
}


def _tensor_then_build() -> bytes:
    """A tensor of storage "0", then BUILD on it with a dict of new strides."""
    storage = (
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
        b"X\x03\x00\x00\x00cpuK\x06tQ"
    )
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"K\x00K\x02K\x03\x86K\x03K\x01\x86"
        b"\x89ccollections\nOrderedDict\n)RtR"
    )
    return _dumps(b"}X\x01\x00\x00\x00w" + tensor + b"}X\x05\x00\x00\x00shapeK\x01sbs")


@pytest.mark.parametrize("case", HOOKED.keys())
def test_what_a_hook_stops_is_read_by_the_pure_reader(case, c_unpickler_uses):
    data, words = HOOKED[case]
    if data is None:
        data = _tensor_then_build()
    assert scan(data) is not None

    def storage(pid):
        from netexplorer.core.sources.stored import Storage

        return Storage("0", "float32", 24, None, 0)  # type: ignore[arg-type]

    with pytest.raises((NotPlain, Refused), match=words):
        pickle_reader.load_restricted(
            data,
            stand_ins=STAND_INS,
            callables=CALLABLES,
            tensor_makers=TENSOR_MAKERS,
            persistent_load=storage,
        )
    assert c_unpickler_uses == ["stopped"]


def test_a_stand_in_kept_as_a_value_is_itself():
    data = _dumps(b"}X\x04\x00\x00\x00kindccollections\nOrderedDict\ns")
    obj = pickle_reader.load_restricted(data, stand_ins=STAND_INS, callables=CALLABLES)
    assert obj == {"kind": collections.OrderedDict}


def test_memo_indices_are_bounded_by_the_pickles_length():
    bits = memo_bound_bits(1000)
    assert (1 << bits) >= 500
    inside = _dumps(b"Nr" + struct.pack("<I", (1 << bits) - 1) + b"0N" + b"N0" * 250)
    outside = _dumps(b"Nr" + struct.pack("<I", 1 << bits) + b"0N" + b"N0" * 250)
    assert scan(inside, 0, bits) is not None
    assert scan(outside, 0, bits) is None


def test_too_many_tensors_are_refused_by_the_c_unpickler_too(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle_reader, "MAX_TENSORS", 10)
    path = write_torch(tmp_path / "m.pt", {f"t{i}": torch.ones(1) for i in range(20)})
    with pytest.raises(Exception, match="more than 10 tensors"):
        load_checkpoint_object(str(path), trust=False)
