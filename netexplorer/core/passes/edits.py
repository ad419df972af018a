"""Changing a live model's values by hand, as the notebook does (`net[2].weight.data[0, 0] =
100`, `nn.init.normal_(m.weight, 0, 0.01)`), with an undo history.

Every change keeps copies of the tensors it touched, so Undo puts them back exactly. A tied
tensor is one object: changing it at one path changes it at every path, as in PyTorch. The
initialisation schemes are the chapter's (`init_normal`, `init_constant`, `init_xavier`, its
custom `my_init`) plus zeros; on a module they treat weights and biases as the chapter does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import PassError
from .init_names import INIT_LABELS
from .parameters import ParameterIndex

MAX_UNDO = 50  # edits remembered; the oldest are forgotten


@dataclass(frozen=True)
class InitScheme:
    name: str
    label: str  # for menus: what it does, in the notebook's words
    weight: Callable[[torch.Tensor, float, torch.Generator], None]
    bias: Callable[[torch.Tensor, float, torch.Generator], None] | None  # None: untouched
    min_dims: int = 1  # tensors with fewer dimensions cannot take it


def _normal(t: torch.Tensor, _value: float, gen: torch.Generator) -> None:
    nn.init.normal_(t, mean=0.0, std=0.01, generator=gen)


def _zeros(t: torch.Tensor, _value: float, _gen: torch.Generator) -> None:
    nn.init.zeros_(t)


def _constant(t: torch.Tensor, value: float, _gen: torch.Generator) -> None:
    nn.init.constant_(t, value)


def _xavier(t: torch.Tensor, _value: float, gen: torch.Generator) -> None:
    nn.init.xavier_uniform_(t, generator=gen)


def _chapter(t: torch.Tensor, _value: float, gen: torch.Generator) -> None:
    """The chapter's `my_init`: uniform in [-10, 10], then zero where |w| < 5."""
    nn.init.uniform_(t, -10, 10, generator=gen)
    t *= t.abs() >= 5


SCHEMES: dict[str, InitScheme] = {
    s.name: s
    for s in (
        InitScheme("normal", INIT_LABELS["normal"], _normal, _zeros),
        InitScheme("zeros", INIT_LABELS["zeros"], _zeros, _zeros),
        InitScheme("constant", INIT_LABELS["constant"], _constant, _zeros),
        InitScheme("xavier_uniform", INIT_LABELS["xavier_uniform"], _xavier, None, 2),
        InitScheme("chapter", INIT_LABELS["chapter"], _chapter, None),
    )
}
assert list(SCHEMES) == list(INIT_LABELS)


@dataclass
class Edit:
    """One change: what it was, and the tensors it touched as they were before."""

    description: str
    before: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (t, copy)

    def undo(self) -> None:
        with torch.no_grad():
            for tensor, copy in self.before:
                tensor.copy_(copy)


class EditHistory:
    """The edits of one model, newest last."""

    def __init__(self, index: ParameterIndex) -> None:
        self.index = index
        self._edits: list[Edit] = []

    @property
    def last(self) -> str:
        """What Undo would undo ("" when nothing)."""
        return self._edits[-1].description if self._edits else ""

    @property
    def count(self) -> int:
        return len(self._edits)

    def set_value(self, path: str, index: tuple[int, ...], value: float, access: str) -> str:
        """`access.data[index] = value`; the description of the edit."""
        tensor = self.index.tensor(path)
        index = tuple(int(i) for i in index)
        if len(index) != tensor.dim() or any(
            not 0 <= i < n for i, n in zip(index, tensor.shape, strict=True)
        ):
            raise PassError(
                f"{access} has no element {list(index)}: its shape is {list(tensor.shape)}"
            )
        if not isinstance(value, (int, float)) or (
            not tensor.is_floating_point() and not (math.isfinite(value) and value == int(value))
        ):
            raise PassError(f"{access} holds {tensor.dtype} values: {value!r} is not one")
        where = ", ".join(str(i) for i in index)
        edit = Edit(f"{access}.data[{where}] = {value:g}")
        with torch.no_grad():
            edit.before.append((tensor, tensor.detach().clone()))
            tensor.data[index] = value
        self._push(edit)
        return edit.description

    def initialise(self, paths: list[str], scheme: str, value: float, seed: int) -> str:
        """Apply `scheme` to the tensors at `paths` (a tied tensor once); weights (2+
        dimensions) take the scheme, biases (1 dimension) what the scheme does to biases;
        the description of the edit."""
        chosen = SCHEMES.get(scheme)
        if chosen is None:
            raise PassError(f"unknown initialisation {scheme!r}; choose {', '.join(SCHEMES)}")
        tensors: dict[int, tuple[str, torch.Tensor]] = {}
        for path in paths:
            tensor = self.index.tensor(path)
            if tensor.is_floating_point() and id(tensor) not in tensors:
                tensors[id(tensor)] = (path, tensor)
        if not tensors:
            raise PassError("nothing to initialise: select a module or a floating-point tensor")
        gen = torch.Generator().manual_seed(int(seed))
        single = len(tensors) == 1
        edit = Edit(
            f"{chosen.label} on {paths[0] if len(paths) == 1 else f'{len(tensors)} tensors'}"
        )
        with torch.no_grad():
            for path, tensor in tensors.values():
                is_weight = tensor.dim() >= 2
                fn = chosen.weight if is_weight or single else chosen.bias
                if fn is None:
                    continue
                if tensor.dim() < chosen.min_dims:
                    raise PassError(
                        f"{chosen.name} needs a tensor of at least {chosen.min_dims} dimensions; "
                        f"{path} has {tensor.dim()}"
                    )
                edit.before.append((tensor, tensor.detach().clone()))
                fn(tensor.data, value, gen)
        if not edit.before:
            raise PassError(f"{chosen.name} leaves biases as they are: select a weight or a module")
        self._push(edit)
        return edit.description

    def undo(self) -> str:
        """Undo the newest edit; its description."""
        if not self._edits:
            raise PassError("nothing to undo")
        edit = self._edits.pop()
        edit.undo()
        return edit.description

    def _push(self, edit: Edit) -> None:
        self._edits.append(edit)
        del self._edits[:-MAX_UNDO]


def describe_ties(index: ParameterIndex, path: str) -> list[str]:
    """The other paths of the tensor at `path` (a tied tensor's edit changes them too)."""
    tensor: Any = index.by_path.get(path)
    if tensor is None:
        return []
    return [p for p in index.paths.get(id(tensor), []) if p != path]
