"""What a pass runs with: the input batch, the loss, the optimizer and what results carry.

`PassConfig` is frozen. The window changes a setting by swapping in a new config (one
reference assignment, atomic in CPython), never by writing a field that a worker may be
reading; an action reads the config once, when it starts, and runs with that copy to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import PassError
from ..inputs import InputBatch, InputSpec

LOSSES = ("sum", "mse", "cross_entropy", "model")  # model: the loss the model returns
OPTIMIZERS = ("sgd", "adam")
DEFAULT_LR = {"sgd": 0.1, "adam": 0.01}  # large enough to see a step move a heatmap


@dataclass(frozen=True)
class PassConfig:
    """Settings of the passes, replaced whole (`PassEngine.configure`).

    `input_spec` None: the source's default batch, else one inferred from the first layer; an
    InputSpec is one positional tensor, an InputBatch several arguments (keywords too).
    `eval_mode` None leaves the model in the mode it is in; True runs passes in eval mode
    (dropout off, batch-norm statistics frozen), False in training mode.
    `loss_fn` (a callable `(output, target) -> loss`) replaces `loss_name` when set. `lr` None:
    the optimizer's default here. `watch`: the parameter and buffer paths whose values (and
    gradients and contributions, for parameters) every result carries."""

    input_spec: InputSpec | InputBatch | None = None
    seed: int = 0
    loss_name: str = "sum"
    loss_fn: Callable[[Any, Any], Any] | None = None
    optimizer_name: str = "sgd"
    lr: float | None = None
    record: bool = True
    capture_activations: bool = False
    watch: frozenset[str] = field(default_factory=frozenset)
    eval_mode: bool | None = None

    def __post_init__(self) -> None:
        if self.loss_fn is None and self.loss_name not in LOSSES:
            raise PassError(f"unknown loss {self.loss_name!r}; choose {', '.join(LOSSES)}")
        if self.optimizer_name not in OPTIMIZERS:
            raise PassError(
                f"unknown optimizer {self.optimizer_name!r}; choose {', '.join(OPTIMIZERS)}"
            )
        if self.lr is not None and not self.lr > 0:
            raise PassError(f"the learning rate must be positive, not {self.lr}")
        if self.input_spec is not None and not isinstance(self.input_spec, InputSpec | InputBatch):
            raise TypeError("input_spec must be an InputSpec or an InputBatch")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "watch", frozenset(self.watch))

    @property
    def effective_lr(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.optimizer_name]

    @property
    def loss_label(self) -> str:
        """The loss as results name it: one of LOSSES, or "custom"."""
        return "custom" if self.loss_fn is not None else self.loss_name
