"""Whether a model's forward pass is random or changes state by itself: dropout active in
training mode, batch-norm statistics updated by every pass. The JSON's
`metadata.training_mode` and the app's eval-mode switch tell it, so that nobody mistakes
dropout's noise for a bug (or two passes' different gradients for one)."""

from __future__ import annotations

from typing import Any


def training_mode(module: Any, training: bool | None = None) -> dict[str, Any]:
    """`{"training": bool, "dropout_active": bool, "dropout_modules": [...],
    "batch_norm_updates": bool, "note": "..."}` for a live module: in the mode it is in, or
    in the one passes will put it in (`training`)."""
    dropout: list[str] = []
    batch_norm: list[str] = []
    for path, m in module.named_modules():
        kind = type(m).__name__
        original = str(getattr(m, "original_name", kind))  # TorchScript keeps the class name
        active = m.training if training is None else training
        if "Dropout" in original and float(getattr(m, "p", 0.1) or 0) > 0 and active:
            dropout.append(path)
        if "BatchNorm" in original and active:
            batch_norm.append(path)
    training = bool(module.training if training is None else training)
    if dropout:
        note = (
            f"training mode: dropout is active in {len(dropout)} modules, so every pass draws "
            "a new mask (use --eval, or the Eval mode switch, for repeatable passes)"
        )
    elif training and batch_norm:
        note = "training mode: batch norm uses batch statistics and updates its running ones"
    elif training:
        note = "training mode, but nothing in the model behaves differently in it"
    else:
        note = "eval mode: dropout off, batch-norm statistics frozen; passes are repeatable"
    return {
        "training": training,
        "dropout_active": bool(dropout),
        "dropout_modules": dropout,
        "batch_norm_updates": bool(batch_norm),
        "note": note,
    }
