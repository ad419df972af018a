"""What every reader shares: the options it is opened with and the Reader protocol.

One reader per format, one file each; `__init__.py` registers them in one list (Netron's
habit). A reader answers two questions: can it read this source (cheaply: by name, extension
or a few bytes of magic), and read it into a ModuleTree whose tensor handles are lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..errors import SourceError
from ..tree import ModuleTree


class OpeningCancelled(SourceError):
    """The user cancelled while a source was being read."""


class OpenOptions:
    """How a source is opened. (A plain class, not a dataclass: opening a file imports
    neither dataclasses nor inspect, 5 ms of a 50,000-tensor file's 0.2 s.)"""

    __slots__ = ("cancelled", "meta", "progress", "seed", "trust")

    def __init__(
        self,
        trust: bool = False,
        seed: int | None = 0,
        meta: bool = False,
        progress: Callable[[float, str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.trust = trust  # allow full pickle loading, which runs code from the file
        self.seed = seed  # initialisation of models built from code
        self.meta = meta  # build models on the meta device (structure only)
        self.progress = progress  # fraction done, what is being done
        self.cancelled = cancelled

    def __repr__(self) -> str:
        return f"OpenOptions(trust={self.trust}, seed={self.seed}, meta={self.meta})"

    def report(self, fraction: float, text: str) -> None:
        """Tell the progress, and stop here if the user cancelled (between two files of a
        sharded checkpoint, say): raises OpeningCancelled."""
        if self.cancelled is not None and self.cancelled():
            raise OpeningCancelled(f"opening cancelled ({text})")
        if self.progress is not None:
            self.progress(fraction, text)


class Reader(Protocol):
    """One checkpoint format (or other kind of source). Register an instance with
    `sources.register`."""

    name: str  # short, stable: the JSON's metadata.reader
    title: str  # for people: file dialogs, messages
    file_patterns: tuple[str, ...]  # glob patterns for file dialogs; () for non-files

    def can_read(self, spec: str) -> bool:
        """Whether this reader handles `spec` (cheap: no full read)."""
        ...

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        """The tree of `spec`; raises SourceError with a message for the user."""
        ...
