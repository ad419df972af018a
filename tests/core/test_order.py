"""The order a checkpoint without the model's order is shown in (core/order.py): sorting the
built tree level by level gives exactly the order of sorting the full names, and shapes read
from files are counted without multiplying past what any tensor holds."""

from __future__ import annotations

import random

from netexplorer.core.handles import ArrayHandle, element_count
from netexplorer.core.limits import MAX_SIZE
from netexplorer.core.order import in_display_order
from netexplorer.core.tree import tree_from_entries

# name pieces that test the corners: digits with leading zeros, characters that sort before
# the dot ("-", " ", "!"), names that are prefixes of others, the tensor names torch ranks
PIECES = ["a", "b", "a-b", "a b", "1", "01", "10", "2", "x1", "x10", "x1-", "weight", "bias"]
PIECES += ["running_mean", "num_batches_tracked", "_", "a_b", "-", "!", "A", "é", "h", "h.0"]


def _handle() -> ArrayHandle:
    return ArrayHandle((1,), "float32", lambda: None)


def test_sorting_the_tree_gives_the_order_of_sorting_the_names():
    rng = random.Random(0)
    for _ in range(1500):
        names = {
            ".".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))
            for _ in range(rng.randint(1, 12))
        }
        shuffled = list(names)
        rng.shuffle(shuffled)
        flat = tree_from_entries([(n, _handle()) for n in in_display_order(shuffled)])
        natural = tree_from_entries([(n, _handle()) for n in shuffled], natural_order=True)
        assert list(natural.tensors) == list(flat.tensors), shuffled
        assert list(natural.modules) == list(flat.modules), shuffled


def test_natural_order_of_a_model():
    names = ["h.10.bias", "h.2.weight", "h.10.weight", "h.2.bias", "wte.weight", "h.2.ln.bias"]
    tree = tree_from_entries([(n, _handle()) for n in names], natural_order=True)
    assert list(tree.tensors) == [
        "h.2.weight",
        "h.2.bias",
        "h.2.ln.bias",
        "h.10.weight",
        "h.10.bias",
        "wte.weight",
    ]


class _Counted(list):
    """A shape that counts how many of its dimensions were looked at."""

    seen = 0

    def __iter__(self):
        for n in super().__iter__():
            self.seen += 1
            yield n


def test_element_counts_stop_past_the_bound():
    assert element_count([2, 3, 4], MAX_SIZE) == 24
    assert element_count([], MAX_SIZE) == 1
    assert element_count([0, 2**40], MAX_SIZE) == 0
    assert element_count([3, True], MAX_SIZE) is None  # a bool is not a count
    assert element_count([3, -1], MAX_SIZE) is None
    assert element_count([2**62, 2**62, 0], MAX_SIZE) is None  # past 2**63 before the 0
    shape = _Counted([2**62] * 100_000)  # multiplied in full: half a minute
    assert element_count(shape, MAX_SIZE) is None
    assert shape.seen <= 3
