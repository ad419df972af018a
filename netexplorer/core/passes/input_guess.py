"""A batch a model accepts, guessed from its first input layer, for models whose source
gives none (a factory, a whole-model pickle)."""

from __future__ import annotations

from torch import nn

from ..errors import PassError
from ..inputs import InputSpec

BATCH_SIZE = 2  # the notebook's torch.rand(size=(2, 4))
SEQUENCE_LENGTH = 8
SPATIAL_SIZE = {1: (32,), 2: (28, 28), 3: (16, 16, 16)}  # 28x28 as in MNIST-sized examples


def infer_input_spec(module: nn.Module) -> InputSpec:
    """A batch the first input layer of `module` accepts (batch size 2 like the notebook):
    Linear `in_features`, Conv `in_channels` with a default spatial size, Embedding tokens
    below `num_embeddings`, recurrent cells' `input_size`. A fallback for modules whose
    source gives no input; modules are looked at in registration order."""
    n = BATCH_SIZE
    for m in module.modules():
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            return InputSpec((n, SEQUENCE_LENGTH), "tokens", high=m.num_embeddings)
        if isinstance(m, nn.Linear) and not isinstance(m, nn.modules.lazy.LazyModuleMixin):
            return InputSpec((n, m.in_features))
        if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(
            m, nn.modules.lazy.LazyModuleMixin
        ):
            dims = len(m.kernel_size)
            return InputSpec((n, m.in_channels, *SPATIAL_SIZE.get(dims, (16,) * dims)))
        if isinstance(m, nn.RNNCellBase):
            return InputSpec((n, m.input_size))
        if isinstance(m, nn.RNNBase):
            steps = 5
            shape = (n, steps, m.input_size) if m.batch_first else (steps, n, m.input_size)
            return InputSpec(shape)
        if isinstance(m, nn.LayerNorm):
            return InputSpec((n, *m.normalized_shape))
    raise PassError(
        f"cannot tell what input {type(module).__name__} takes (no Linear, Conv, Embedding or "
        "recurrent layer to read it from): give one with --input SPEC (e.g. 2,3,32,32) or in "
        "the Input field"
    )
