"""The tiny checkpoints shipped under resources/examples open, and the script remakes them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from netexplorer.core.identical import find_identical_tensors
from netexplorer.core.sources import open_source

EXAMPLES = Path(__file__).resolve().parents[3] / "resources" / "examples"


def load_script():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["tied.safetensors", "tied-training.ckpt"])
def test_shipped_files_are_small(name):
    assert (EXAMPLES / name).stat().st_size < 20_000


def test_tied_safetensors_shows_the_tie_as_identical_tensors():
    tree = open_source(str(EXAMPLES / "tied.safetensors"))
    assert tree.metadata["safetensors"]["example"] == "tied"
    groups = [g.paths for g in find_identical_tensors(tree) if g.probable_tie]
    assert groups == [("2.weight", "4.weight"), ("2.bias", "4.bias")]


def test_tied_training_checkpoint_has_ties_metadata_and_optimizer_state():
    tree = open_source(str(EXAMPLES / "tied-training.ckpt"))
    assert tree.tie_groups[0].paths == ("state_dict.2.weight", "state_dict.4.weight")
    assert tree.metadata["epoch"] == 4 and tree.metadata["hyper_parameters"]["lr"] == 1e-2
    assert set(tree.optimizer_state["state_dict.2.weight"]) == {"step", "exp_avg", "exp_avg_sq"}


def test_script_regenerates_the_same_weights(tmp_path):
    written = load_script().main(tmp_path)
    for path in written:
        shipped = open_source(str(EXAMPLES / path.name))
        remade = open_source(str(path))
        assert list(shipped.tensors) == list(remade.tensors)
        for key, node in shipped.tensors.items():
            np.testing.assert_array_equal(node.handle.array(), remade.tensors[key].handle.array())
