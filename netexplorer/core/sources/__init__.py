"""Readers of every source netexplorer opens, and `open_source`, which picks one."""

from __future__ import annotations

from ..errors import SourceError
from ..tree import ModuleTree
from .base import OpenOptions, Reader
from .examples import ExampleReader
from .factory import FactoryReader
from .hf_folder import HuggingFaceFolderReader
from .safetensors import SafetensorsReader
from .torch_file import TorchFileReader
from .torchscript import TorchScriptReader
from .unknown import UnknownSourceReader

# The first reader that can read a source reads it. Adding a format: one file, one line here.
READERS: list[Reader] = [
    ExampleReader(),
    FactoryReader(),
    SafetensorsReader(),
    HuggingFaceFolderReader(),
    TorchScriptReader(),
    TorchFileReader(),
    UnknownSourceReader(),  # last: explains why nothing else could read the source
]


def open_source(spec: str, options: OpenOptions | None = None) -> ModuleTree:
    """Open `spec` (example:NAME, a checkpoint file or folder, pkg.module:factory)."""
    options = options or OpenOptions()
    for reader in READERS:
        if reader.can_read(spec):
            return reader.read(spec, options)
    raise SourceError(
        f"cannot open {spec!r}: not an example (example:NAME), a checkpoint file or folder, "
        "or a pkg.module:factory"
    )


__all__ = ["READERS", "OpenOptions", "Reader", "open_source"]
