"""Every pickle protocol torch.save can write opens (0 to 5, zip and legacy format), read by
netexplorer's own unpickler without torch.load; pickles that would run code are refused by
naming what they would run; other failures say what to do, without Python's internals."""

from __future__ import annotations

import collections
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import SystemCall, write_torch

from netexplorer.core.errors import SourceError, UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source
from netexplorer.core.sources.stored import StoredTensorHandle

STATE_DICT = {
    "encoder.weight": torch.arange(6.0).reshape(2, 3),
    "encoder.bias": torch.tensor([1.5, -2.0], dtype=torch.float64),
    "head.weight": torch.arange(6.0).reshape(3, 2).t(),  # a strided view
    "steps": torch.tensor(7),
}


@pytest.fixture
def no_torch_load(monkeypatch):
    """torch.load must not be needed: the own reader reads every protocol."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", range(6))
def test_every_protocol_opens_without_torch_load(tmp_path, protocol, legacy, no_torch_load):
    path = tmp_path / f"p{protocol}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(
            STATE_DICT, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy
        )
    tree = open_source(str(path))
    assert set(tree.tensors) == set(STATE_DICT)
    for key, tensor in STATE_DICT.items():
        handle = tree.tensors[key].handle
        assert isinstance(handle, StoredTensorHandle)
        np.testing.assert_array_equal(handle.array(), tensor.numpy(), err_msg=key)
    fmt = "legacy" if legacy else "zip"
    assert fmt in tree.metadata["format"]


def _plain(tmp_path: Path, protocol: int) -> Path:
    path = tmp_path / f"evil{protocol}.pkl"
    path.write_bytes(pickle.dumps({"x": SystemCall(tmp_path / "MARKER")}, protocol=protocol))
    return path


def _inst(tmp_path: Path) -> Path:
    path = tmp_path / "inst.pt"
    path.write_bytes(f"(S'touch {tmp_path / 'MARKER'}'\nios\nsystem\n.".encode())
    return path


def _stack_global(tmp_path: Path) -> Path:
    obj = {"w": torch.ones(2), "x": SystemCall(tmp_path / "MARKER")}
    path = tmp_path / "evil.pt"
    torch.save(obj, path, pickle_protocol=4)
    return path


SYSTEM = f"{os.name}.system" if os.name == "posix" else "nt.system"
CODE = {
    **{f"plain-protocol-{p}": (lambda t, p=p: _plain(t, p), SYSTEM) for p in (0, 2, 4, 5)},
    "INST": (_inst, "os.system"),
    "zip-STACK_GLOBAL": (_stack_global, SYSTEM),
}


@pytest.mark.parametrize("case", CODE)
def test_a_pickle_that_would_run_code_names_it_and_suggests_trust(tmp_path, case):
    build, name = CODE[case]
    path = build(tmp_path)
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(path))
    assert info.value.globals_needed == (name,)  # the app's trust dialog reads this
    message = str(info.value)
    assert name in message and "--trust" in message and "damaged" not in message
    assert not (tmp_path / "MARKER").exists()


def test_every_global_a_pickle_needs_is_named(tmp_path):
    class Eval:
        def __reduce__(self):
            return (eval, ("1",))

    path = tmp_path / "two.pkl"
    path.write_bytes(pickle.dumps([SystemCall(tmp_path / "MARKER"), Eval()], protocol=4))
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(path))
    assert info.value.globals_needed == (SYSTEM, "builtins.eval")


def test_a_trusted_plain_pickle_is_unpickled(tmp_path):
    path = tmp_path / "sd.pkl"
    path.write_bytes(pickle.dumps({"w": torch.ones(2, 2), "x": SystemCall(tmp_path / "M")}))
    tree = open_source(str(path), OpenOptions(trust=True))
    assert (tmp_path / "M").exists() and tree.tensors["w"].shape == (2, 2)


def test_what_only_torch_builds_in_a_protocol_torch_cannot_read(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.ones(2, 2), 0.1, 0, torch.qint8)
        torch.save({"q": q}, tmp_path / "q4.pt", pickle_protocol=4)
    with pytest.raises(SourceError, match=r"_rebuild_qtensor.*--trust") as info:
        open_source(str(tmp_path / "q4.pt"))
    assert "Unsupported operand" not in str(info.value)
    tree = open_source(str(tmp_path / "q4.pt"), OpenOptions(trust=True))
    np.testing.assert_allclose(tree.tensors["q"].handle.array(), np.ones((2, 2)))


def test_a_whole_model_whose_class_cannot_be_imported(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "my_models.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(2, 2)\n"
    )
    monkeypatch.syspath_prepend(str(code))
    import my_models

    path = write_torch(tmp_path / "model.pt", my_models.Net())
    monkeypatch.delitem(sys.modules, "my_models")
    (code / "my_models.py").unlink()
    with pytest.raises(UntrustedPickleError, match=r"my_models\.Net"):
        open_source(str(path))
    with pytest.raises(SourceError) as info:
        open_source(str(path), OpenOptions(trust=True))
    message = str(info.value)
    assert "my_models.Net" in message and "PYTHONPATH" in message
    assert f"--model pkg.mod:factory --weights {path}" in message
    assert "damaged" not in message


@pytest.mark.parametrize(
    "content, words",
    [
        (b"these are not weights\n" + bytes(range(256)), "neither a zip archive nor a pickle"),
        (b"\x80\x02e" + bytes(range(100)), "its pickle is damaged at byte"),
        (b"\x80\x02}q\x00(X\x01\x00\x00\x00a", "it ends in the middle of its pickle"),
    ],
    ids=["text", "pickle-garbage", "truncated-pickle"],
)
def test_garbage_is_told_without_python_internals(tmp_path, content, words):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    message = str(info.value)
    assert words in message and "save or download it again" in message
    for internal in ("IndexError", "pop from empty list", "KeyError", "UnpicklingError"):
        assert internal not in message


def test_an_object_the_pickle_fills_after_making_it_is_named_not_called_damaged(tmp_path):
    """A defaultdict is made, then its items are set: the reader reads on to the end."""
    metrics = collections.defaultdict(list)
    metrics["loss"].append(0.5)
    path = write_torch(tmp_path / "m.pt", {"w": torch.ones(2), "metrics": metrics})
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(path))
    assert info.value.globals_needed == ("collections.defaultdict", "builtins.list")
    tree = open_source(str(path), OpenOptions(trust=True))
    assert tree.metadata["metrics"] == {"loss": [0.5]}
