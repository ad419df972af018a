"""The optimizer a pass engine steps with: made on the first step, again when the user picks
another kind, its learning rate set from the config before every step."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import PassError
from ..text import first_line
from .config import PassConfig


class OptimizerStep:
    """One `optimizer.step()` at a time over the trainable parameters of `parameters`."""

    def __init__(self, parameters: list[Any]) -> None:
        self._parameters = parameters
        self._optimizer: torch.optim.Optimizer | None = None
        self._made_for = ""

    def __call__(self, config: PassConfig) -> bool:
        """Step with the gradients there are; False (nothing changed) if there are none."""
        optimizer = self._optimizer_for(config)
        if all(p.grad is None for p in self._parameters):
            return False
        try:
            optimizer.step()
        except Exception as exc:
            raise PassError(
                f"the {config.optimizer_name} step failed: {first_line(exc, with_type=True)}; "
                "parameters may be partly updated"
            ) from exc
        return True

    def _optimizer_for(self, config: PassConfig) -> torch.optim.Optimizer:
        name = config.optimizer_name
        if self._optimizer is None or self._made_for != name:
            trainable = [p for p in self._parameters if p.requires_grad]
            if not trainable:
                raise PassError("the model has no parameter that requires grad: nothing to step")
            kind = torch.optim.SGD if name == "sgd" else torch.optim.Adam
            self._optimizer = kind(trainable, lr=config.effective_lr)
            self._made_for = name
        for group in self._optimizer.param_groups:
            group["lr"] = config.effective_lr
        return self._optimizer
