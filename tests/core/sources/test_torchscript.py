"""TorchScript archives: refused without trust (before torch.jit.load), live with it."""

from __future__ import annotations

import pytest
import torch
from checkpoint_builders import example_net, save_scripted

from netexplorer.core.errors import UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source


@pytest.fixture
def scripted_tied(tmp_path):
    path = tmp_path / "tied_scripted.pt"
    return save_scripted(example_net("tied"), path)


def test_refused_without_trust_and_never_loaded(scripted_tied, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("torch.jit.load ran without trust")

    monkeypatch.setattr(torch.jit, "load", no_load)
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(scripted_tied))
    message = str(info.value)
    assert "TorchScript" in message and "--trust" in message and "run code" in message


def test_trusted_archive_is_a_live_module(scripted_tied):
    tree = open_source(str(scripted_tied), OpenOptions(trust=True))
    assert tree.is_live and tree.reader == "torchscript"
    assert tree.modules[""].type_name == "Sequential"
    assert tree.modules["2"].type_name == "Linear"
    assert tree.modules["1"].type_name == "ReLU"
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert all(t.kind == "parameter" for t in tree.tensors.values())
    assert tree.total_parameters == 121
    out = tree.module(torch.ones(2, 4))
    out.sum().backward()
    assert dict(tree.module.named_parameters())["2.weight"].grad is not None
