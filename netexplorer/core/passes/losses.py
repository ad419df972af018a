"""The tensor a loss is computed from, the fixed target of each loss, and the loss itself
(with a message naming what is wrong when it cannot be computed or run backward from)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

from ..calls import iter_tensors
from ..errors import PassError
from ..text import first_line, shape_text
from .config import PassConfig


def first_output(raw: Any) -> tuple[torch.Tensor, str]:
    """The tensor a loss is computed from: the output itself, its `logits` (Hugging Face
    style objects and dicts) or its first tensor; and a note saying which, if not the output.
    Raises PassError when the output holds no tensor."""
    if isinstance(raw, torch.Tensor):
        return raw, ""
    kind = type(raw).__name__
    logits = raw.get("logits") if isinstance(raw, dict) else getattr(raw, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits, f"the model returned a {kind}; its logits are the output used"
    if isinstance(raw, (tuple, list)):
        for i, item in enumerate(raw):
            tensor = next(iter_tensors(item), None)
            if tensor is not None:
                where = f"element {i}" if isinstance(item, torch.Tensor) else f"inside element {i}"
                return tensor, (
                    f"the model returned a {kind} of {len(raw)}; its first tensor ({where}) "
                    "is the output used"
                )
    elif isinstance(raw, dict):
        for key, item in raw.items():
            tensor = next(iter_tensors(item), None)
            if tensor is not None:
                return tensor, f"the model returned a dict; its first tensor ({key!r}) is used"
    else:
        tensor = next(iter_tensors(raw), None)
        if tensor is not None:
            return tensor, f"the model returned a {kind}; its first tensor is the output used"
    raise PassError(
        f"the model's output (a {kind}) holds no tensor, so there is nothing to show or to "
        "compute a loss from"
    )


def model_loss(raw: Any) -> torch.Tensor:
    """The loss a model computed itself (a Hugging Face model given `labels` returns it as
    `.loss`); PassError when it returned none."""
    loss = raw.get("loss") if isinstance(raw, dict) else getattr(raw, "loss", None)
    if not isinstance(loss, torch.Tensor):
        raise PassError(
            f"the model returned no loss of its own (a {type(raw).__name__}): it computes one "
            "only when given labels; add labels to the input, or choose the sum loss"
        )
    return loss


def loss_target(loss_name: str, output: torch.Tensor, seed: int) -> torch.Tensor | None:
    """The fixed target of a loss for an output: a seeded random tensor of the output's shape
    for MSE, seeded random class labels for cross-entropy (classes in the last dimension)."""
    gen = torch.Generator().manual_seed(int(seed) + 1)  # a stream apart from the input's
    if loss_name == "mse":
        dtype = output.dtype if output.is_floating_point() else torch.float32
        return torch.randn(tuple(output.shape), generator=gen, dtype=dtype).to(output.device)
    if loss_name == "cross_entropy":
        classes = output.shape[-1]
        return torch.randint(0, classes, tuple(output.shape[:-1]), generator=gen).to(output.device)
    return None


def compute_loss(loss_name: str, output: torch.Tensor, target: torch.Tensor | None) -> Any:
    """The loss of `output` (a tensor; its value is checked by the caller)."""
    if loss_name == "sum":
        return output.sum()
    if not output.is_floating_point():
        raise PassError(
            f"the {loss_name} loss needs a floating-point output; this output is "
            f"{str(output.dtype).removeprefix('torch.')}"
        )
    if loss_name == "mse":
        return F.mse_loss(output, target)
    if output.dim() < 2 or output.shape[-1] < 2:
        shape = shape_text(output.shape) if output.dim() else "a scalar"
        raise PassError(
            "cross-entropy needs a classifier-shaped output (a batch of scores with at least "
            f"2 classes in the last dimension); this output is {shape}: use the sum or MSE loss"
        )
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


class LossEvaluator:
    """The loss of an output under a config, with its fixed target cached (a new one only
    when the loss, seed, shape, dtype or device changes)."""

    def __init__(self, non_finite_culprit: Callable[[torch.Tensor], str]) -> None:
        self._culprit = non_finite_culprit
        self._target_cache: tuple[tuple, torch.Tensor | None] | None = None

    def __call__(
        self, config: PassConfig, output: torch.Tensor, required: bool, raw: Any = None
    ) -> tuple[torch.Tensor | None, str]:
        """(loss, note). `required` (a backward follows): a loss that cannot be computed or
        run backward from raises PassError; otherwise it comes back as (None or the loss, a
        note saying what is wrong)."""
        name = "custom loss" if config.loss_fn is not None else config.loss_name
        if name == "model":
            name = "model's own loss"
        try:
            target = None if config.loss_name == "model" else self._target(config, output)
            if config.loss_fn is None and config.loss_name == "model":
                loss = model_loss(raw)
            elif config.loss_fn is not None:
                loss = config.loss_fn(output, target)
            else:
                loss = compute_loss(config.loss_name, output, target)
            if not isinstance(loss, torch.Tensor):
                raise PassError(f"the {name} returned a {type(loss).__name__}, not a tensor")
            if loss.numel() != 1:
                raise PassError(
                    f"the loss must be one number, but the {name} is a tensor of shape "
                    f"{shape_text(loss.shape)}; reduce it (for example with .sum() or .mean())"
                )
            if required:
                self._check(loss, output, name)
            elif not math.isfinite(value := float(loss.detach().reshape(()))):
                return loss, f"the loss is {value}; {self._culprit(output)}"
        except PassError as exc:
            if required:
                raise
            return None, str(exc)
        except Exception as exc:
            message = f"the {name} failed on an output of shape {shape_text(output.shape)}: "
            message += first_line(exc, with_type=True)
            if required:
                raise PassError(message) from exc
            return None, message
        return loss, ""

    def _target(self, config: PassConfig, output: torch.Tensor) -> torch.Tensor | None:
        name = "mse" if config.loss_fn is not None else config.loss_name
        key = (name, config.seed, tuple(output.shape), output.dtype, str(output.device))
        if self._target_cache is None or self._target_cache[0] != key:
            self._target_cache = (key, loss_target(name, output, config.seed))
        return self._target_cache[1]

    def _check(self, loss: torch.Tensor, output: torch.Tensor, name: str) -> None:
        value = float(loss.detach().reshape(()))
        if not math.isfinite(value):
            raise PassError(f"the loss is {value} ({name}); {self._culprit(output)}")
        if not loss.requires_grad:
            dtype = str(output.dtype).removeprefix("torch.")
            why = (
                f"the output is {dtype}, through which no gradient flows"
                if not output.is_floating_point()
                else "it does not depend on any parameter that requires grad (every parameter "
                "is frozen, or an operation without a gradient, such as argmax, a comparison, "
                "rounding or .detach(), cut the output off from them)"
            )
            raise PassError(f"cannot run backward from the {name}: {why}")
