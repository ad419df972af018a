"""What passes run with, told as it is: the input the model is called with, the loss and
whether the model runs in training mode (dropout drawing masks). The JSON's metadata and the
app's status say the same."""

from __future__ import annotations

from typing import Any

from ..errors import NetExplorerError
from ..inputs import as_batch
from ..randomness import training_mode

LOSS_TEXT = {
    "sum": "the sum of the output",
    "mse": "mean squared error to a fixed random target of the output's shape",
    "cross_entropy": "cross-entropy to fixed random class labels (classes in the last dimension)",
    "model": "the model's own loss (it is given labels)",
    "custom": "a custom loss function",
}


def loss_text(engine: Any) -> str:
    """The loss in words, naming the model's own where it is that."""
    config = engine.config
    name = config.loss_label
    text = LOSS_TEXT.get(name, name)
    if name == "model":
        text = f"the loss {type(engine.module).__name__} computes itself from the labels given"
    elif name == "sum" and engine.tree.default_loss == "model":
        text = "the sum of the output (its logits)"
    return text


def describe_passes(engine: Any) -> dict[str, Any]:
    """`{"input": ..., "loss": {"name", "text"}, "training_mode": {...}}` for the JSON."""
    config = engine.config
    try:
        batch = as_batch(engine.input_spec)
        source = "given" if config.input_spec is not None else "the model's own"
        if config.input_spec is None and engine.tree.default_input is None:
            source = "guessed from the first layer"
        elif config.input_spec is None and engine.tree.metadata.get("input_from"):
            source = str(engine.tree.metadata["input_from"])
        described: dict[str, Any] | None = {**batch.as_dict(), "source": source}
    except NetExplorerError as exc:
        described = {"spec": None, "note": str(exc)}
    # passes switch the mode as they start when the config says one
    training = None if config.eval_mode is None else not config.eval_mode
    mode = training_mode(engine.module, training)
    contributions: dict[str, Any] = {"recorded": engine.can_record and config.record}
    note = engine.contributions_note
    if note:
        contributions["note"] = note
    return {
        "input": described,
        "loss": {"name": config.loss_label, "text": loss_text(engine)},
        "training_mode": mode,
        "contributions": contributions,
    }
