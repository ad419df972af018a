"""What every reader shares: the options it is opened with and the Reader protocol.

One reader per format, one file each; `__init__.py` registers them in one list (Netron's
habit). A reader answers two questions: can it read this source (cheaply: by name, extension
or a few bytes of magic), and read it into a ModuleTree whose tensor handles are lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import SourceError
from ..tree import ModuleTree


class OpeningCancelled(SourceError):
    """The user cancelled while a source was being read."""


@dataclass
class OpenOptions:
    trust: bool = False  # allow full pickle loading, which runs code from the file
    seed: int | None = 0  # initialisation of models built from code
    meta: bool = False  # build models on the meta device (structure only)
    progress: Callable[[float, str], None] | None = None  # fraction done, what is being done
    cancelled: Callable[[], bool] | None = None

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
