"""The built-in example networks: what the gallery lists and `example:NAME` opens.

This module is cheap to import (no torch): the gallery lists the examples before torch has
loaded. The networks themselves are built by `example_nets`, imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .core.inputs import InputSpec
from .core.torch_import import import_torch


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    explanation: str  # shown in the gallery and the details panel; plain text
    builder: str  # function name in example_nets
    default_input: InputSpec

    def build(self, seed: int | None = 0) -> Any:
        """A fresh network, initialised reproducibly from `seed`."""
        torch = import_torch()

        from . import example_nets

        torch.manual_seed(0 if seed is None else int(seed))
        return getattr(example_nets, self.builder)()


_ALL = [
    Example(
        "mlp",
        "MLP (the notebook's first net)",
        "nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)) on a batch "
        "torch.rand(size=(2, 4)). Its state_dict has 0.weight (8x4), 0.bias, 2.weight (1x8) "
        "and 2.bias; the ReLU at position 1 has no parameters, so no key starts with 1.",
        "mlp",
        InputSpec((2, 4)),
    ),
    Example(
        "nested",
        "Nested blocks (block2 of block1)",
        "The notebook's rgnet = nn.Sequential(block2(), nn.Linear(4, 1)): block2 holds four "
        "block1 Sequentials named 'block 0' .. 'block 3'. Nested modules are reached like "
        "arrays: rgnet[0][1][0].bias is the bias at state_dict key '0.block 1.0.bias'.",
        "nested",
        InputSpec((2, 4)),
    ),
    Example(
        "tied",
        "Tied layer (one Linear used twice)",
        "The notebook's parameter tying: shared = nn.Linear(8, 8) is placed at positions 2 and "
        "4. It is one module object, so 2.weight and 4.weight are one tensor (and so are the "
        "biases): changing one changes the other, it is counted once, and in backward the "
        "gradients of the two uses are added together.",
        "tied",
        InputSpec((2, 4)),
    ),
    Example(
        "sharing",
        "Three kinds of sharing side by side",
        "One net with each kind of sharing: a tensor tied across different modules (the "
        "embedding's weight is also the output head's weight), one module object placed at two "
        "paths (body.0 and body.2 are the same Linear), and a parameter-free module reused "
        "(body.1 and body.3 are the same ReLU). The tree marks each kind differently.",
        "sharing",
        InputSpec((2, 5), "tokens", high=16),
    ),
    Example(
        "cnn",
        "Convolutional net (LeNet-like)",
        "Two convolution layers and three linear layers on 28x28 images. A convolution kernel "
        "is one small weight tensor applied at every position of the image: weights shared "
        "across space. Conv weights are shown as a mosaic of kernels, output channels as rows.",
        "cnn",
        InputSpec((2, 1, 28, 28)),
    ),
    Example(
        "rnn",
        "Recurrent cell unrolled over time",
        "One nn.RNNCell(4, 8) called at each of 5 time steps, then a Linear(8, 1) head. The "
        "same weights serve every step, so the cell's gradient is the sum of one contribution "
        "per time step.",
        "rnn",
        InputSpec((2, 5, 4)),
    ),
    Example(
        "autoencoder",
        "Tied autoencoder",
        "encoder = nn.Linear(8, 3); the decoder's forward uses the encoder's weight transposed "
        "(decoder.weight is encoder.weight), with its own bias. One tensor, two modules, "
        "two uses: its gradient adds the encoder's and the decoder's contributions.",
        "autoencoder",
        InputSpec((2, 8)),
    ),
    Example(
        "tiny-gpt",
        "Tiny GPT (embedding tied to the output head)",
        "A two-layer causal transformer over a 32-token vocabulary. As in GPT-2, the token "
        "embedding's weight is also the output head's weight (tok_emb.weight and "
        "head.weight are one tensor): the head scores each token by its embedding.",
        "tiny_gpt",
        InputSpec((2, 8), "tokens", high=32),
    ),
    Example(
        "deep-gpt",
        "Deep GPT (24 alike blocks, folded in the graph)",
        "The tiny GPT with 24 blocks instead of 2, as deep as GPT-2 medium: 246 modules. The "
        "graph folds the 24 alike blocks into one node (Block ×24) so that the tie between "
        "the embedding and the head stays on screen; open the fold to see every block, in "
        "rows, or find one with / in the graph.",
        "deep_gpt",
        InputSpec((2, 8), "tokens", high=32),
    ),
]

EXAMPLES: dict[str, Example] = {e.name: e for e in _ALL}
