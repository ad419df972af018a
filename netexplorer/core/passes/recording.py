"""What a pass records besides its result: the module calls (and, on request, each call's
output), each parameter's uses, and the gradient that arrived through each use, accumulated
over backward passes until zero grad (contributions.py explains how uses are seen)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..calls import CallRecorder, ModuleCall, iter_tensors
from ..contributions import Contribution, ContributionLedger, Use, UseTracker
from ..handles import TorchHandle
from ..tree import ModuleTree
from .parameters import ParameterIndex


class PassCalls(CallRecorder):
    """The module calls of one pass, and optionally each call's output as numpy.

    Without activation capture only modules that can consume a parameter are hooked: those
    with parameters of their own or with children. A parameter-free leaf (ReLU, Dropout)
    cannot, and leaving it unhooked keeps its calls on PyTorch's fast path; one placed at
    several paths is hooked all the same, so that an error in it names the right path (the
    traceback names a module at one path). TorchScript modules take no hooks: their calls
    are not seen."""

    def __init__(self, tree: ModuleTree, index: ParameterIndex) -> None:
        super().__init__(tree, paths=index.module_paths)
        self.capture = False
        self.activations: dict[Use, np.ndarray] = {}
        hookable: dict[int, nn.Module] = {}
        for module in tree.module.modules():
            if not isinstance(module, torch.jit.ScriptModule):
                hookable.setdefault(id(module), module)
        self._all = list(hookable.values())
        self._consumers = [
            m for m in self._all if m._parameters or m._modules or len(self._paths[id(m)]) > 1
        ]

    def __enter__(self) -> PassCalls:
        self.clear()
        for module in self._all if self.capture else self._consumers:
            self.hook(module)
        return self

    def clear(self) -> None:
        super().clear()
        self.activations = {}

    def call_finished(self, record: ModuleCall, output: Any) -> None:
        if self.capture:
            tensor = next(iter_tensors(output), None)
            if tensor is not None and tensor.device.type != "meta":
                self.activations[(record.site, record.call)] = TorchHandle(tensor.detach()).array()


class UseBook:
    """Each parameter's uses in the last recorded pass, and the gradient through each use
    since the last zero grad.

    Views cost time and most parameters are used once: the first recorded pass views every
    parameter, later ones only those seen used more than once. Gradients the book did not
    see (a pass without recording, or gradients there before the engine) make the
    contributions not add up to `.grad`: none are shown until zero grad."""

    def __init__(self, index: ParameterIndex, *, grads_before: bool) -> None:
        self.index = index
        self.unrecorded = grads_before
        self._ledger = ContributionLedger()
        self._last_uses: dict[str, list[Use]] = {}
        self._by_path: tuple[dict, dict[str, list[Use]]] | None = None  # uses_by_path's
        self._multi_use: set[int] = set()  # ids of parameters seen used more than once
        self._counts_known = False
        self._tracked = {id(p): index.name[id(p)] for p in index.parameters}

    def tracker(self, calls: CallRecorder, *, grad: bool) -> UseTracker:
        """The use tracker of the next recorded forward pass."""
        viewed = self._multi_use if self._counts_known else None
        return UseTracker(calls, self._tracked, make_views=grad, viewed=viewed)

    def learn(self, tracker: UseTracker) -> None:
        """Take the uses a forward pass saw."""
        self._last_uses = tracker.uses
        by_path = self.index.by_path
        used_twice = (name for name, uses in tracker.uses.items() if len(uses) > 1)
        self._multi_use |= {id(by_path[name]) for name in used_twice}
        self._counts_known = True

    def add_backward(
        self, tracker: UseTracker, grad_before: dict[int, torch.Tensor | None]
    ) -> None:
        """A recorded backward pass succeeded: add what arrived through each use
        (`grad_before`: id(parameter) -> its .grad before the pass)."""
        tracker.release()
        for name, p in tracker.first_use_unviewed.items():
            before = grad_before[id(p)]
            tracker.fill_first_use(name, p.grad if before is None else p.grad - before)
        self.learn(tracker)
        if not self.unrecorded:
            by_path = self.index.by_path
            self._ledger.add(tracker, lambda name: grad_before[id(by_path[name])])

    def add_unrecorded_backward(self) -> None:
        """A backward pass ran without recording: .grad now holds what no use accounts for."""
        self.unrecorded = True
        self._ledger.clear()

    def clear(self) -> None:
        """Zero grad: nothing has arrived through any use."""
        self._ledger.clear()
        self.unrecorded = False

    def contributions(self, parameter: Any) -> list[Contribution] | None:
        """The gradient through each use of `parameter` (None: used once, or not known)."""
        if self.unrecorded:
            return None
        return self._ledger.contributions(self.index.name[id(parameter)])

    def all_contributions(self) -> dict[str, list[Contribution]]:
        """Parameter path (every path of a tied tensor) -> its contributions, for parameters
        used more than once."""
        index = self.index
        return {
            path: uses
            for p in index.parameters
            if (uses := self.contributions(p)) is not None
            for path in index.paths[id(p)]
        }

    def uses_by_path(self) -> dict[str, list[Use]]:
        """Parameter path -> (site, call) of each use in the last pass, for 2+ uses: made
        once per pass (every result carries it), shared by the results, which do not
        change it."""
        last = self._last_uses
        if self._by_path is not None and self._by_path[0] is last:
            return self._by_path[1]
        index = self.index
        by_path = {
            path: list(uses)
            for p in index.parameters
            if len(uses := last.get(index.name[id(p)], ())) >= 2
            for path in index.paths[id(p)]
        }
        self._by_path = (last, by_path)
        return by_path

    def note(self, can_record: bool) -> str:
        """Why contributions are not shown, if they are not."""
        if not can_record:
            return (
                "per-use contributions cannot be seen in a TorchScript model (it runs as "
                "compiled code, where no use is visible): each .grad holds the sum over all "
                "of its uses"
            )
        if self.unrecorded:
            return (
                "per-use contributions are not shown: .grad holds gradients from a pass run "
                "without recording (or from before the explorer); press Zero grad"
            )
        hooked = self.own_grad_hooks()
        if hooked:
            return (
                f"{', '.join(hooked[:3])}{' and more' if len(hooked) > 3 else ''} "
                f"{'has' if len(hooked) == 1 else 'have'} a gradient hook of the model's own "
                "(register_hook): it changes .grad after each use's contribution arrives, so "
                "the contributions need not add up to .grad"
            )
        return ""

    def own_grad_hooks(self) -> list[str]:
        """Paths of the parameters used more than once on which the model registered its own
        gradient hooks (the engine hooks only the views of each use, never a parameter)."""
        index = self.index
        out = []
        for p in index.parameters:
            hooks = getattr(p, "_backward_hooks", None) or getattr(
                p, "_post_accumulate_grad_hooks", None
            )
            if hooks and self.contributions(p) is not None:
                out.append(index.paths[id(p)][0])
        return out
