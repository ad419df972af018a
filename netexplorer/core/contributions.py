"""Per-use gradient contributions: which use of a shared parameter sent which gradient.

A use is one call of the innermost module that was running when a parameter was consumed
(DESIGN.md): `site` is that module's path, `call` counts that site's calls. `CallRecorder`
(calls.py) says which module call is running; this file adds what is consumed in it.

How it works. While a recorded forward pass runs, `UseTracker` (a `TorchFunctionMode`, so it
is active in the thread that entered it only) sees every torch function and tensor method
call. When an argument is a tracked parameter, it hands the function a view of the parameter
(`p.view_as(p)`) that belongs to the running module call instead; every consumption within one
call shares that call's view. Autograd passes a view's gradient on to the parameter unchanged,
so `.grad` accumulates as in plain PyTorch (the views add identity nodes only), while a hook on
each view sees the gradient that arrived through that one use. Summed over the uses, the
hooks' gradients are the parameter's gradient (up to the order of float additions).

Views cost time, and most parameters are used once. So the first recorded pass views every
parameter, and later passes view only those seen used more than once (`viewed`); the others
are only counted. Should such a parameter be used a second time after all (control flow that
depends on the data), it is viewed from its second use on, and its first use, consumed as is,
is given what is left: the pass's whole gradient minus the other uses' (`fill_first_use`).

Limits: a parameter consumed where no torch function sees it (inside a TorchScript module, or
by C++ code that reads `module.weight` itself) sends its gradient around the views; its uses
then sum to less than `.grad`. The module-call hooks are shared by every thread that calls the
module, so one pass at a time may run on a module (the tracker itself is thread-local).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .calls import CallRecorder
from .torch_import import import_torch

torch = import_torch()  # this module is torch through and through; imported when a pass runs
TorchFunctionMode = torch.overrides.TorchFunctionMode

Use = tuple[str, int]  # (site, call)

# Tensor methods that only read metadata: the parameter is looked at, not consumed, so they
# neither count as a use nor need a view (which keeps the recording cheap).
_METADATA: frozenset[Any] = frozenset(
    getattr(torch.Tensor, name)
    for name in (
        "size", "dim", "ndimension", "numel", "nelement", "stride", "element_size",
        "is_contiguous", "is_floating_point", "is_complex", "data_ptr", "storage_offset",
        "__len__", "__repr__", "__format__", "__hash__", "__bool__", "get_device",
    )
    if hasattr(torch.Tensor, name)
)  # fmt: skip


@dataclass
class Contribution:
    """The gradient that arrived through one use of a parameter, summed over the backward
    passes since the last zero grad (so the contributions of a parameter add up to `.grad`)."""

    site: str  # path of the module whose call consumed the parameter
    call: int  # which call of that site (0, 1, ...)
    values: np.ndarray


class UseTracker(TorchFunctionMode):
    """One recorded forward pass: counts each tracked parameter's uses and, when `make_views`
    and grad mode are on, gives each use its own view whose gradient is collected.

    `tracked` maps id(parameter) to the name its uses are filed under (its first path);
    `viewed` (None: all) are the ids of the parameters to view from their first use on. After
    the forward, `uses` lists each parameter's uses in forward order and `first_use_unviewed`
    the parameters whose first use was consumed as is; during the backward,
    `arrived[(name, site, call)]` collects the gradient through each viewed use."""

    def __init__(
        self,
        calls: CallRecorder,
        tracked: dict[int, str],
        *,
        make_views: bool = True,
        viewed: set[int] | None = None,
    ) -> None:
        super().__init__()
        self.calls = calls
        self.tracked = tracked
        self.make_views = make_views
        self.viewed = None if viewed is None else set(viewed)
        self.uses: dict[str, list[Use]] = {}
        self.arrived: dict[tuple[str, str, int], torch.Tensor] = {}
        self.first_use_unviewed: dict[str, torch.Tensor] = {}  # name -> the parameter
        self._views: dict[tuple[int, int], torch.Tensor] = {}  # (id(p), call index) -> view
        self._counted: set[tuple[int, int]] = set()

    def __torch_function__(
        self,
        func: Callable,
        types: Any,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> Any:
        if kwargs is None:
            kwargs = {}
        if func not in _METADATA and getattr(func, "__name__", "") != "__get__":
            tracked = self.tracked
            swapped: list | None = None
            for i, a in enumerate(args):
                if id(a) in tracked:
                    swapped = swapped or list(args)
                    swapped[i] = self._use(a)
                elif type(a) in (list, tuple) and any(id(b) in tracked for b in a):
                    # e.g. the flat weight list an nn.RNN hands to its kernel
                    swapped = swapped or list(args)
                    swapped[i] = type(a)(self._use(b) if id(b) in tracked else b for b in a)
            if swapped is not None:
                args = tuple(swapped)
            if kwargs and any(id(v) in tracked for v in kwargs.values()):
                kwargs = {k: self._use(v) if id(v) in tracked else v for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def _use(self, parameter: torch.Tensor) -> torch.Tensor:
        current = self.calls.current
        index = -1 if current is None else current.index
        key = (id(parameter), index)
        view = self._views.get(key)
        if view is not None:
            return view
        site, call = ("", 0) if current is None else (current.site, current.call)
        name = self.tracked[id(parameter)]
        if key not in self._counted:
            self._counted.add(key)
            self.uses.setdefault(name, []).append((site, call))
        if not (self.make_views and torch.is_grad_enabled() and parameter.requires_grad):
            return parameter
        if self.viewed is not None and id(parameter) not in self.viewed:
            if len(self.uses[name]) < 2:
                return parameter  # used once so far, as in earlier passes: consumed as is
            self.viewed.add(id(parameter))  # used again after all: view it from now on
            self.first_use_unviewed[name] = parameter
        view = parameter.view_as(parameter)
        view.register_hook(partial(self._arrive, (name, site, call)))
        self._views[key] = view
        return view

    def _arrive(self, key: tuple[str, str, int], grad: torch.Tensor) -> None:
        # A copy: autograd may add the next gradient in place into the tensor it hands us.
        total = self.arrived.get(key)
        if total is None:
            self.arrived[key] = grad.detach().clone()
        else:
            total.add_(grad.detach())

    def fill_first_use(self, name: str, pass_gradient: torch.Tensor) -> None:
        """Give the first use of `name`, consumed without a view, what is left of the pass's
        whole gradient of that parameter after the gradients through its other uses."""
        uses = self.uses.get(name, [])
        if not uses:
            return
        first = (name, *uses[0])
        rest = pass_gradient.detach().clone()
        for key, grad in self.arrived.items():
            if key[0] == name and key != first:
                rest.sub_(grad)
        self.arrived[first] = rest

    def release(self) -> None:
        """Drop the views (and with them the autograd graph they hold)."""
        self._views.clear()


class ContributionLedger:
    """The contributions of every parameter, summed over the recorded backward passes since
    the last zero grad.

    A parameter used once per pass keeps no copy here (for a large model that would be a
    second set of gradients): only its use is noted. Should it be used twice in a later pass,
    its gradient from before that pass is filed under that noted use."""

    def __init__(self) -> None:
        self._totals: dict[str, dict[Use, torch.Tensor]] = {}  # name -> use -> gradient
        self._single: dict[str, Use] = {}  # name -> its one use, while it has had only one
        self._cache: dict[str, list[Contribution]] = {}

    def clear(self) -> None:
        self._totals.clear()
        self._single.clear()
        self._cache.clear()

    def add(self, tracker: UseTracker, grad_before: Callable[[str], torch.Tensor | None]) -> None:
        """Add the gradients a finished backward pass sent through each use, in forward order.
        `grad_before(name)` is that parameter's `.grad` from before the pass."""
        for name, uses in tracker.uses.items():
            totals = self._totals.get(name)
            if totals is None:
                if len(uses) < 2:
                    self._single.setdefault(name, uses[0])
                    continue
                totals = self._totals[name] = {}
                earlier = grad_before(name) if name in self._single else None
                if earlier is not None:
                    totals[self._single[name]] = earlier.detach().clone()
            for site, call in uses:
                grad = tracker.arrived.get((name, site, call))
                if grad is None:  # a use whose result did not reach the loss sent nothing
                    continue
                total = totals.get((site, call))
                totals[(site, call)] = grad if total is None else total.add_(grad)
            self._cache.pop(name, None)

    def contributions(self, name: str) -> list[Contribution] | None:
        """The contributions of one parameter (None if it had fewer than two uses), as numpy
        copies made once per change."""
        cached = self._cache.get(name)
        if cached is None:
            totals = self._totals.get(name)
            if totals is None or len(totals) < 2:
                return None
            cached = self._cache[name] = [
                Contribution(site, call, grad.detach().cpu().numpy().copy())
                for (site, call), grad in totals.items()
            ]
        return cached

    def names(self) -> list[str]:
        """The parameters that have contributions."""
        return [name for name, totals in self._totals.items() if len(totals) >= 2]
