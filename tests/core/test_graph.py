"""The graph view's data and layout: nodes per module call, data flow, tie links of each kind,
collapse and depth, the hierarchy fallback with its note, and a layout without overlaps."""

import itertools
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from netexplorer.core.graph import (
    FOLD,
    INPUT_ID,
    LOOP,
    NO_CODE_NOTE,
    NO_INPUT_NOTE,
    OUTPUT_ID,
    SCRIPTED_NOTE,
    SHARED_MODULE,
    STATELESS,
    TIED_TENSOR,
    Graph,
    GraphView,
    graph_for_tree,
)
from netexplorer.core.handles import TorchHandle
from netexplorer.core.inputs import InputSpec
from netexplorer.core.layout import layout_view
from netexplorer.core.sources import open_source
from netexplorer.core.tree import tree_from_entries, tree_from_module
from netexplorer.example_nets import TinyGPT, tied


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    names = ("mlp", "nested", "tied", "sharing", "rnn", "autoencoder", "tiny-gpt")
    return {name: graph_for_tree(open_source(f"example:{name}")) for name in names}


def ids_by_path(graph: Graph) -> dict[str, str]:
    """Module path -> node id, for graphs where each path is called once."""
    return {n.path: n.id for n in graph.nodes if n.path is not None}


def flow(graph_or_view: Graph | GraphView, names: dict[str, str] | None = None) -> set[tuple]:
    """Edges as (source, target), written with paths (ports added where not the default)."""
    names = names or {}

    def name(node_id: str) -> str:
        return names.get(node_id, node_id)

    out = set()
    for e in graph_or_view.edges:
        source = name(e.source) + (":in" if e.source_port == "in" else "")
        target = name(e.target) + (":out" if e.target_port == "out" else "")
        out.add((source, target))
    return out


def path_names(graph: Graph) -> dict[str, str]:
    return {n.id: n.path for n in graph.nodes if n.path is not None}


def links(graph_or_view: Graph | GraphView, names: dict[str, str]) -> set[tuple]:
    return {
        (names[link.a], names[link.b], link.kind, tuple(link.tensors))
        for link in graph_or_view.tie_links
    }


# -- nodes and data flow ----------------------------------------------------------------------


def test_mlp_nodes_and_edges(graphs):
    g = graphs["mlp"]
    rows = [(n.id, n.kind, n.path, n.call, n.type) for n in g.nodes]
    assert rows == [
        (INPUT_ID, "input", None, None, ""),
        ("n0", "container", "", 0, "Sequential"),
        ("n1", "module", "0", 0, "Linear"),
        ("n2", "module", "1", 0, "ReLU"),
        ("n3", "module", "2", 0, "Linear"),
        (OUTPUT_ID, "output", None, None, ""),
    ]
    assert flow(g) == {(INPUT_ID, "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", OUTPUT_ID)}
    assert g.by_id[INPUT_ID].shapes == [(2, 4)] and g.by_id["n1"].shapes == [(2, 8)]
    assert g.tie_links == [] and g.has_data_flow and g.note == ""


def test_graph_json_is_the_design_shape(graphs):
    out = json.loads(json.dumps(graphs["tied"].as_dict()))
    assert {"id": "n3", "path": "2", "call": 0, "type": "Linear"}.items() <= out["nodes"][4].items()
    assert {"from": "n2", "to": "n3"} in out["edges"]
    (link,) = out["tie_links"]
    assert {"a": "n3", "b": "n5", "tensors": ["weight", "bias"]}.items() <= link.items()
    assert link["kind"] == SHARED_MODULE and out["has_data_flow"] is True


def test_nested_blocks_are_boxes_whose_ports_carry_the_flow(graphs):
    g = graphs["nested"]
    names = path_names(g)
    containers = {n.path for n in g.containers}
    assert containers == {"", "0", "0.block 0", "0.block 1", "0.block 2", "0.block 3"}
    expected = {(INPUT_ID, "0"), ("0:in", "0.block 0"), ("0.block 3", "0:out"), ("0", "1")}
    expected |= {("1", OUTPUT_ID)}
    for b in range(4):
        block = f"0.block {b}"
        expected.add((f"{block}:in", f"{block}.0"))
        expected |= {(f"{block}.{i}", f"{block}.{i + 1}") for i in range(3)}
        expected.add((f"{block}.3", f"{block}:out"))
        if b < 3:
            expected.add((block, f"0.block {b + 1}"))
    assert flow(g, names) == expected

    # blocks collapsed: one node per block, chained inside the expanded `0`
    view = g.view(depth=2)
    assert [names[n.id] for n in view.nodes if n.path is not None] == [
        "0.block 0",
        "0.block 1",
        "0.block 2",
        "0.block 3",
        "1",
    ]
    assert [b.path for b in view.boxes] == ["0"]
    assert flow(view, names) == {
        (INPUT_ID, "0"),
        ("0:in", "0.block 0"),
        ("0.block 0", "0.block 1"),
        ("0.block 1", "0.block 2"),
        ("0.block 2", "0.block 3"),
        ("0.block 3", "0:out"),
        ("0", "1"),
        ("1", OUTPUT_ID),
    }
    # everything collapsed into `0`: a chain, no self-loops
    assert flow(g.view(depth=1), names) == {(INPUT_ID, "0"), ("0", "1"), ("1", OUTPUT_ID)}
    assert flow(g.view(depth=0), names) == {(INPUT_ID, ""), ("", OUTPUT_ID)}


def test_tied_calls_of_2_and_4_are_joined_by_a_link_naming_weight_and_bias(graphs):
    g = graphs["tied"]
    at = ids_by_path(g)
    assert (at["2"], at["4"]) == ("n3", "n5")
    assert g.by_id["n3"].type == g.by_id["n5"].type == "Linear"
    chain = [INPUT_ID, *(at[str(i)] for i in range(7)), OUTPUT_ID]
    assert flow(g) == set(itertools.pairwise(chain))
    (link,) = g.tie_links
    assert (link.a, link.b, link.kind) == ("n3", "n5", SHARED_MODULE)
    assert link.tensors == ["weight", "bias"]
    assert link.paths == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert g.nodes_using("4.weight") == ["n5"] and g.links_of("n3") == [link]


def test_rnn_has_one_node_per_time_step_and_a_loop_chain(graphs):
    g = graphs["rnn"]
    steps = [n for n in g.nodes if n.path == "cell"]
    assert [n.call for n in steps] == [0, 1, 2, 3, 4]
    assert all(n.calls_at_site == 5 for n in steps)
    assert "[3/5]" in steps[2].label_lines()[1]
    ids = [n.id for n in steps]
    head = ids_by_path(g)["head"]
    expected = set(itertools.pairwise(ids)) | {(INPUT_ID, i) for i in ids}
    expected |= {(ids[-1], head), (head, OUTPUT_ID)}
    assert flow(g) == expected
    assert [(link.a, link.b, link.kind) for link in g.tie_links] == [
        (a, b, LOOP) for a, b in itertools.pairwise(ids)
    ]
    assert g.tie_links[0].tensors == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def test_autoencoder_links_encoder_and_decoder_by_the_tied_weight(graphs):
    g = graphs["autoencoder"]
    at = ids_by_path(g)
    assert flow(g) == {
        (INPUT_ID, at["encoder"]),
        (at["encoder"], at["decoder"]),
        (at["decoder"], OUTPUT_ID),
    }
    assert links(g, path_names(g)) == {
        ("encoder", "decoder", TIED_TENSOR, ("encoder.weight = decoder.weight",))
    }


def test_tiny_gpt_ties_embedding_and_head_and_keeps_residuals_inside_blocks(graphs):
    g = graphs["tiny-gpt"]
    names = path_names(g)
    assert links(g, names) == {("tok_emb", "head", TIED_TENSOR, ("tok_emb.weight = head.weight",))}
    edges = flow(g, names)
    # x = tok_emb(tokens) + pos_emb(positions) feeds the first block; positions are no input
    assert {(INPUT_ID, "tok_emb"), ("tok_emb", "blocks.0"), ("pos_emb", "blocks.0")} <= edges
    assert not any(target == "pos_emb" for _, target in edges)
    # x + attn(ln1(x)): the block's input reaches ln2 and, through, the block's output
    assert {("blocks.0:in", "blocks.0.ln1"), ("blocks.0:in", "blocks.0.ln2")} <= edges
    assert {("blocks.0.attn", "blocks.0.ln2"), ("blocks.0:in", "blocks.0:out")} <= edges
    assert {("blocks.0.attn.qkv", "blocks.0.attn.proj"), ("blocks.0", "blocks.1")} <= edges
    assert {("blocks.1", "ln_f"), ("ln_f", "head"), ("head", OUTPUT_ID)} <= edges
    # no edge jumps from the embeddings into the second block: it gets the first's output
    assert not any(s == "tok_emb" and t.startswith("blocks.1") for s, t in edges)
    # collapsed to depth 1 the tie link still joins the embedding and the head
    view = g.view(depth=1)
    assert links(view, names) == links(g, names)
    assert ("blocks.0", "blocks.1") in flow(view, names)


def test_sharing_keeps_the_three_kinds_apart(graphs):
    g = graphs["sharing"]
    assert links(g, path_names(g)) == {
        ("embed", "head", TIED_TENSOR, ("embed.weight = head.weight",)),
        ("body.0", "body.2", SHARED_MODULE, ("weight", "bias")),
        ("body.1", "body.3", STATELESS, ()),
    }


def test_a_module_called_in_a_loop_with_children_chains_each_child_and_merges_when_shut():
    class Looped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Sequential(nn.Linear(4, 4), nn.Tanh())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(3):
                x = self.layer(x)
            return x

    tree = tree_from_module(Looped())
    tree.default_input = InputSpec((2, 4))
    g = graph_for_tree(tree)
    boxes = [n.id for n in g.nodes if n.path == "layer"]
    assert len(boxes) == 3 and all(g.by_id[b].kind == "container" for b in boxes)
    kinds = sorted((g.by_id[k.a].path, k.kind) for k in g.tie_links)
    assert kinds == [("layer.0", LOOP)] * 2 + [("layer.1", STATELESS)] * 2
    view = g.view(collapsed={"layer"})
    assert [n.id for n in view.nodes] == [INPUT_ID, *boxes, OUTPUT_ID]
    assert flow(view) == set(itertools.pairwise([INPUT_ID, *boxes, OUTPUT_ID]))
    shut = {(k.a, k.b, k.kind): k.tensors for k in view.tie_links}
    assert shut == {
        (boxes[0], boxes[1], LOOP): ["0.weight", "0.bias"],
        (boxes[1], boxes[2], LOOP): ["0.weight", "0.bias"],
        (boxes[0], boxes[1], STATELESS): [],
        (boxes[1], boxes[2], STATELESS): [],
    }


class Glue(nn.Module):
    """Calls joined by functional code: split, a tensor filled in place, a sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(2, 2)
        self.c = nn.Linear(4, 4)
        self.d = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, w = self.a(x).split(2, dim=-1)
        h = torch.zeros(x.shape[0], 4)
        h[:, :2] = self.b(u)
        h[:, 2:] = v
        return self.d(self.c(h) + w.sum())


def test_functional_code_between_calls_carries_the_flow():
    tree = tree_from_module(Glue())
    tree.default_input = InputSpec((2, 4))
    g = graph_for_tree(tree)
    assert flow(g, path_names(g)) == {
        (INPUT_ID, "a"),
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("c", "d"),
        ("a", "d"),
        ("d", OUTPUT_ID),
    }


# -- collapse, expand, depth ------------------------------------------------------------------


def test_collapse_expand_and_depth(graphs):
    g = graphs["nested"]
    names = path_names(g)
    assert g.default_depth() == 3  # 23 nodes fit: everything open
    view = g.view(collapsed={"0.block 1"})
    shown = [names.get(n.id, n.id) for n in view.nodes]
    assert "0.block 1" in shown and "0.block 1.0" not in shown and "0.block 2.0" in shown
    assert view.visible_id(g.nodes_at("0.block 1.2")[0]) == g.nodes_at("0.block 1")[0]
    assert ("0.block 0.3", "0.block 0:out") in flow(view, names)
    assert ("0.block 0", "0.block 1") in flow(view, names)
    # depth 1 shuts `0`; expanding it by path opens it (its blocks stay shut at depth 1...)
    opened = g.view(depth=1, expanded={"0"})
    assert [b.path for b in opened.boxes] == ["0"]
    assert {names[n.id] for n in opened.nodes if n.path} == {
        "0.block 0",
        "0.block 1",
        "0.block 2",
        "0.block 3",
        "1",
    }
    # ...unless they are expanded too
    deeper = g.view(depth=1, expanded={"0", "0.block 2"})
    assert {b.path for b in deeper.boxes} == {"0", "0.block 2"}
    # every view's edges are between what it shows, without duplicates or self-loops
    for v in (view, opened, deeper, g.view(depth=0), g.view()):
        shown_ids = {n.id for n in v.nodes} | {b.id for b in v.boxes}
        assert len(set(v.edges)) == len(v.edges)
        for e in v.edges:
            assert e.source in shown_ids and e.target in shown_ids
            assert e.source != e.target or (e.source_port, e.target_port) == ("in", "out")


def test_values_per_use_land_on_nodes_and_gather_on_collapsed_boxes(graphs):
    g = graphs["tied"]
    on_nodes = g.values_on_nodes({("2", 0): 1.5, ("4", 0): 2.5, ("9", 0): 7.0})
    assert on_nodes == {"n3": 1.5, "n5": 2.5}
    assert g.node_for_call("4", 0) == "n5" and g.node_for_call("4", 1) is None
    assert g.view().values_on_visible(on_nodes) == on_nodes
    assert g.view(depth=0).values_on_visible(on_nodes, combine=sum) == {"n0": 4.0}


# -- without data flow ------------------------------------------------------------------------


def _assert_tied_hierarchy(g: Graph, note_start: str, kind: str) -> None:
    assert not g.has_data_flow and g.edges == [] and g.note.startswith(note_start)
    at = ids_by_path(g)
    assert {"", "2", "4"} <= set(at)
    (link,) = g.tie_links
    assert (link.a, link.b, link.kind) == (at["2"], at["4"], kind)
    assert link.paths == [("2.weight", "4.weight"), ("2.bias", "4.bias")]
    assert g.as_dict()["note"] == g.note
    layout_view(g.view())  # lays out without data flow too


def test_checkpoint_with_storage_shared_tensors_gets_the_hierarchy_and_tie_links(tmp_path):
    path = tmp_path / "tied.pt"
    torch.save(tied().state_dict(), path)
    state = torch.load(path, weights_only=True)
    tree = tree_from_entries([(k, TorchHandle(v, snapshot=False)) for k, v in state.items()])
    g = graph_for_tree(tree)
    _assert_tied_hierarchy(g, NO_CODE_NOTE, TIED_TENSOR)
    assert g.tie_links[0].tensors == ["2.weight = 4.weight", "2.bias = 4.bias"]


def test_checkpoint_views_over_one_storage_are_tied():
    weight = torch.randn(3, 8)
    entries = [
        ("encoder.weight", TorchHandle(weight, snapshot=False)),
        ("encoder.bias", TorchHandle(torch.zeros(3), snapshot=False)),
        ("decoder.weight", TorchHandle(weight.view(3, 8), snapshot=False)),
    ]
    g = graph_for_tree(tree_from_entries(entries))
    assert links(g, path_names(g)) == {
        ("encoder", "decoder", TIED_TENSOR, ("encoder.weight = decoder.weight",))
    }
    assert [n.label_lines() for n in g.nodes[1:]] == [["encoder"], ["decoder"]]


class Refuse(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this layer refuses\nsecond line")


def test_a_forward_that_raises_gets_the_hierarchy_tie_links_and_a_note():
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, Refuse(), shared)
    tree = tree_from_module(net)
    tree.default_input = InputSpec((2, 4))
    g = graph_for_tree(tree)
    assert g.note == "the forward pass raised ValueError in module `3` (Refuse): this layer refuses"
    _assert_tied_hierarchy(g, "the forward pass raised", SHARED_MODULE)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_a_model_with_torchscript_inside_gets_the_hierarchy_and_a_note():
    net = nn.Sequential(nn.Linear(4, 4), torch.jit.script(nn.Sequential(nn.Linear(4, 4))))
    tree = tree_from_module(net)
    tree.default_input = InputSpec((2, 4))
    g = graph_for_tree(tree)
    assert g.note == f"module `1` is TorchScript, {SCRIPTED_NOTE}"
    assert not g.has_data_flow and len(g.nodes) == 4


class NoInputLayer(nn.Module):
    """Nothing to read an input from: no layer, a parameter used directly."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return x * self.scale


def test_a_model_whose_input_cannot_be_guessed_gets_the_hierarchy_and_a_note():
    tree = tree_from_module(NoInputLayer())
    assert tree.default_input is None
    g = graph_for_tree(tree)
    assert not g.has_data_flow and g.note == NO_INPUT_NOTE
    # given an input, the same model has its data flow
    g = graph_for_tree(tree, input_spec=InputSpec((3, 4)))
    assert g.has_data_flow and g.by_id[INPUT_ID].shapes == [(3, 4)]


def test_a_model_without_input_gets_the_batch_its_first_layer_takes():
    tree = tree_from_module(tied())
    assert tree.default_input is None
    g = graph_for_tree(tree)  # Linear(4, 8) first: a batch of (2, 4)
    assert g.has_data_flow and g.by_id[INPUT_ID].shapes == [(2, 4)]


def test_a_wrong_input_names_the_module_at_fault():
    tree = tree_from_module(tied())
    g = graph_for_tree(tree, input_spec=InputSpec((2, 5)))
    assert g.note.startswith("the forward pass raised RuntimeError in module `0` (Linear): ")


def test_the_pass_leaves_the_model_as_it_was():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    net.train()
    net[2].eval()
    stats = net[1].running_mean.clone()
    tree = tree_from_module(net)
    tree.default_input = InputSpec((3, 4))
    g = graph_for_tree(tree)
    assert g.has_data_flow
    assert [m.training for m in net.modules()] == [True, True, True, False]
    assert torch.equal(net[1].running_mean, stats) and int(net[1].num_batches_tracked) == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_graph_and_layout_import_neither_torch_nor_networkx_nor_qt():
    code = (
        "import sys, netexplorer.core.graph, netexplorer.core.layout;"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'torch', 'networkx') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- layout -----------------------------------------------------------------------------------


class Transformer12(nn.Module):
    """A 12-layer transformer encoder (PyTorch's own layers) between an embedding and a head."""

    def __init__(self, vocab: int = 50, width: int = 32, layers: int = 12) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)))


@pytest.fixture(scope="module")
def transformer12() -> Graph:
    torch.manual_seed(0)
    tree = tree_from_module(Transformer12())
    tree.default_input = InputSpec((2, 6), "tokens", high=50)
    return graph_for_tree(tree)


def assert_readable(view: GraphView) -> None:
    """Nothing overlaps except a box and what is inside it; boxes hold their contents; data
    flows left to right; routes start and end on the nodes they join."""
    lay = layout_view(view)
    assert set(lay.nodes) == {n.id for n in view.nodes}
    assert set(lay.boxes) == {b.id for b in view.boxes}
    rects = {**lay.nodes, **lay.boxes}

    def around(item: str) -> set[str]:
        out, box = set(), view.box_of(item)
        while box is not None:
            out.add(box)
            box = view.box_of(box)
        return out

    for a, b in itertools.combinations(rects, 2):
        if a in around(b):
            assert rects[a].contains(rects[b]), (a, b)
        elif b in around(a):
            assert rects[b].contains(rects[a]), (a, b)
        else:
            assert not rects[a].overlaps(rects[b]), (a, b, rects[a], rects[b])
    for a in rects:
        assert rects[a].x >= 0 and rects[a].y >= 0
        assert rects[a].right <= lay.width + 1e-6 and rects[a].bottom <= lay.height + 1e-6
    for route in lay.edges:
        e = route.edge
        start, end = route.points[0], route.points[-1]
        if e.source_port == "out":
            assert start == pytest.approx((rects[e.source].right, start[1]))
            assert rects[e.source].y <= start[1] <= rects[e.source].bottom
        if e.target_port == "in":
            assert end == pytest.approx((rects[e.target].x, end[1]))
            assert rects[e.target].y <= end[1] <= rects[e.target].bottom
        xs = [p[0] for p in route.points]
        assert xs == sorted(xs), route  # along the flow, never back


def test_layout_of_the_notebook_nets_and_the_tiny_gpt_does_not_overlap(graphs):
    for name in ("mlp", "nested", "tied", "sharing", "rnn", "autoencoder", "tiny-gpt"):
        g = graphs[name]
        assert_readable(g.view())
        assert_readable(g.view(depth=1))
    assert_readable(graphs["nested"].view(depth=2))


def test_layout_of_a_chain_is_a_straight_row(graphs):
    g = graphs["tied"]
    lay = layout_view(g.view())
    assert json.loads(json.dumps(lay.as_dict()))["nodes"]["n3"] == lay.nodes["n3"].as_list()
    order = [INPUT_ID, *(f"n{i}" for i in range(1, 8)), OUTPUT_ID]
    xs = [lay.nodes[i].x for i in order]
    assert xs == sorted(xs)
    centres = {round(lay.nodes[i].center[1], 3) for i in order}
    assert len(centres) == 1


def test_layout_of_a_12_layer_transformer(transformer12):
    g = transformer12
    layers = [n for n in g.nodes if n.type == "TransformerEncoderLayer"]
    assert len(layers) == 12
    assert g.default_depth() == 2  # each layer one node
    # folded, the twelve layers are one node, so every level inside them can be open
    depth = g.default_depth(fold=True)
    assert depth == max(n.depth for n in g.containers) + 1
    folded = g.view(depth=depth, fold=True)
    (fold,) = [n for n in folded.nodes if n.kind == FOLD]
    assert fold.members == tuple(n.id for n in layers)
    assert fold.label_lines()[0] == "TransformerEncoderLayer ×12"
    for view in (g.view(), g.view(depth=2), g.view(depth=depth), folded):
        assert_readable(view)
    lay = layout_view(g.view(depth=2))
    xs = [lay.nodes[n.id].x for n in layers]
    assert xs == sorted(xs)


def test_layout_without_data_flow_lays_each_box_out_in_order():
    state = TinyGPT().state_dict()
    tree = tree_from_entries([(k, TorchHandle(v, snapshot=False)) for k, v in state.items()])
    g = graph_for_tree(tree)
    for depth in (1, 2, 3, None):
        assert_readable(g.view(depth=depth))
    lay = layout_view(g.view(depth=1))
    top = [n.id for n in g.nodes if n.depth == 1]
    assert [lay.nodes[i].x for i in top] == sorted(lay.nodes[i].x for i in top)
