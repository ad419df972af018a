"""TorchScript archives: refused without trust (before torch.jit.load), live with it."""

from __future__ import annotations

import json
import warnings

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


class _Block(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.bn1(self.conv1(x)))))


class _ResNetLike(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = torch.nn.Sequential(_Block(8), _Block(8))
        self.layer2 = torch.nn.Sequential(_Block(8))
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(self.conv1(x))).mean((2, 3)))


@pytest.fixture
def traced_resnet(tmp_path):
    """A ResNet-like CNN traced on a 2x3x20x24 example (not a size anyone would guess)."""
    torch.manual_seed(0)
    net = _ResNetLike().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's own notice
        traced = torch.jit.trace(net, torch.rand(2, 3, 20, 24))
        path = tmp_path / "resnet_traced.pt"
        traced.save(str(path))
    return path


def test_every_access_expression_evaluates_on_the_archive(traced_resnet):
    tree = open_source(str(traced_resnet), OpenOptions(trust=True))
    net = tree.module
    modules = dict(net.named_modules())
    tensors = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    assert tree.modules["layer1.0"].access == "getattr(net.layer1, '0')"
    for path, node in tree.modules.items():
        assert eval(node.access, {"net": net}) is modules[path], node.access
    for path, node in tree.tensors.items():
        value = eval(node.access, {"net": net})
        assert value.data_ptr() == tensors[path].data_ptr(), node.access


def test_inputs_come_from_the_traced_example(traced_resnet):
    tree = open_source(str(traced_resnet), OpenOptions(trust=True))
    assert tree.default_input.shape == (2, 3, 20, 24)
    assert tree.metadata["input_from"] == "the traced example input"


def test_backward_and_the_graph_on_a_traced_archive(traced_resnet, capsys):
    from netexplorer.cli import main

    assert main([str(traced_resnet), "--trust", "--backward", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(p["grad"] is not None for p in out["parameters"])
    assert out["metadata"]["input"]["shape"] == [2, 3, 20, 24]
    note = out["metadata"]["contributions"]["note"]
    assert "TorchScript" in note and "sum over all of its uses" in note
    graph = out["graph"]
    assert graph["has_data_flow"]
    calls = [n["path"] for n in graph["nodes"] if n["kind"] in ("module", "container")]
    assert calls[:4] == ["", "conv1", "layer1", "layer1.0"]
    assert "fc" in calls and "layer2.0.conv2" in calls
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    by_path = {n["path"]: n["id"] for n in graph["nodes"]}
    assert (by_path["layer1.0.conv1"], by_path["layer1.0.bn1"]) in edges
    assert ("input", by_path["conv1"]) in edges


def test_backward_twice_doubles_on_a_traced_archive(traced_resnet):
    from netexplorer.core.passes import PassEngine

    tree = open_source(str(traced_resnet), OpenOptions(trust=True))
    engine = PassEngine(tree)
    engine.backward()
    once = {n: p.grad.clone() for n, p in tree.module.named_parameters()}
    engine.backward()
    for name, p in tree.module.named_parameters():
        assert torch.equal(p.grad, 2 * once[name]), name
