"""pkg.module:factory sources and --model SPEC --weights FILE key reports."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from checkpoint_builders import example_net, lightning_checkpoint, write_safetensors, write_torch

from netexplorer.core.errors import SourceError, UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source
from netexplorer.core.sources.factory import build_with_weights, is_factory_spec

MODELS = """
from torch import nn

def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

def tied():
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
                         nn.Linear(8, 1))

def reshaped():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 1))

class Zoo:
    @staticmethod
    def small():
        return nn.Linear(2, 2)

def broken():
    raise ValueError("width must be even")

def not_a_module():
    return 42
"""


@pytest.fixture(scope="module")
def models_on_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    (folder / "ne_test_models.py").write_text(textwrap.dedent(MODELS))
    (folder / "ne_test_bad_import.py").write_text("import this_package_does_not_exist\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        yield folder


def test_spec_recognition(tmp_path, monkeypatch):
    assert is_factory_spec("pkg.models:make_net")
    assert is_factory_spec("models:Zoo.small")
    assert not is_factory_spec("model.pt")
    assert not is_factory_spec("example:tied") or True  # the example reader comes first
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights:v2").write_bytes(b"x")
    assert not is_factory_spec("weights:v2")  # a file on disk is a file


def test_factory_source_is_live_and_seeded(models_on_path):
    a = open_source("ne_test_models:mlp", OpenOptions(seed=1))
    b = open_source("ne_test_models:mlp", OpenOptions(seed=1))
    c = open_source("ne_test_models:mlp", OpenOptions(seed=2))
    assert a.is_live and a.reader == "factory"
    w = [t.tensors["0.weight"].handle.array() for t in (a, b, c)]
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.array_equal(w[0], w[2])
    assert open_source("ne_test_models:Zoo.small").modules[""].type_name == "Linear"


def test_weights_from_a_state_dict(models_on_path, tmp_path):
    net = example_net("mlp")
    path = write_torch(tmp_path / "mlp.pt", net.state_dict())
    tree = build_with_weights("ne_test_models:mlp", str(path), OpenOptions(seed=5))
    report = tree.metadata["weights_report"]
    assert report["loaded"] == 4 and report["prefix"] == ""
    assert report["missing"] == report["unexpected"] == report["shape_mismatched"] == []
    np.testing.assert_array_equal(tree.tensors["0.weight"].handle.array(), net[0].weight.detach())


def test_weights_from_a_lightning_checkpoint_with_optimizer_state(models_on_path, tmp_path):
    ckpt = lightning_checkpoint(example_net("tied"))
    path = write_torch(tmp_path / "run.ckpt", ckpt)
    tree = build_with_weights("ne_test_models:tied", str(path))
    report = tree.metadata["weights_report"]
    assert report["prefix"] == "state_dict.model."
    assert report["missing"] == [] and report["unexpected"] == []
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    saved = ckpt["state_dict"]["model.2.weight"]
    np.testing.assert_array_equal(tree.tensors["4.weight"].handle.array(), saved)
    assert set(tree.optimizer_state["2.weight"]) == {"step", "exp_avg", "exp_avg_sq"}


def test_missing_unexpected_and_mismatched_keys_are_listed(models_on_path, tmp_path):
    sd = dict(example_net("mlp").state_dict())
    sd["extra.weight"] = torch.ones(3)
    path = write_torch(tmp_path / "mlp_plus.pt", sd)
    tree = build_with_weights("ne_test_models:reshaped", str(path))
    report = tree.metadata["weights_report"]
    assert report["loaded"] == 2
    assert report["missing"] == ["2.weight", "2.bias", "3.weight", "3.bias"]
    assert report["unexpected"] == ["extra.weight"]
    assert report["shape_mismatched"] == [
        {"key": "2.weight", "model": [2, 8], "checkpoint": [1, 8]},
        {"key": "2.bias", "model": [2], "checkpoint": [1]},
    ]


def test_meta_build_keeps_ties_and_leaves_missing_keys_without_values(models_on_path, tmp_path):
    sd = dict(example_net("tied").state_dict())
    del sd["6.bias"]
    path = write_safetensors(tmp_path / "tied.safetensors", sd)
    tree = build_with_weights("ne_test_models:tied", str(path), OpenOptions(meta=True))
    assert tree.metadata["weights_report"]["missing"] == ["6.bias"]
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert not tree.tensors["6.bias"].handle.has_values
    assert tree.tensors["2.weight"].handle.has_values
    np.testing.assert_array_equal(tree.tensors["2.weight"].handle.array(), sd["2.weight"])
    tree.module.get_parameter("2.weight").data.mul_(2)  # writable; the file stays as it was
    assert open_source(str(path)).tensors["2.weight"].handle.array()[0, 0] == sd["2.weight"][0, 0]


def test_dtype_changes_are_reported_and_converted(models_on_path, tmp_path):
    sd = {k: v.bfloat16() for k, v in example_net("mlp").state_dict().items()}
    path = write_safetensors(tmp_path / "bf16.safetensors", sd)
    tree = build_with_weights("ne_test_models:mlp", str(path))
    changes = tree.metadata["weights_report"]["dtype_changed"]
    assert changes[0] == {"key": "0.weight", "model": "float32", "checkpoint": "bfloat16"}
    assert tree.tensors["0.weight"].dtype == "float32"
    np.testing.assert_array_equal(tree.tensors["0.weight"].handle.array(), sd["0.weight"].float())


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("ne_no_such_module:make", "cannot import ne_no_such_module"),
        ("ne_test_bad_import:make", "No module named 'this_package_does_not_exist'"),
        ("ne_test_models:nothing", "has no 'nothing'"),
        ("ne_test_models:broken", r"broken\(\) raised ValueError: width must be even"),
        ("ne_test_models:not_a_module", "returned a int, not a torch.nn.Module"),
    ],
)
def test_factory_failures_are_one_line(models_on_path, spec, problem):
    with pytest.raises(SourceError, match=problem) as info:
        open_source(spec)
    assert "\n" not in str(info.value)


def test_untrusted_weights_are_refused(models_on_path, tmp_path):
    path = write_torch(tmp_path / "whole.pt", example_net("mlp"))
    with pytest.raises(UntrustedPickleError):
        build_with_weights("ne_test_models:mlp", str(path))
