"""The tree view's index (core/tree_index.py): nodes numbered in row order, the rows under
each module, and the filter, which must show exactly what a walk of the tree matching
every node's fields shows, narrowing as a text grows and widening as it shrinks."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from filter_oracle import brute_force
from torch import nn

from netexplorer.core.collector import without_cycle_collector
from netexplorer.core.handles import ArrayHandle
from netexplorer.core.tree import ModuleNode, tree_from_entries, tree_from_module
from netexplorer.core.tree_index import CHUNK, TreeFilter, build_index, index_tree
from netexplorer.examples import EXAMPLES


def expert(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))


class Block(nn.Module):
    def __init__(self, width: int = 8, experts: int = 3) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, 2)
        self.dropout = nn.Dropout(0.1)
        self.norm2 = nn.LayerNorm(width)
        self.experts = nn.ModuleList(expert(width) for _ in range(experts))
        self.register_buffer("running_mean", None)


def transformer(layers: int = 6) -> nn.Module:
    net = nn.Module()
    net.embed = nn.Embedding(16, 8)
    net.layers = nn.ModuleList(Block() for _ in range(layers))
    net.head = nn.Linear(8, 16, bias=False)
    net.head.weight = net.embed.weight  # a tie
    return net


def shown_paths(index, rows) -> set[str]:
    paths = {index.nodes[n].path for n in rows.members.tolist()}
    return paths | ({index.tree.root.path} if rows.root_shown else set())


def rows_under(index, rows, module_path: str) -> list[str]:
    lo, hi = rows.bounds(index.number_of_path(module_path))
    return [index.nodes[n].path for n in rows.members[lo:hi].tolist()]


@pytest.fixture(scope="module")
def tree():
    return tree_from_module(transformer())


def test_rows_are_each_modules_tensors_then_its_children(tree):
    index = index_tree(tree)
    assert len(index) == len(tree.modules) + len(tree.tensors)
    assert index.nodes[0] is tree.root
    for module in tree.modules.values():
        expected = [t.path for t in module.tensors] + [c.path for c in module.children]
        assert rows_under(index, index.all_rows, module.path) == expected
        number = index.number(module)
        subtree = {n.path for n in index.nodes[number : int(index.end[number])]}
        assert subtree == {m.path for m in module.walk()} | {t.path for t in module.walk_tensors()}


def test_a_path_is_found_by_lookups(tree):
    index = index_tree(tree)
    for path in ["", "layers.5.experts.2.2.bias", "head.weight", "layers.3.attn.out_proj"]:
        number = index.number_of_path(path)
        assert index.nodes[number].path == path
        expected = ["", *_prefixes(path)] if path else []
        assert [index.nodes[a].path for a in index.ancestors(number)] == expected
    assert index.number_of_path("layers.99") is None
    with pytest.raises(ValueError):
        index.number(ModuleNode("x", "x", "", "", "net.x"))


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@pytest.mark.parametrize(
    "text",
    ["a", "at", "att", "attn", "weight", "Linear", "PARAMETER", "buffer", "[3]", "net.",
     "experts.2.0", "  Bias ", "zzz", "layers.1", ".", "net.layers[5]"],
)  # fmt: skip
def test_filter_shows_what_a_walk_of_the_tree_shows(tree, text):
    index = index_tree(tree)
    result = TreeFilter(index).result_now(text)
    assert shown_paths(index, result.rows) == brute_force(tree, text)
    # each shown module's rows are its shown children, in row order
    for module in tree.modules.values():
        if module.path in shown_paths(index, result.rows):
            expected = [
                p
                for p in [t.path for t in module.tensors] + [c.path for c in module.children]
                if p in shown_paths(index, result.rows)
            ]
            assert rows_under(index, result.rows, module.path) == expected


def test_typing_narrows_the_previous_matches_and_deleting_widens(tree):
    index = index_tree(tree)
    f = TreeFilter(index)
    results = {}
    for text in ["a", "at", "att"]:
        results[text] = f.result_now(text)
        assert shown_paths(index, results[text].rows) == brute_force(tree, text)
    assert results["at"].narrowed_from == "a"  # only the matches of "a" were searched
    assert results["att"].narrowed_from == "at"
    assert set(results["att"].rows.matches) <= set(results["at"].rows.matches)
    assert set(results["at"].rows.matches) <= set(results["a"].rows.matches)
    wider = f.result_now("at")  # Backspace: the result is known
    assert wider.narrowed_from is None
    assert np.array_equal(wider.rows.matches, results["at"].rows.matches)
    assert shown_paths(index, f.result_now("").rows) == set(tree.modules) | set(tree.tensors)


def big_flat_tree(count: int):
    zeros = lambda: np.zeros((2,), np.float32)  # noqa: E731
    return tree_from_entries(
        ((f"t{i}", ArrayHandle((2,), "float32", zeros)) for i in range(count)), source="flat"
    )


def test_large_work_yields_progress_and_a_stopped_filter_leaves_nothing_behind():
    tree = big_flat_tree(3 * CHUNK)
    steps = build_index(tree)
    fractions = []
    while True:
        try:
            fractions.append(next(steps))
        except StopIteration as done:
            index = done.value
            break
    assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    f = TreeFilter(index)
    stopped = f.result("t")  # every one of them: a yield every CHUNK matches
    next(stopped)
    stopped.close()  # a newer keystroke superseded it between two chunks
    result = f.result_now("t1")
    assert shown_paths(index, result.rows) == brute_force(tree, "t1")
    assert result.match_count == len(brute_force(tree, "t1")) - 1  # the root only holds them


def test_the_text_in_pieces_finds_what_one_text_would():
    """The search text is kept in pieces of about CHUNK records (one string of a million
    tensors' records was one 100 MB copy holding the GIL): scans, narrowing and single
    records read across every piece as from one text."""
    zeros = lambda: np.zeros((2,), np.float32)  # noqa: E731
    keys = [f"block{i}.w" for i in range(2 * CHUNK)]  # a module per tensor: 4 x CHUNK nodes
    tree = tree_from_entries((k, ArrayHandle((2,), "float32", zeros)) for k in keys)
    index = index_tree(tree)
    assert len(index.texts) >= 4
    f = TreeFilter(index)
    for text in ("block1", "block39999.w", "k2", "9.w"):
        assert shown_paths(index, f.result_now(text).rows) == brute_force(tree, text)
    narrowed = f.result_now("block2999")  # among the matches of "block2", in every piece
    assert narrowed.narrowed_from is not None
    assert shown_paths(index, narrowed.rows) == brute_force(tree, "block2999")
    for number in (1, CHUNK - 1, CHUNK, CHUNK + 1, len(index) - 1):
        node = index.nodes[number]
        assert index.record(number).startswith(f"{node.path.lower()}\0")


def test_an_example_and_its_checkpoint_filter_alike():
    net = EXAMPLES["tiny-gpt"].build(0)
    live = tree_from_module(net)
    zeros = lambda: np.zeros((1,), np.float32)  # noqa: E731
    saved = tree_from_entries(
        (k, ArrayHandle(tuple(v.shape), "float32", zeros)) for k, v in net.state_dict().items()
    )
    for tree in (live, saved):
        index = index_tree(tree)
        for text in ("h.0", "weight", "ckpt", "net", "wte"):
            shown = shown_paths(index, TreeFilter(index).result_now(text).rows)
            assert shown == brute_force(tree, text)


def test_building_a_tree_pauses_the_cycle_collector_and_restores_it():
    seen = []

    @without_cycle_collector
    def build():
        seen.append(gc.isenabled())
        return inner()

    @without_cycle_collector
    def inner():
        seen.append(gc.isenabled())

    assert gc.isenabled()
    build()
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        build()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


@pytest.mark.parametrize("narrowing", [False, True])
def test_texts_most_records_hold_are_found_by_numpy_as_by_find(monkeypatch, narrowing):
    """A text most records contain (each keystroke of "experts." in a million-tensor tree)
    is searched with numpy (_dense_matches): the same nodes as the plain search, for one
    letter found many times per record, texts across the pieces, pieces with non-ASCII
    names (searched the plain way), and texts found nowhere; when narrowing and when
    switching from a scan that kept finding."""
    from netexplorer.core import tree_index

    monkeypatch.setattr(tree_index, "CHUNK", 50)  # many pieces
    zeros = lambda: np.zeros((2,), np.float32)  # noqa: E731
    keys = [f"layers.{i}.experts.{j}.w{k}" for i in range(6) for j in range(30) for k in (1, 2)]
    keys += [f"ünïcode.{j}.experts.w" for j in range(40)] + ["tail.bias"]
    tree = tree_from_entries((k, ArrayHandle((2,), "float32", zeros)) for k in keys)
    index = index_tree(tree)
    assert len(index.texts) > 8
    texts = ("e", "w", "s", "ex", "experts.1", "s.2", "w2", "ü", "zzz", "tail", "layers.5.")
    plain = {}
    for text in texts:
        rows = TreeFilter(index).result_now(text).rows
        plain[text] = (shown_paths(index, rows), rows.matches.tolist())
        assert plain[text][0] == brute_force(tree, text)  # (the oracle, and the plain way)
    monkeypatch.setattr(tree_index, "DENSE_WITHIN", 0)  # numpy whenever it may
    monkeypatch.setattr(tree_index, "DENSE_RUN", 1)
    monkeypatch.setattr(tree_index, "DENSE_GAP", 10**9)
    for text, expected in plain.items():
        f = TreeFilter(index)  # remembering nothing
        if narrowing:  # among the matches of its first letter
            f.result_now(text[0])
        result = f.result_now(text)
        assert (result.narrowed_from is not None) == (narrowing and len(text) > 1)
        shown = (shown_paths(index, result.rows), result.rows.matches.tolist())
        assert shown == expected, text  # the rows, and which of them match (not dimmed)
