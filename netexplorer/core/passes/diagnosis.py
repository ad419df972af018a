"""Why a pass failed, in one line that names the module or value at fault.

A forward pass that raises is traced back to the innermost module of the model that was
running (from the traceback's frames, told apart by the call recorder when one module sits
at several paths), with what that module takes when the input's shape was wrong. A loss or
gradient that is NaN or infinite is traced to the first parameter holding such values, or to
the output."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..calls import CallRecorder, ModuleCall
from ..errors import PassError
from ..text import first_line
from ..tree import ModuleTree
from .parameters import ParameterIndex


class Diagnosis:
    """Failure messages for passes on the model of `tree`."""

    def __init__(self, tree: ModuleTree, index: ParameterIndex) -> None:
        self.tree = tree
        self.index = index

    def forward_failure(self, exc: Exception, calls: CallRecorder | None, input_text: str) -> str:
        """`forward pass failed in module 2 (Linear, net[2]): RuntimeError: ...; the input
        was torch.rand(size=(2, 5)); net[2] takes inputs whose last dimension is 8`."""
        if isinstance(exc, PassError):
            return str(exc)
        module, site, where = self._module_at_fault(exc, calls)
        message = f"forward pass failed in {where}: {first_line(exc, with_type=True)}"
        if input_text:
            message += f"; the input was {input_text}"
        node = self.tree.modules.get(site) if site is not None else None
        hint = expectation(module, node.access if node is not None else "it")
        return message + (f"; {hint}" if hint else "")

    def non_finite_culprit(self, output: torch.Tensor) -> str:
        """Which value made the loss NaN or infinite: a parameter, else the output."""
        with torch.no_grad():
            for p in self.index.parameters:
                if p.is_floating_point() and not bool(torch.isfinite(p).all()):
                    bad = int((~torch.isfinite(p)).sum())
                    return f"parameter {self.index.name[id(p)]} holds {bad} NaN or infinite values"
            if output.is_floating_point() and not bool(torch.isfinite(output).all()):
                bad = int((~torch.isfinite(output)).sum())
                return f"the model's output holds {bad} NaN or infinite values"
        return "the output is finite, so the loss itself overflowed"

    def non_finite_grad(self) -> str:
        """`a NaN or infinite gradient for 2.weight`, or "" when every gradient is finite."""
        for p in self.index.parameters:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return f"a NaN or infinite gradient for {self.index.name[id(p)]}"
        return ""

    def _module_at_fault(
        self, exc: Exception, calls: CallRecorder | None
    ) -> tuple[nn.Module | None, str | None, str]:
        """The module at fault, its path and how to name it in a message."""
        # The innermost frame of the traceback whose `self` is one of the model's modules;
        # the recorded call (when there is one) tells its site and call apart.
        module_paths = self.index.module_paths
        module = None
        tb = exc.__traceback__
        while tb is not None:
            candidate = tb.tb_frame.f_locals.get("self")
            if isinstance(candidate, nn.Module) and id(candidate) in module_paths:
                module = candidate
            tb = tb.tb_next
        call: ModuleCall | None = calls.failed_call() if calls is not None else None
        if call is not None:
            root = self.tree.module
            called = root.get_submodule(call.site) if call.site else root
            if module is None or module is called:
                return called, call.site, self._describe_call(call.site, call.type_name, call.call)
        if module is None:
            return None, None, f"the model ({type(self.tree.module).__name__})"
        paths = module_paths[id(module)]
        where = self._describe_call(paths[0], type(module).__name__, 0)
        if len(paths) > 1:
            where += f" (the same module is also at {', '.join(paths[1:])})"
        return module, paths[0], where

    def _describe_call(self, site: str, type_name: str, call: int) -> str:
        node = self.tree.modules.get(site)
        access = node.access if node is not None else site
        label = f"module {site}" if site else "the top module"
        text = f"{label} ({type_name}, {access})"
        return text + (f", call {call}" if call else "")


def expectation(module: Any, access: str) -> str:
    """What the module at fault takes, for a wrong-shape input ("" when unknown)."""
    if isinstance(module, nn.Linear):
        return f"{access} takes inputs whose last dimension is {module.in_features} (in_features)"
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        return f"{access} takes (batch, {module.in_channels} channels, {dims} spatial dimensions)"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return f"{access} takes integer tokens from 0 to {module.num_embeddings - 1}"
    if isinstance(module, (nn.RNNCellBase, nn.RNNBase)):
        return f"{access} takes inputs whose last dimension is {module.input_size} (input_size)"
    return ""
