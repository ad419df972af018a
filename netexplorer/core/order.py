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
    from .tree import ModuleNode, TensorNode

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
    (the path to its module from the parent, its rank, its name)."""
    keys = _NaturalKeys()
    other = len(TENSOR_RANK)
    # id(module) -> (path from it to the module of its first tensor, that tensor's key)
    first: dict[int, tuple[str, tuple]] = {}

    def tensor_key(t: TensorNode) -> tuple:
        return TENSOR_RANK.get(t.name, other), keys[t.name]

    def child_key(m: ModuleNode) -> tuple:
        below, key = first[id(m)]
        return keys[f"{m.name}.{below}" if below else m.name], key

    for module in reversed(modules):  # children before their parent
        tensors, children = module.tensors, module.children
        if len(tensors) > 1:
            tensors.sort(key=tensor_key)
        if len(children) > 1:
            children.sort(key=child_key)
        if tensors:
            first[id(module)] = ("", tensor_key(tensors[0]))
        elif children:
            below, key = first[id(children[0])]
            first[id(module)] = (f"{children[0].name}.{below}" if below else children[0].name, key)
