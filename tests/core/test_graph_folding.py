"""Graphs of deep networks: runs of alike calls fold into one node ("Block ×24") until
opened, and wide layouts wrap into rows read like text, sized to the area they must fit."""

import itertools

import pytest
import torch
from torch import nn

from netexplorer.core.graph import FOLD, FOLD_MIN, INPUT_ID, OUTPUT_ID, TIED_TENSOR, graph_for_tree
from netexplorer.core.inputs import InputSpec
from netexplorer.core.layout import layout_view
from netexplorer.core.sources import open_source
from netexplorer.core.tree import tree_from_module
from netexplorer.example_nets import TinyGPT


def gpt_graph(layers: int):
    torch.manual_seed(0)
    tree = tree_from_module(TinyGPT(layers=layers))
    tree.default_input = InputSpec((2, 8), "tokens", high=32)
    return graph_for_tree(tree)


@pytest.fixture(scope="module")
def gpt24():
    return gpt_graph(24)


def test_alike_blocks_fold_into_one_node_with_a_count(gpt24):
    (fold,) = gpt24.folds()
    blocks = [n for n in gpt24.nodes if n.type == "Block"]
    assert fold.members == tuple(n.id for n in blocks) and len(blocks) == 24
    assert fold.label_lines() == ["Block ×24", "blocks.0 … blocks.23"]
    view = gpt24.view(depth=3, fold=True)
    shown = [n for n in view.nodes if n.kind == FOLD]
    assert shown == [fold]
    # everything inside the 24 blocks stands for the fold: selecting one highlights it
    inside = [n for n in gpt24.nodes if (n.path or "").startswith("blocks.17.")]
    assert inside and {view.visible_id(n.id) for n in inside} == {fold.id}
    # the flow goes through it, and the tie of the open level is still there
    names = {n.id: n.path or n.id for n in view.nodes}
    flow = {(names.get(e.source, e.source), names.get(e.target, e.target)) for e in view.edges}
    assert {("tok_emb", "blocks.0"), ("pos_emb", "blocks.0"), ("blocks.0", "ln_f")} <= flow
    assert all(e.source != e.target for e in view.edges)
    (link,) = view.tie_links
    assert link.kind == TIED_TENSOR and {names[link.a], names[link.b]} == {"tok_emb", "head"}
    assert len(view.nodes) == 7  # input, two embeddings, the fold, ln_f, head, output


def test_an_opened_fold_shows_every_call_and_depth_still_applies(gpt24):
    (fold,) = gpt24.folds()
    opened = gpt24.view(depth=1, fold=True, unfolded={fold.fold_key})
    assert [n.path for n in opened.nodes if n.type == "Block"] == [f"blocks.{k}" for k in range(24)]
    assert not opened.folds
    # no fold asked for: the same as before folds existed
    plain = gpt24.view(depth=1)
    assert [n.id for n in plain.nodes] == [n.id for n in opened.nodes]


def test_short_runs_and_calls_that_share_tensors_do_not_fold():
    assert gpt_graph(FOLD_MIN - 1).folds() == []  # two blocks read better side by side
    assert len(gpt_graph(FOLD_MIN).folds()) == 1
    # one cell called five times: the loop's sharing is what there is to see
    graph = graph_for_tree(open_source("example:rnn"))
    assert [n.path for n in graph.nodes].count("cell") == 5 and graph.folds() == []
    # one block placed four times (tied weights): no fold either
    shared = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    tree = tree_from_module(nn.Sequential(shared, shared, shared, shared))
    tree.default_input = InputSpec((2, 4))
    assert graph_for_tree(tree).folds() == []
    # four independent alike blocks fold
    blocks = (nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(4))
    tree = tree_from_module(nn.Sequential(*blocks))
    tree.default_input = InputSpec((2, 4))
    (fold,) = graph_for_tree(tree).folds()
    assert len(fold.members) == 4


def test_blocks_with_other_shapes_are_not_alike_and_single_layers_never_fold():
    widths = [4, 4, 4, 4, 8, 8, 8]
    blocks = [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(widths)]
    tree = tree_from_module(nn.Sequential(*blocks))
    tree.default_input = InputSpec((2, 4))
    graph = graph_for_tree(tree)
    # three blocks of Linear(4, 4) fold; the block of Linear(4, 8) has the output of the two
    # Linear(8, 8) blocks after it but other weights, so those two are a run too short
    (fold,) = graph.folds()
    assert [graph.by_id[m].path for m in fold.members] == ["0", "1", "2"]
    # four alike layers side by side (attention's q, k, v and o) are each their own
    layers = nn.Sequential(*(nn.Linear(4, 4) for _ in range(4)))
    tree = tree_from_module(layers)
    tree.default_input = InputSpec((2, 4))
    assert graph_for_tree(tree).folds() == []


def test_a_wide_chain_wraps_into_rows_that_fit_the_area(gpt24):
    (fold,) = gpt24.folds()
    view = gpt24.view(depth=1, fold=True, unfolded={fold.fold_key})
    one_row = layout_view(view)
    assert len(one_row.rows) == 1 and one_row.width > 3000
    area = (1600.0, 1000.0)
    wrapped = layout_view(view, fit=area)
    assert len(wrapped.rows) > 1
    assert wrapped.width <= area[0] and wrapped.height <= area[1]  # it fits: it was made to
    # rows read like text: each starts left of where the one above ends, below it
    for (_, bottom_a), (top_b, _) in itertools.pairwise(wrapped.rows):
        assert bottom_a < top_b
    rects = {**wrapped.nodes}
    for a, b in itertools.combinations(rects.values(), 2):
        assert not a.overlaps(b)
    blocks = [n.id for n in view.nodes if n.type == "Block"]
    row = [wrapped.row_of(wrapped.nodes[b]) for b in blocks]
    assert row == sorted(row) and row[0] < row[-1]
    # the flow from the end of a row to the start of the next runs through the gap
    for route in wrapped.edges:
        source = wrapped.nodes.get(route.edge.source)
        target = wrapped.nodes.get(route.edge.target)
        if source is None or target is None:
            continue
        assert route.points[0][0] == pytest.approx(source.right)
        assert route.points[-1][0] == pytest.approx(target.x)
        ra, rb = wrapped.row_of(source), wrapped.row_of(target)
        if ra != rb:
            gap_top, gap_bottom = wrapped.rows[ra][1], wrapped.rows[rb][0]
            assert any(gap_top < y < gap_bottom for _, y in route.points)
            for x, y in route.points[1:-1]:  # never through a node
                assert not any(
                    r.x < x < r.right and r.y < y < r.bottom for r in wrapped.nodes.values()
                )


def test_a_chain_too_long_to_fit_wraps_to_the_width_and_scrolls_down():
    graph = gpt_graph(96)
    (fold,) = graph.folds()
    view = graph.view(depth=1, fold=True, unfolded={fold.fold_key})
    area = (1200.0, 700.0)
    lay = layout_view(view, fit=area)
    assert lay.width <= area[0] and lay.height > area[1]  # rows as wide as the area
    assert len(lay.rows) >= 10


def test_a_fitting_chain_stays_one_row():
    graph = gpt_graph(2)
    view = graph.view(depth=1)
    lay = layout_view(view, fit=(5000.0, 800.0))
    assert len(lay.rows) == 1 and lay.nodes[INPUT_ID].x < lay.nodes[OUTPUT_ID].x
