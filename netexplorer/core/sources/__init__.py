"""Readers of every source netexplorer opens, and `open_source`, which picks one."""

from __future__ import annotations

import importlib

from ..collector import without_cycle_collector
from ..tree import ModuleTree
from .base import OpenOptions, Reader
from .unknown import UnknownSourceReader

# The built-in readers, in the order they are asked (a Trainer's output folder holds a model
# folder too: the run reader before the Hugging Face one), each imported the first time it
# is asked: opening a safetensors file imports neither the pickle readers nor DCP's, half
# of the 0.07 s that importing every reader took.
_BUILT_IN: tuple[tuple[str, str], ...] = (
    ("examples", "ExampleReader"),
    ("factory", "FactoryReader"),
    ("safetensors", "SafetensorsReader"),
    ("dcp", "DistributedCheckpointReader"),
    ("run", "TrainingRunReader"),
    ("hf_folder", "HuggingFaceFolderReader"),
    ("torchscript", "TorchScriptReader"),
    ("torch_file", "TorchFileReader"),
)
_READERS: list[Reader | tuple[str, str]] = list(_BUILT_IN)  # a built-in until imported
_FALLBACK: Reader = UnknownSourceReader()  # last: explains why nothing else could read it
_WANTED = ("name", "title", "file_patterns", "can_read", "read")


def register(reader: Reader) -> Reader:
    """Add a reader, asked after those before it; the first reader that can read a source
    reads it. Adding a format is one file and one call here (or one line in _BUILT_IN)."""
    missing = [a for a in _WANTED if not hasattr(reader, a)]
    if missing:
        raise TypeError(f"{type(reader).__name__} is not a Reader: it lacks {', '.join(missing)}")
    _READERS.append(reader)
    return reader


def _reader(position: int) -> Reader:
    """The reader at `position`, imported and made if it is a built-in not asked yet."""
    reader = _READERS[position]
    if isinstance(reader, tuple):
        module, name = reader
        reader = getattr(importlib.import_module(f"{__name__}.{module}"), name)()
        _READERS[position] = reader  # two threads may both make one: readers hold no state
    return reader


def readers() -> list[Reader]:
    """Every reader in the order they are asked, the fallback last (all imported)."""
    return [*(_reader(i) for i in range(len(_READERS))), _FALLBACK]


def reader_for(spec: str) -> Reader:
    """The reader that opens `spec` (readers after it are not imported)."""
    for position in range(len(_READERS)):
        reader = _reader(position)
        if reader.can_read(spec):
            return reader
    return _FALLBACK


@without_cycle_collector  # reading builds as many objects as the tree (collector.py)
def open_source(spec: str, options: OpenOptions | None = None) -> ModuleTree:
    """Open `spec` (example:NAME, a checkpoint file or folder, pkg.module:factory)."""
    tree = reader_for(spec).read(spec, options or OpenOptions())
    tree.trained_parameters(tree.optimizer_state)
    return tree


__all__ = ["OpenOptions", "Reader", "open_source", "reader_for", "readers", "register"]
