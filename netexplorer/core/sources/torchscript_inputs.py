"""What a TorchScript model is called with: the shapes and dtypes of the example input it was
traced with (the archive keeps them; `torch.jit.load(..., _restore_shapes=True)` puts them
on its graph's inputs), else a guess from its first layer as the class it was made from
(`original_name`: Linear, Conv2d, Embedding), since its submodules are not nn.Linear and the
like but compiled stand-ins."""

from __future__ import annotations

from typing import Any

from ..inputs import InputArgument, InputBatch, InputSpec
from ..passes.input_guess import BATCH_SIZE, SEQUENCE_LENGTH, SPATIAL_SIZE


def script_input(module: Any) -> InputSpec | InputBatch | None:
    """The traced example input's shapes, else a guess; None when neither is known."""
    return traced_input(module) or guessed_input(module)


def traced_input(module: Any) -> InputSpec | InputBatch | None:
    import torch

    try:
        graph = module.graph
    except (AttributeError, RuntimeError):
        return None
    specs: list[InputSpec] = []
    for value in list(graph.inputs())[1:]:
        t = value.type()
        if not isinstance(t, torch._C.TensorType) or t.sizes() is None or not t.sizes():
            return None
        shape = tuple(int(s) for s in t.sizes())
        dtype = t.dtype()
        if dtype is not None and not dtype.is_floating_point:
            specs.append(InputSpec(shape, "tokens", high=_vocabulary(module) or 2))
        else:
            specs.append(InputSpec(shape))
    if not specs:
        return None
    if len(specs) == 1:
        return specs[0]
    return InputBatch(tuple(InputArgument(None, s) for s in specs))


def guessed_input(module: Any) -> InputSpec | None:
    n = BATCH_SIZE
    for _, sub in module.named_modules():
        kind = str(getattr(sub, "original_name", ""))
        weight = getattr(sub, "weight", None)
        shape = tuple(weight.shape) if weight is not None else ()
        if kind in ("Embedding", "EmbeddingBag") and len(shape) == 2:
            return InputSpec((n, SEQUENCE_LENGTH), "tokens", high=int(shape[0]))
        if kind == "Linear" and len(shape) == 2:
            return InputSpec((n, int(shape[1])))
        if kind in ("Conv1d", "Conv2d", "Conv3d") and len(shape) >= 3:
            dims = len(shape) - 2
            return InputSpec((n, int(shape[1]), *SPATIAL_SIZE.get(dims, (16,) * dims)))
    return None


def _vocabulary(module: Any) -> int | None:
    for _, sub in module.named_modules():
        if str(getattr(sub, "original_name", "")) in ("Embedding", "EmbeddingBag"):
            weight = getattr(sub, "weight", None)
            if weight is not None and weight.dim() == 2:
                return int(weight.shape[0])
    return None
