"""Long work as generators: each yield is progress (and a place a worker may cancel), the
return value is the result. The window runs them in workers; scripts and small inputs run
them here, to the end."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

R = TypeVar("R")


def run_to_end(work: Generator[Any, None, R]) -> R:
    """Run a progress-yielding generator to its end and return its result."""
    while True:
        try:
            next(work)
        except StopIteration as finished:
            return finished.value
