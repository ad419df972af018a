"""What netexplorer prints is safe to print: names from a file never reach the terminal as
control sequences, JSON is strict JSON, and numbers past float64 are said, not mangled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from netexplorer.cli import main
from netexplorer.core.compare import compare_trees
from netexplorer.core.describe import summary_text, to_json
from netexplorer.core.handles import ArrayHandle
from netexplorer.core.text import printable
from netexplorer.core.tree import tree_from_entries

CONTROLS = ("\x1b", "\x07", "\x9b", "\r", "\u202e")
NAMES = ["\x1b]0;pwned\x07w", "\x1b[2J\x1b[Hclear.bias", "csi\x9b31m.x", "cr\rname", "rtl\u202ex"]


def _tree(**arrays: np.ndarray):
    entries = [
        (name, ArrayHandle(a.shape, str(a.dtype), lambda a=a: a)) for name, a in arrays.items()
    ]
    return tree_from_entries(entries, source="test")


def test_names_with_terminal_escapes_are_printed_escaped():
    tree = _tree(**{name: np.zeros(2, np.float32) for name in NAMES})
    text = summary_text(tree)
    assert not any(c in text for c in CONTROLS)
    assert "\\x1b]0;pwned\\x07w" in text and "rtl\\u202ex" in text


def test_printable_leaves_ordinary_text_alone():
    assert printable("layers.0.attn.weight  [768, 768]  float32 · ü") == (
        "layers.0.attn.weight  [768, 768]  float32 · ü"
    )
    assert printable("a\tb\nc") == "a\\x09b\\x0ac"


def test_a_message_naming_a_crafted_shard_is_printed_escaped(tmp_path, capsys):
    folder = tmp_path / "hf"
    folder.mkdir()
    index = {"weight_map": {"w": "\x1b]0;pwned\x07.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert main([str(folder), "--summary"]) == 2
    err = capsys.readouterr().err
    assert "is missing" in err and not any(c in err for c in CONTROLS)
    assert len(err.strip().splitlines()) == 1


def test_json_is_strict_even_with_a_nan_where_a_number_goes():
    out = to_json({"metadata": {"loss": math.nan, "best": -math.inf}, "ok": [1.5]})
    assert json.loads(out) == {"metadata": {"loss": "nan", "best": "-inf"}, "ok": [1.5]}


def test_comparing_values_near_the_float64_limit():
    big = np.array([1.7e308, -1.7e308, 1.0, 0.0])
    comparison = compare_trees(_tree(w=big), _tree(w=-big))
    c = comparison.common["w"]
    assert c.relative_change == pytest.approx(2.0)  # ||B-A|| = 2 ||A||, both past float64
    assert c.max_abs_diff == math.inf  # 3.4e308: past float64, said as such
    assert c.norm_a == math.inf
    json.dumps(comparison.as_dict(), allow_nan=False)
    assert "inf" in comparison.text()


def test_comparing_tiny_values():
    a, b = np.array([1e-310, 0.0]), np.array([3e-310, 0.0])
    c = compare_trees(_tree(w=a), _tree(w=b)).common["w"]
    assert c.relative_change == pytest.approx(2.0, rel=1e-6)


def test_comparing_expanded_and_strided_tensors():
    """Both expanded the same way: compared by what they store (10**12 elements were read
    one by one); a transposed view against a contiguous copy: element by element."""
    a = np.broadcast_to(np.array([1.0, 2.0]), (2**39, 2))
    b = np.broadcast_to(np.array([1.0, 4.0]), (2**39, 2))
    c = compare_trees(_tree(w=a), _tree(w=b)).common["w"]
    assert c.relative_change == pytest.approx(2 / math.sqrt(5))
    assert c.max_abs_diff == 2.0
    assert c.norm_a == pytest.approx(math.sqrt(5 * 2**39))
    m = np.arange(12.0).reshape(3, 4)
    same = compare_trees(_tree(w=m.T), _tree(w=np.ascontiguousarray(m.T))).common["w"]
    assert same.relative_change == 0.0 and same.max_abs_diff == 0.0
    diff = compare_trees(_tree(w=a), _tree(w=b)).difference("w")
    assert diff.shape == a.shape and diff[2**38].tolist() == [0.0, 2.0]
