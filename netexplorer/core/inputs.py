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


# A second argument's tensor is drawn from a stream of its own: argument k uses
# seed + k * ARGUMENT_SEED_STRIDE (argument 0 uses the seed itself, as a single InputSpec does).
ARGUMENT_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class InputArgument:
    """One argument of a forward call: positional (`name` None) or by keyword; a tensor to
    generate (`spec`), or the very tensor of another keyword argument (`same_as`: a causal
    language model's `labels` are its `input_ids`)."""

    name: str | None
    spec: InputSpec | None = None
    same_as: str | None = None

    def __post_init__(self) -> None:
        if (self.spec is None) == (self.same_as is None):
            raise ValueError("an input argument is either a tensor to make or another's tensor")
        if self.same_as is not None and self.name is None:
            raise ValueError("only a keyword argument can be another argument's tensor")


@dataclass(frozen=True)
class InputBatch:
    """What a forward pass is called with: `net(*args, **kwargs)`, each tensor generated from
    its InputSpec (seeded, one stream per argument). One positional tensor is the common case
    and behaves exactly as that InputSpec."""

    arguments: tuple[InputArgument, ...]

    def __post_init__(self) -> None:
        if not self.arguments:
            raise ValueError("an input needs at least one argument")
        names = [a.name for a in self.arguments if a.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("an argument is named twice")
        seen_keyword = False
        for a in self.arguments:
            if a.name is None and seen_keyword:
                raise ValueError("positional inputs come before named ones")
            seen_keyword = seen_keyword or a.name is not None
            if a.same_as is not None and a.same_as not in names:
                raise ValueError(f"@{a.same_as} names no other argument")

    @classmethod
    def of(cls, spec: InputSpec | InputBatch) -> InputBatch:
        """A batch of one positional tensor, or the batch itself."""
        if isinstance(spec, InputBatch):
            return spec
        return cls((InputArgument(None, spec),))

    @property
    def single(self) -> InputSpec | None:
        """The InputSpec when the batch is one positional tensor, else None."""
        if len(self.arguments) == 1 and self.arguments[0].name is None:
            return self.arguments[0].spec
        return None

    @property
    def specs(self) -> list[InputSpec]:
        return [a.spec for a in self.arguments if a.spec is not None]

    @property
    def batch_size(self) -> int:
        return self.specs[0].batch_size

    def with_batch_size(self, n: int) -> InputBatch:
        return InputBatch(
            tuple(
                replace(a, spec=a.spec.with_batch_size(n) if a.spec and a.spec.shape else a.spec)
                for a in self.arguments
            )
        )

    def make(self, seed: int | None = 0) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) as torch tensors, reproducible for a given seed."""
        base = 0 if seed is None else int(seed)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for k, a in enumerate(self.arguments):
            if a.spec is None:
                continue
            tensor = a.spec.make(base + k * ARGUMENT_SEED_STRIDE)
            if a.name is None:
                args.append(tensor)
            else:
                kwargs[a.name] = tensor
        for a in self.arguments:
            if a.same_as is not None:
                kwargs[a.name] = kwargs[a.same_as]  # type: ignore[index]
        return tuple(args), kwargs

    def describe(self) -> str:
        """The call's arguments as Python: `torch.rand(size=(2, 4))`, or
        `input_ids=torch.randint(0, 50, size=(2, 8)), labels=input_ids`."""
        parts = []
        for a in self.arguments:
            value = a.spec.describe() if a.spec is not None else str(a.same_as)
            parts.append(value if a.name is None else f"{a.name}={value}")
        return ", ".join(parts)

    def spec_text(self) -> str:
        """The batch in the --input syntax (what `parse_input` reads back)."""
        from .input_parse import format_argument

        return " ".join(format_argument(a) for a in self.arguments)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON's metadata.input: one positional tensor keeps the fields of an
        InputSpec (shape, distribution, high); every batch has `spec`, `python` and
        `arguments`."""
        single = self.single
        out: dict[str, Any] = single.as_dict() if single is not None else {}
        out["spec"] = self.spec_text()
        out["python"] = self.describe()
        out["arguments"] = [
            {"name": a.name, **(a.spec.as_dict() if a.spec else {"same_as": a.same_as})}
            for a in self.arguments
        ]
        return out


def as_batch(spec: InputSpec | InputBatch) -> InputBatch:
    """Any input as a batch (an InputSpec is one positional tensor)."""
    return InputBatch.of(spec)
