"""PyTorch files: zip and legacy state dicts, training checkpoints, optimizer state matching."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from checkpoint_builders import (
    example_net,
    lightning_checkpoint,
    mixed_state_dict,
    trained,
    training_dict,
    write_torch,
)
from torch import nn

from netexplorer.core.describe import describe
from netexplorer.core.errors import SourceError
from netexplorer.core.sources import OpenOptions, open_source


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_state_dict_keys_shapes_dtypes_values(tmp_path, legacy):
    sd = mixed_state_dict()
    tree = open_source(str(write_torch(tmp_path / "m.pt", sd, legacy=legacy)))
    assert tree.reader == "torch"
    assert set(tree.tensors) == set(sd)
    for key, tensor in sd.items():
        node = tree.tensors[key]
        assert (node.shape, node.dtype) == (tuple(tensor.shape), str(tensor.dtype)[6:])
        np.testing.assert_array_equal(node.handle.array(), tensor.float().numpy())
    assert tree.tensors["norm.num_batches_tracked"].kind == "buffer"
    expected = "legacy" if legacy else "zip"
    assert expected in tree.metadata["format"]


def test_state_dict_order_is_kept(tmp_path):
    sd = {"z.weight": torch.ones(1), "a.weight": torch.ones(1), "m.bias": torch.ones(1)}
    tree = open_source(str(write_torch(tmp_path / "o.pth", sd)))
    assert list(tree.tensors) == list(sd)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_shared_storage_makes_tie_groups_but_views_do_not(tmp_path, legacy):
    net = example_net("tied")
    sd = dict(net.state_dict())
    sd["view.weight"] = sd["0.weight"][1:]  # same storage, other offset: not a tie
    tree = open_source(str(write_torch(tmp_path / "tied.pt", sd, legacy=legacy)))
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert tree.tensors["view.weight"].tie is None
    assert tree.total_tensor_elements == 121 + 7 * 4  # the file cannot tell kinds


def test_empty_tensors_are_not_tied(tmp_path):
    tree = open_source(
        str(write_torch(tmp_path / "e.pt", {"a": torch.zeros(0), "b": torch.zeros(0)}))
    )
    assert tree.tie_groups == []


def test_lightning_checkpoint_branches_and_metadata(tmp_path):
    path = write_torch(tmp_path / "run.ckpt", lightning_checkpoint())
    tree = open_source(str(path))
    assert "state_dict.model.0.weight" in tree.tensors
    assert tree.tie_groups[0].paths == (
        "state_dict.model.2.weight",
        "state_dict.model.4.weight",
    )
    assert all(p.startswith("state_dict.") for p in tree.tensors)  # optimizer state matched
    meta = tree.metadata
    assert (meta["epoch"], meta["global_step"]) == (7, 140)
    assert meta["hyper_parameters"] == {
        "hidden": 8,
        "lr": 1e-3,
        "layers": [4, 8, 8, 1],
        "name": "tied",
    }
    assert meta["pytorch-lightning_version"] == "2.4.0"
    assert meta["model_state_dict"] == "state_dict"
    callback = meta["callbacks"]["ModelCheckpoint{'monitor': 'val_loss'}"]
    assert callback["best_model_score"] == pytest.approx(0.25)  # a lone scalar: metadata
    assert meta["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-3
    json.dumps(describe(tree, stats=False), allow_nan=False)  # JSON-safe all the way


def test_lightning_optimizer_state_is_matched_to_parameters(tmp_path):
    ckpt = lightning_checkpoint()
    tree = open_source(str(write_torch(tmp_path / "run.ckpt", ckpt)))
    state = tree.optimizer_state
    # the tied weight is one parameter to the optimizer: its state sits at the first path
    assert set(state) == {
        f"state_dict.model.{k}"
        for k in ("0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias")
    }
    assert set(state["state_dict.model.2.weight"]) == {"step", "exp_avg", "exp_avg_sq"}
    saved = ckpt["optimizer_states"][0]["state"][2]["exp_avg"]  # third parameter: 2.weight
    np.testing.assert_array_equal(state["state_dict.model.2.weight"]["exp_avg"].array(), saved)
    report = tree.metadata["optimizer_matching"][0]
    assert report["matched"] and report["parameters"] == 6


def test_model_optimizer_epoch_dict_with_sgd_momentum(tmp_path):
    ckpt = training_dict()
    tree = open_source(str(write_torch(tmp_path / "train.pt", ckpt)))
    assert set(tree.tensors) == {f"model.{k}" for k in ckpt["model"]}
    assert tree.metadata["epoch"] == 3
    assert tree.metadata["optimizer"]["param_groups"][0]["momentum"] == 0.9
    momentum = tree.optimizer_state["model.2.weight"]["momentum_buffer"]
    assert momentum.shape == (1, 8)
    np.testing.assert_array_equal(
        momentum.array(), ckpt["optimizer"]["state"][2]["momentum_buffer"]
    )


def test_frozen_parameters_are_matched_when_only_one_placement_fits(tmp_path):
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    net[2].requires_grad_(False)  # the optimizer never sees the head
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad])
    trained(net, optimizer)
    ckpt = {"model": net.state_dict(), "optimizer": optimizer.state_dict()}
    tree = open_source(str(write_torch(tmp_path / "frozen.pt", ckpt)))
    expected = {"model.0.weight", "model.0.bias", "model.1.weight", "model.1.bias"}
    assert set(tree.optimizer_state) == expected


def test_frozen_parameters_of_equal_shapes_are_not_guessed(tmp_path):
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    net[0].requires_grad_(False)  # is the first (8,) state 0.bias or 1.weight? cannot tell
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad])
    trained(net, optimizer)
    ckpt = {"model": net.state_dict(), "optimizer": optimizer.state_dict()}
    tree = open_source(str(write_torch(tmp_path / "frozen.pt", ckpt)))
    assert tree.optimizer_state == {}


def test_ambiguous_optimizer_state_stays_in_the_tree_unmatched(tmp_path):
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    net[0].requires_grad_(False)  # layer 0 or layer 1? shapes cannot tell
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad])
    trained(net, optimizer)
    tree = open_source(
        str(
            write_torch(
                tmp_path / "amb.pt",
                {"model": net.state_dict(), "optimizer": optimizer.state_dict()},
            )
        )
    )
    assert tree.optimizer_state == {}
    report = tree.metadata["optimizer_matching"][0]
    assert not report["matched"] and "line up" in report["reason"]
    exp_avg = tree.tensors["optimizer.state.0.exp_avg"]
    assert exp_avg.kind == "buffer"  # not counted as a parameter
    assert tree.total_tensor_elements == 40


def test_optimizer_param_names_match_by_name(tmp_path):
    net = example_net("mlp")
    optimizer = torch.optim.SGD(net.named_parameters(), lr=0.1, momentum=0.9)
    trained(net, optimizer)
    ckpt = {"net": net.state_dict(), "opt": optimizer.state_dict()}
    tree = open_source(str(write_torch(tmp_path / "named.pt", ckpt)))
    assert set(tree.optimizer_state) == {f"net.{k}" for k in net.state_dict()}
    assert tree.metadata["optimizer_matching"][0]["how"].startswith("by the parameter names")


def test_optimizer_state_without_a_model_stays_in_the_tree(tmp_path):
    net = example_net("mlp")
    optimizer = torch.optim.Adam(net.parameters())
    trained(net, optimizer)
    tree = open_source(str(write_torch(tmp_path / "opt.pt", optimizer.state_dict())))
    assert "state.0.exp_avg" in tree.tensors
    assert tree.metadata["optimizer_matching"][0]["reason"] == "no model state dict beside it"


def test_param_groups_that_do_not_list_positions_are_plain_data(tmp_path):
    """A damaged Lightning file once read as an optimizer whose "params" held a dict (its
    state looked up by it: TypeError, not a clear message; found by flipping bytes). Only
    param_groups listing parameter positions make an optimizer state dict; anything else
    is data in the tree, opened as such."""
    net = example_net("mlp")
    optimizer = torch.optim.Adam(net.parameters())
    trained(net, optimizer)
    state = optimizer.state_dict()
    state["param_groups"][0]["params"] = [
        {"not": "a position"},
        *state["param_groups"][0]["params"],
    ]
    ckpt = {"state_dict": net.state_dict(), "optimizer": state}
    tree = open_source(str(write_torch(tmp_path / "odd.pt", ckpt)))
    assert tree.optimizer_state == {} and "optimizer_matching" not in tree.metadata
    assert "optimizer.state.0.exp_avg" in tree.tensors  # kept, as data


def test_a_bare_tensor_and_a_list_of_tensors(tmp_path):
    tree = open_source(str(write_torch(tmp_path / "t.pt", torch.ones(2, 3))))
    assert list(tree.tensors) == ["tensor"]
    tree = open_source(str(write_torch(tmp_path / "l.pt", [torch.ones(2), torch.zeros(3)])))
    assert list(tree.tensors) == ["0", "1"]


@pytest.mark.parametrize("obj", [{"epoch": 3, "note": "no weights"}, [1, 2, 3], {}])
def test_a_pickle_holding_no_tensors(tmp_path, obj):
    path = write_torch(tmp_path / "empty.pt", obj)
    with pytest.raises(SourceError, match="holds no tensors") as info:
        open_source(str(path))
    assert str(path) in str(info.value)


def test_trusted_whole_module_is_live(tmp_path):
    path = write_torch(tmp_path / "model.pt", example_net("tied"))
    tree = open_source(str(path), OpenOptions(trust=True))
    assert tree.is_live and tree.reader == "torch"
    assert tree.modules["2"].shared_with == ["4"]
    assert tree.tie_groups[0].paths == ("2.weight", "4.weight")


def test_trusted_dict_holding_a_module_is_live_with_metadata(tmp_path):
    path = write_torch(tmp_path / "model.pt", {"model": example_net("mlp"), "epoch": 5})
    tree = open_source(str(path), OpenOptions(trust=True))
    assert tree.is_live
    assert tree.metadata["epoch"] == 5 and tree.metadata["model_key"] == "model"


def test_deeply_nested_containers_do_not_exhaust_the_stack(tmp_path):
    deep: list = [torch.ones(2)]
    for _ in range(3000):  # deeper than Python's default recursion limit allows walking
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # torch.save pickles recursively
    try:
        path = write_torch(tmp_path / "deep.pt", {"w": torch.ones(3), "deep": deep})
    finally:
        sys.setrecursionlimit(limit)
    tree = open_source(str(path))
    assert list(tree.tensors) == ["w"]
