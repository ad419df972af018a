"""`example:NAME`: the built-in example networks, live."""

from __future__ import annotations

from ..errors import SourceError
from ..tree import ModuleTree, tree_from_module
from .base import OpenOptions

PREFIX = "example:"


class ExampleReader:
    name = "example"
    title = "Built-in examples (example:NAME)"
    file_patterns: tuple[str, ...] = ()

    def can_read(self, spec: str) -> bool:
        return spec.startswith(PREFIX)

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        from ...examples import EXAMPLES  # not imported to open a file (asked first, always)

        name = spec[len(PREFIX) :]
        example = EXAMPLES.get(name)
        if example is None:
            raise SourceError(f"unknown example {name!r}; the examples are: {', '.join(EXAMPLES)}")
        options.report(0.0, f"building example {name}")
        module = example.build(options.seed)
        tree = tree_from_module(
            module,
            source=spec,
            metadata={"example": name, "title": example.title, "seed": options.seed},
        )
        tree.reader = self.name
        tree.default_input = example.default_input
        tree.explanation = example.explanation
        return tree
