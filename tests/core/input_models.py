"""Small models for the input and training-mode tests, importable as `--model` factories
(input_models:NAME)."""

from __future__ import annotations

import torch
from torch import nn


class TwoInputs(nn.Module):
    """forward(a, b, scale=None): two positional tensors and a keyword one."""

    def __init__(self) -> None:
        super().__init__()
        self.fa = nn.Linear(4, 3)
        self.fb = nn.Embedding(10, 3)

    def forward(self, a, b, scale=None):
        out = self.fa(a) + self.fb(b).mean(1)
        return out if scale is None else out * scale


def two_inputs() -> nn.Module:
    torch.manual_seed(0)
    return TwoInputs()


def with_dropout() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
