"""The order a checkpoint without the model's own order is shown in: natural order (`h.2`
before `h.10`), and within a module weight, bias, running statistics as torch registers
them. The safetensors library writes names sorted by dtype, then name, so the model's own
order is lost there; this is the next best.

Two ways to the same order: `in_display_order` sorts a list of full names, and
`sort_naturally` sorts a built tree level by level (a module's tensors, then its child
modules by name), which is what opening a file of 50,000 tensors does: small sorts of names
that repeat (`weight`, `0`, `attn`) instead of one sort of 50,000 keys made of whole paths.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tree import ModuleNode

_DIGITS = re.compile(r"(\d+)")

# How torch modules register their tensors (Linear, LayerNorm, BatchNorm): shown in this order
TENSOR_RANK = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
TENSOR_RANK["num_batches_tracked"] = 4


def natural_key(name: str) -> tuple:
    """Sort key that puts `h.2` before `h.10`."""
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


class _NaturalKeys(dict):
    """natural_key of each text once (paths and names repeat)."""

    def __missing__(self, text: str) -> tuple:
        parts = _DIGITS.split(text)
        if len(parts) > 1:
            parts[1::2] = map(int, parts[1::2])
        key = self[text] = tuple(parts)
        return key


def in_display_order(names: list[str]) -> list[str]:
    """Full tensor names in the order to show them (see the module docstring)."""
    keys = _NaturalKeys()
    other = len(TENSOR_RANK)

    def key(name: str) -> tuple:
        module, _, tensor = name.rpartition(".")
        return keys[module], TENSOR_RANK.get(tensor, other), keys[tensor]

    return sorted(names, key=key)


def sort_naturally(modules: list[ModuleNode]) -> None:
    """Sort the tensors and child modules of every module in `modules` (a parent before
    its children: in the order they were made) into the order `in_display_order` gives
    their full names. A module's tensors go by (rank, natural key of the name); its children
    by where their first tensor comes in that order: the key of the first tensor below them
    (the path to its module from the parent, its rank, its name).

    It runs over every module of a file (32,500 for 50,000 tensors): a module's two tensors
    are compared rather than sorted, and children are sorted by a key looked up in a dict
    (nodes hash by identity) rather than made by a Python function per child."""
    keys = _NaturalKeys()
    tensor_keys = _TensorKeys(keys)  # name -> (rank, natural key)
    order_key: dict[ModuleNode, tuple] = {}  # module -> (its place among siblings, first key)
    below: dict[ModuleNode, str] = {}  # module without tensors -> path to its first tensor's
    for module in reversed(modules):  # children before their parent
        tensors, children = module.tensors, module.children
        if len(children) > 1:
            children.sort(key=order_key.__getitem__)
        if tensors:
            if len(tensors) == 2:
                a, b = tensors
                key, later = tensor_keys[a.name], tensor_keys[b.name]
                if later < key:
                    tensors.reverse()
                    key = later
            else:
                if len(tensors) > 2:
                    tensors.sort(key=lambda t: tensor_keys[t.name])
                key = tensor_keys[tensors[0].name]
            order_key[module] = (keys[module.name], key)
        elif children:
            head = children[0]
            path = below.get(head)
            path = below[module] = f"{head.name}.{path}" if path else head.name
            order_key[module] = (keys[f"{module.name}.{path}"], order_key[head][1])


class _TensorKeys(dict):
    """A tensor name's place among its module's tensors, (rank, natural key), made once."""

    def __init__(self, keys: _NaturalKeys) -> None:
        super().__init__()
        self.keys = keys

    def __missing__(self, name: str) -> tuple:
        key = self[name] = (TENSOR_RANK.get(name, len(TENSOR_RANK)), self.keys[name])
        return key
