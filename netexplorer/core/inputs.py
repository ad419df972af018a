"""Input specs: the shape and distribution of the batch a forward pass is run on."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .torch_import import import_torch

DISTRIBUTIONS = ("uniform", "normal", "tokens")


@dataclass(frozen=True)
class InputSpec:
    """A batch to generate: `uniform` is `torch.rand` (like the notebook's
    `torch.rand(size=(2, 4))`), `normal` is `torch.randn`, `tokens` are integers in
    [0, high) for embeddings."""

    shape: tuple[int, ...]
    distribution: str = "uniform"
    high: int | None = None  # exclusive upper bound of tokens

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}")
        if any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"every dimension of the input shape must be positive: {self.shape}")
        if self.distribution == "tokens" and not self.high:
            raise ValueError("token inputs need an upper bound (the vocabulary size)")

    @property
    def batch_size(self) -> int:
        return int(self.shape[0]) if self.shape else 1

    def with_batch_size(self, n: int) -> InputSpec:
        return replace(self, shape=(int(n), *self.shape[1:]))

    def describe(self) -> str:
        shape = ", ".join(str(s) for s in self.shape) + ("," if len(self.shape) == 1 else "")
        if self.distribution == "tokens":
            return f"torch.randint(0, {self.high}, size=({shape}))"
        fn = "rand" if self.distribution == "uniform" else "randn"
        return f"torch.{fn}(size=({shape}))"

    def make(self, seed: int | None = 0) -> Any:
        """The batch as a torch tensor, reproducible for a given seed."""
        torch = import_torch()

        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        if self.distribution == "tokens":
            return torch.randint(0, int(self.high or 1), self.shape, generator=gen)
        if self.distribution == "normal":
            return torch.randn(self.shape, generator=gen)
        return torch.rand(self.shape, generator=gen)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape), "distribution": self.distribution}
        if self.high is not None:
            out["high"] = self.high
        return out
