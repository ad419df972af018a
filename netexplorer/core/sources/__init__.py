"""Readers of every source netexplorer opens, and `open_source`, which picks one."""

from __future__ import annotations

from ..collector import without_cycle_collector
from ..tree import ModuleTree
from .base import OpenOptions, Reader
from .dcp import DistributedCheckpointReader
from .examples import ExampleReader
from .factory import FactoryReader
from .hf_folder import HuggingFaceFolderReader
from .run import TrainingRunReader
from .safetensors import SafetensorsReader
from .torch_file import TorchFileReader
from .torchscript import TorchScriptReader
from .unknown import UnknownSourceReader

_READERS: list[Reader] = []
_FALLBACK: Reader = UnknownSourceReader()  # last: explains why nothing else could read it


def register(reader: Reader) -> Reader:
    """Add a reader; the first registered reader that can read a source reads it. Adding a
    format is one file and one call here."""
    wanted = ("name", "title", "file_patterns", "can_read", "read")
    missing = [a for a in wanted if not hasattr(reader, a)]
    if missing:
        raise TypeError(f"{type(reader).__name__} is not a Reader: it lacks {', '.join(missing)}")
    _READERS.append(reader)
    return reader


def readers() -> list[Reader]:
    """Every reader in the order they are asked, the fallback last."""
    return [*_READERS, _FALLBACK]


register(ExampleReader())
register(FactoryReader())
register(SafetensorsReader())
register(DistributedCheckpointReader())
register(TrainingRunReader())  # before model folders: a Trainer's output holds both
register(HuggingFaceFolderReader())
register(TorchScriptReader())
register(TorchFileReader())


def reader_for(spec: str) -> Reader:
    """The reader that opens `spec`."""
    return next(reader for reader in readers() if reader.can_read(spec))


@without_cycle_collector  # reading builds as many objects as the tree (collector.py)
def open_source(spec: str, options: OpenOptions | None = None) -> ModuleTree:
    """Open `spec` (example:NAME, a checkpoint file or folder, pkg.module:factory)."""
    tree = reader_for(spec).read(spec, options or OpenOptions())
    tree.trained_parameters(tree.optimizer_state)
    return tree


__all__ = ["OpenOptions", "Reader", "open_source", "reader_for", "readers", "register"]
