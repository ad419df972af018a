"""Comparing two trees: key differences, relative changes, B−A, prefixes, progress."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from netexplorer.core.compare import compare_keys, compare_trees, iter_compare
from netexplorer.core.errors import UnknownPathError
from netexplorer.core.handles import ArrayHandle
from netexplorer.core.tree import tree_from_entries


def tree(source: str, **tensors: np.ndarray | tuple[np.ndarray, str]):
    """A checkpoint tree of numpy arrays; keys use "__" for "." (keyword arguments)."""
    entries = []
    for key, value in tensors.items():
        array, dtype = value if isinstance(value, tuple) else (value, str(value.dtype))
        entries.append((key.replace("__", "."), ArrayHandle(array.shape, dtype, lambda a=array: a)))
    return tree_from_entries(entries, source=source, reader="test")


def test_key_differences_without_reading_data():
    a = tree("a", fc__weight=np.ones((3, 4)), fc__bias=np.ones(3), old=np.ones(2))
    b = tree("b", fc__weight=np.ones((4, 4)), fc__bias=np.ones(3, np.float16), new=np.ones(1))
    c = compare_keys(a, b)
    assert c.only_in_a == ["old"] and c.only_in_b == ["new"]
    assert [(s.path, s.shape_a, s.shape_b) for s in c.shape_changes] == [
        ("fc.weight", (3, 4), (4, 4))
    ]
    assert [(d.path, d.dtype_a, d.dtype_b) for d in c.dtype_changes] == [
        ("fc.bias", "float64", "float16")
    ]
    assert not c.computed and c.common["fc.bias"].relative_change is None


def test_relative_change_and_sorting():
    base = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    a = tree("a", same=base, small=base, big=base, zero_a=np.zeros(2), both_zero=np.zeros(2))
    b = tree(
        "b",
        same=base.copy(),
        small=base * 1.01,
        big=base * 2,
        zero_a=np.ones(2),
        both_zero=np.zeros(2),
    )
    c = compare_trees(a, b)
    rel = {k: v.relative_change for k, v in c.common.items()}
    assert rel["same"] == 0 and rel["both_zero"] == 0
    assert rel["small"] == pytest.approx(0.01, rel=1e-4)
    assert rel["big"] == pytest.approx(1.0)
    assert rel["zero_a"] == math.inf
    assert [x.path for x in c.by_relative_change()][:3] == ["zero_a", "big", "small"]
    assert [x.path for x in c.by_relative_change(descending=False)][-1] == "zero_a"
    assert c.common["big"].max_abs_diff == pytest.approx(12)


def test_nan_gives_no_relative_change_and_sorts_last():
    a = tree("a", w=np.array([1.0, np.nan]), v=np.ones(2))
    b = tree("b", w=np.array([1.0, 2.0]), v=np.ones(2) * 3)
    c = compare_trees(a, b)
    assert c.common["w"].relative_change is None
    assert [x.path for x in c.by_relative_change()] == ["v", "w"]
    json.dumps(c.as_dict(), allow_nan=False)


def test_chunked_norms_equal_direct_ones():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(37, 11)), rng.normal(size=(37, 11))
    work = iter_compare(tree("a", w=x), tree("b", w=y), chunk=10)
    fractions = []
    while True:
        try:
            fractions.append(next(work)[0])
        except StopIteration as done:
            c = done.value
            break
    assert len(fractions) == 41 and fractions == sorted(fractions) and fractions[-1] == 1.0
    expected = np.linalg.norm(y - x) / np.linalg.norm(x)
    assert c.common["w"].relative_change == pytest.approx(expected)


def test_progress_can_stop_early():
    work = iter_compare(tree("a", w=np.ones(100)), tree("b", w=np.zeros(100)), chunk=10)
    fraction, text = next(work)
    assert fraction == pytest.approx(0.1) and "w" in text
    work.close()  # the UI cancels by ceasing to iterate


def test_difference_is_b_minus_a():
    a = tree("a", w=np.array([[1.0, 2.0]], np.float32), h=(np.ones(2, np.float32), "bfloat16"))
    b = tree("b", w=np.array([[1.5, 1.0]], np.float32), h=np.full(2, 3, np.float32))
    c = compare_trees(a, b)
    diff = c.difference("w")
    assert diff.dtype == np.float32
    np.testing.assert_array_equal(diff, [[0.5, -1.0]])
    np.testing.assert_array_equal(c.difference("h"), [2.0, 2.0])


def test_difference_refuses_unknown_paths_and_shape_changes():
    c = compare_trees(tree("a", w=np.ones(2), v=np.ones(2)), tree("b", w=np.ones(3)))
    with pytest.raises(ValueError, match="no difference to show"):
        c.difference("w")
    with pytest.raises(UnknownPathError):
        c.difference("v")


def test_a_training_checkpoint_against_its_exported_weights():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 4))
    a = tree("run.ckpt", state_dict__fc__weight=w, state_dict__fc__bias=np.ones(4), epoch=w[0])
    b = tree("model.safetensors", fc__weight=w * 1.5, fc__bias=np.ones(4))
    c = compare_trees(a, b)
    assert (c.prefix_a, c.prefix_b) == ("state_dict.", "")
    assert set(c.common) == {"fc.weight", "fc.bias"} and c.only_in_a == ["epoch"]
    assert c.common["fc.weight"].relative_change == pytest.approx(0.5)
    np.testing.assert_allclose(c.difference("state_dict.fc.weight"), w * 0.5)


def test_text_and_dict():
    a = tree("a.pt", fc__weight=np.ones((2, 2)), gone=np.ones(1))
    b = tree("b.pt", fc__weight=np.ones((2, 2)) * 2, added=np.ones(3))
    c = compare_trees(a, b)
    text = c.text()
    assert "A = a.pt, B = b.pt" in text
    assert "Only in A:" in text and "gone" in text and "Only in B:" in text and "added" in text
    assert "||B-A|| / ||A||" in text and "fc.weight" in text
    d = json.loads(json.dumps(c.as_dict(), allow_nan=False))
    assert d["only_in_a"] == ["gone"] and d["only_in_b"] == ["added"]
    assert d["tensors"][0]["path"] == "fc.weight" and d["tensors"][0]["relative_change"] == 1.0
