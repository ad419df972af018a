"""ModuleTree from live modules and from flat checkpoint entries: paths, order, access
expressions, ties, modules at several paths, unique parameter counts."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from netexplorer.core.errors import UnknownPathError
from netexplorer.core.handles import ArrayHandle, TorchHandle
from netexplorer.core.tree import ModuleTree, tree_from_entries, tree_from_module
from netexplorer.example_nets import nested, tied
from netexplorer.examples import EXAMPLES


def test_core_and_cli_import_neither_qt_nor_torch():
    # pytest-qt has imported Qt into this process, so ask a fresh interpreter
    code = (
        "import sys, netexplorer.cli, netexplorer.examples, netexplorer.core.describe, "
        "netexplorer.core.display, netexplorer.core.sources, netexplorer.core.tree;"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_nested_keys_and_shapes_follow_state_dict_order():
    net = nested()
    tree = tree_from_module(net)
    expected = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert [(t.path, t.shape) for t in tree.tensors.values()] == expected
    assert list(tree.tensors)[:3] == [
        "0.block 0.0.weight",
        "0.block 0.0.bias",
        "0.block 0.2.weight",
    ]


def test_access_expression_indexes_sequential_by_position():
    net = nested()
    tree = tree_from_module(net)
    assert tree.node("0.block 1.0.bias").access == "net[0][1][0].bias"
    assert tree.node("0.block 3").access == "net[0][3]"
    # the expression really reaches the tensor
    assert eval(tree.node("0.block 1.0.bias").access, {"net": net}) is net[0][1][0].bias


def test_access_expressions_for_attributes_lists_dicts_and_odd_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(2, 2)
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(2, 3)})
            self.scale = nn.Parameter(torch.ones(1))
            self.add_module("odd name", nn.Linear(2, 2))
            self.add_module("lambda", nn.Linear(2, 2))

    net = Net()
    tree = tree_from_module(net)
    assert tree.node("encoder.weight").access == "net.encoder.weight"
    assert tree.node("layers.1.bias").access == "net.layers[1].bias"
    assert tree.node("heads.cls.weight").access == "net.heads['cls'].weight"
    assert tree.node("scale").access == "net.scale"
    for path in ("odd name.weight", "lambda.weight", "heads.cls.weight", "layers.1.bias"):
        assert eval(tree.node(path).access, {"net": net}) is net.get_parameter(path)


def test_tied_net_groups_module_aliases_and_unique_count():
    net = tied()
    tree = tree_from_module(net)
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert tree.modules["4"].shared_with == ["2"]
    assert tree.modules["2"].shared_with == ["4"]
    assert tree.total_parameters == sum(p.numel() for p in net.parameters()) == 121
    # state_dict has both paths: the tree keeps both
    assert set(net.state_dict()) == set(tree.tensors)
    assert tree.tie_partners("4.bias") == ["2.bias"]
    assert tree.modules["2"].parameter_count == 72


def test_three_kinds_of_sharing_are_told_apart():
    tree = tree_from_module(EXAMPLES["sharing"].build(0))
    embed_head = tree.tie_group("embed.weight")
    assert embed_head is not None and embed_head.paths == ("embed.weight", "head.weight")
    # a tensor tied across different modules: the modules themselves are not aliases
    assert not tree.modules["embed"].shared_with and not tree.modules["head"].shared_with
    # one module object at two paths, with parameters
    assert tree.modules["body.0"].shared_with == ["body.2"]
    assert tree.modules["body.0"].has_parameters
    # a parameter-free module reused
    assert tree.modules["body.1"].shared_with == ["body.3"]
    assert not tree.modules["body.1"].has_parameters
    net = tree.module
    assert tree.total_parameters == sum(p.numel() for p in net.parameters())


def test_buffers_are_kept_apart_from_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    tree = tree_from_module(net)
    assert [t.path for t in tree.buffers] == [
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert tree.total_parameters == sum(p.numel() for p in net.parameters())
    assert tree.first_tensor("1").path == "1.weight"


def test_unknown_path_suggests_close_matches():
    tree = tree_from_module(tied())
    with pytest.raises(UnknownPathError, match=r"did you mean '2\.weight'"):
        tree.node("2.wieght")


def test_meta_modules_tie_by_identity():
    with torch.device("meta"):
        net = tied()
    tree = tree_from_module(net)
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert not tree.tensors["0.weight"].handle.has_values
    with pytest.raises(ValueError, match="meta"):
        tree.tensors["0.weight"].handle.array()


def test_checkpoint_entries_tie_by_shared_storage(tmp_path):
    path = tmp_path / "tied.pt"
    torch.save(tied().state_dict(), path)
    state = torch.load(path, weights_only=True)
    tree = tree_from_entries(
        ((k, TorchHandle(v, snapshot=False)) for k, v in state.items()), source=str(path)
    )
    assert [g.paths for g in tree.tie_groups] == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert tree.total_tensor_elements == 121  # of unknown kind in a file
    assert tree.node("0.weight").access == "net[0].weight"
    assert tree.modules["2"].type_name == ""


def test_checkpoint_views_of_one_storage_are_not_ties_unless_identical():
    base = torch.arange(12.0)
    entries = [
        ("a", TorchHandle(base[:6].view(2, 3), snapshot=False)),
        ("b", TorchHandle(base[6:].view(2, 3), snapshot=False)),  # same storage, other offset
        ("c", TorchHandle(base[:6].view(2, 3), snapshot=False)),  # same region as a
        ("d", TorchHandle(base[:6].view(3, 2), snapshot=False)),  # same offset, other shape
    ]
    tree = tree_from_entries(entries)
    assert [g.paths for g in tree.tie_groups] == [("a", "c")]


def test_live_handles_return_snapshots():
    net = nn.Linear(2, 2)
    tree = tree_from_module(net)
    before = tree.tensors["weight"].handle.array()
    kept = before.copy()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert (before == kept).all()  # the array handed out never changes under its holder
    assert (tree.tensors["weight"].handle.array() == kept + 1).all()


def test_bfloat16_parameters_read_as_float32():
    net = nn.Linear(3, 2).to(torch.bfloat16)
    tree = tree_from_module(net)
    handle = tree.tensors["weight"].handle
    assert handle.dtype == "bfloat16"
    values = handle.array()
    assert values.dtype.name == "float32"
    assert (values == net.weight.float().detach().numpy()).all()


def test_keys_in_a_nested_state_dict_are_reached_by_item_access():
    entries = [
        ("state_dict.0.weight", TorchHandle(torch.zeros(2, 2), snapshot=False)),
        ("optimizer_states.0.state.0.exp_avg", TorchHandle(torch.zeros(2), snapshot=False)),
    ]
    tree = tree_from_entries(entries, containers=[("state_dict",), ("optimizer_states", "0")])
    assert tree.node("state_dict.0.weight").access == "ckpt['state_dict']['0.weight']"
    assert tree.node("state_dict.0").access == "ckpt['state_dict']"
    assert (
        tree.node("optimizer_states.0.state.0.exp_avg").access
        == "ckpt['optimizer_states'][0]['state.0.exp_avg']"
    )
    assert tree.root.access == "ckpt"


def test_a_tree_built_again_over_nodes_whose_kinds_changed_counts_them_again():
    """A reader that learns which tensors are parameters after building (TorchScript) builds
    the tree again over the same nodes: no count of the kind that is gone is left behind."""
    handle = lambda: ArrayHandle((2, 3), "float32", lambda: None)  # noqa: E731
    tree = tree_from_entries([("a.weight", handle()), ("a.bias", handle())])
    assert (tree.total_tensor_elements, tree.total_parameters) == (12, 0)
    for node in tree.tensors.values():
        node.kind = "parameter"
    again = ModuleTree(tree.root, tree.tie_groups)
    assert (again.total_tensor_elements, again.total_parameters) == (0, 12)
    assert (again.modules["a"].tensor_elements, again.modules["a"].parameter_count) == (0, 12)
