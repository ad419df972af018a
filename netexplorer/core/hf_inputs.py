"""What a Hugging Face model is called with, taken from the model itself: its main input
(`main_input_name`: token ids below the vocabulary size, or images of the configured size and
channels), decoder inputs for an encoder-decoder, and the labels its own loss needs (a causal
or masked language model's labels are its input ids; a classifier's are class indices).

Where the model computes a loss from labels, passes use that loss ("model"); otherwise the
sum of its output (the logits)."""

from __future__ import annotations

import inspect
from typing import Any

from .inputs import InputArgument, InputBatch, InputSpec

BATCH = 2
SEQUENCE = 8  # tokens per example, fewer when the model has fewer positions
DECODER_SEQUENCE = 4

_LABELS_ARE_INPUTS = ("ForCausalLM", "LMHeadModel", "ForMaskedLM")
_SEQ2SEQ = ("ForConditionalGeneration", "ForSeq2SeqLM")
_CLASSIFIERS = ("ForSequenceClassification", "ForImageClassification", "ForAudioClassification")


def model_inputs(model: Any) -> tuple[InputBatch, str]:
    """(the batch, the loss name: "model" where the model is given labels, else "sum")."""
    config = model.config
    name = type(model).__name__
    parameters = _forward_parameters(model)
    main = str(getattr(model, "main_input_name", "input_ids") or "input_ids")
    vocab = _int(config, "vocab_size")
    length = min(SEQUENCE, _int(config, "max_position_embeddings", "n_positions") or SEQUENCE)
    arguments: list[InputArgument] = []
    if main == "pixel_values":
        channels = _int(config, "num_channels") or 3
        height, width = _image_size(config)
        arguments.append(InputArgument(main, InputSpec((BATCH, channels, height, width), "normal")))
    elif main == "input_ids" and vocab:
        arguments.append(InputArgument(main, InputSpec((BATCH, length), "tokens", high=vocab)))
    else:
        arguments.extend(_from_dummy_inputs(model, main, vocab))
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    decoder = (BATCH, min(DECODER_SEQUENCE, length))
    if encoder_decoder and "decoder_input_ids" in parameters and vocab:
        arguments.append(
            InputArgument("decoder_input_ids", InputSpec(decoder, "tokens", high=vocab))
        )
    labels = _labels(model, name, main, parameters, vocab, length, decoder, encoder_decoder)
    if labels is not None:
        arguments.append(labels)
    return InputBatch(tuple(arguments)), "model" if labels is not None else "sum"


def _labels(
    model: Any,
    name: str,
    main: str,
    parameters: set[str],
    vocab: int | None,
    length: int,
    decoder: tuple[int, int],
    encoder_decoder: bool,
) -> InputArgument | None:
    if "labels" not in parameters:
        return None
    config = model.config
    if name.endswith(_LABELS_ARE_INPUTS) and main == "input_ids" and not encoder_decoder:
        return InputArgument("labels", same_as="input_ids")
    if encoder_decoder and name.endswith(_SEQ2SEQ) and vocab:
        return InputArgument("labels", InputSpec(decoder, "tokens", high=vocab))
    classes = _int(config, "num_labels") or 2
    if name.endswith(_CLASSIFIERS):
        if classes == 1:  # regression: one number per example
            return InputArgument("labels", InputSpec((BATCH,), "normal"))
        return InputArgument("labels", InputSpec((BATCH,), "tokens", high=classes))
    if name.endswith("ForTokenClassification") and main == "input_ids":
        return InputArgument("labels", InputSpec((BATCH, length), "tokens", high=classes))
    return None


def _forward_parameters(model: Any) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _int(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _image_size(config: Any) -> tuple[int, int]:
    size = getattr(config, "image_size", None)
    if isinstance(size, int) and size > 0:
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    if isinstance(size, dict) and "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    return 224, 224


def _from_dummy_inputs(model: Any, main: str, vocab: int | None) -> list[InputArgument]:
    """The main input's shape and kind from `dummy_inputs` (audio features and the like)."""
    try:
        dummy = dict(model.dummy_inputs)
    except Exception:  # a model whose dummy_inputs cannot be built: nothing to go by
        dummy = {}
    tensor = dummy.get(main)
    if tensor is None:
        return []
    shape = (BATCH, *tuple(int(s) for s in tensor.shape[1:]))
    if tensor.is_floating_point():
        return [InputArgument(main, InputSpec(shape, "normal"))]
    high = vocab or int(tensor.max()) + 1
    return [InputArgument(main, InputSpec(shape, "tokens", high=max(1, high)))]
