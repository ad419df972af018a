"""PyTorch files (`.pt`, `.pth`, `.bin`, `.ckpt`): the zip format of `torch.save`, the legacy
(pre-zip) format and plain pickles, holding a state dict, a dict of state dicts or a training
checkpoint.

Security: a pickle can name any Python callable, and unpickling calls it. Every file is first
read by netexplorer's own restricted unpickler (pickle_reader.py, over torch_zip.py or
torch_legacy.py), which builds plain tensors and containers without torch, calls nothing from
the file, and refuses nesting and allocation bombs. What it cannot build it names: if every
name is one torch's weights-only loader builds itself (a quantized tensor), the file goes to
`torch.load(weights_only=True)`; otherwise it is refused with an `UntrustedPickleError`
naming what it would run. Only with `options.trust` is the file fully unpickled (then a
pickled `nn.Module` becomes a live tree).

Opening reads the pickle, not the tensor data: both formats are memory-mapped (by the own
readers, or `mmap=True`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SourceError
from ..tree import ModuleTree, tree_from_entries, tree_from_module
from .base import OpenOptions
from .checkpoint import check_attributes, is_module, read_checkpoint
from .files import check_file, extension, sniff
from .pickle_reader import Damaged, NotPlain, Refused
from .torch_legacy import read_plain_pickle
from .torch_load import load_plain_pickle, load_with_torch, refuse_untrusted, untrusted_message
from .torch_zip import read_plain_zip

__all__ = ["TorchFileReader", "load_checkpoint_object", "untrusted_message"]

EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".pkl", ".pickle")
FORMAT_NAMES = {
    "torch-zip": "PyTorch zip (torch.save)",
    "torch-legacy": "PyTorch legacy pickle (torch.save before 1.6)",
    "pickle": "Python pickle",
}
# Keys under which a trusted checkpoint may hold a whole pickled model
_MODEL_OBJECT_KEYS = ("model", "module", "net", "network")


def load_checkpoint_object(
    path: str, trust: bool, progress: Callable[[float, str], None] | None = None
) -> tuple[Any, str]:
    """The object saved in the torch file at `path`, and the name of its format: read
    without torch when it holds only tensors and plain containers (the common case, and
    much faster), else with `torch.load` as the trust level allows. `progress(fraction,
    text)` is told how far a torch zip file is read. Raises UntrustedPickleError or
    SourceError, never anything else."""
    size = check_file(path)
    kind = sniff(path)
    try:
        if kind in ("torch-zip", "torchscript"):
            kind = "torch-zip"
            return read_plain_zip(path, size, progress=progress), FORMAT_NAMES[kind]
        obj, legacy = read_plain_pickle(path, size)
        return obj, FORMAT_NAMES["torch-legacy" if legacy else "pickle"]
    except Damaged as error:
        if kind is None:  # neither a zip archive nor a pickle by its first bytes
            raise SourceError(
                f"cannot open {path}: not a readable PyTorch file (it is neither a zip archive "
                "nor a pickle); check that it is the right file, or save or download it again"
            ) from None
        raise SourceError(
            f"cannot open {path}: not a readable PyTorch file ({error}); it may be truncated "
            "or damaged: save or download it again"
        ) from None
    except Refused as error:
        raise SourceError(f"cannot open {path}: {error}") from None
    except NotPlain as needs:
        if not needs.written_by_torch:
            fmt = FORMAT_NAMES["pickle"]
            return _plain_pickle_needing_more(path, trust, needs), fmt
        if not trust:
            refuse_untrusted(path, needs.needs)  # torch only gets what it builds itself
        zipped = kind == "torch-zip"
        fmt = FORMAT_NAMES["torch-zip" if zipped else "torch-legacy"]
        obj = load_with_torch(path, trust, mappable=zipped, needs=needs.needs)
        check_attributes(obj, path)  # torch's loader sets what BUILD says; the own reader did not
        return obj, fmt


def _plain_pickle_needing_more(path: str, trust: bool, needs: NotPlain) -> Any:
    """A plain pickle (not written by torch.save) holding what the own reader does not build:
    torch.load cannot read it, so it opens only when trusted."""
    if trust:
        obj = load_plain_pickle(path, needs.needs)
        check_attributes(obj, path)
        return obj
    refuse_untrusted(path, needs.needs)
    what = ", ".join(needs.needs[:4]) or needs.reasons[0]
    raise SourceError(
        f"cannot open {path}: a Python pickle (not written by torch.save) holding {what}, "
        "which netexplorer builds only by unpickling it fully; if you trust the file, open it "
        "with --trust"
    )


def tree_from_torch_object(
    obj: Any, path: str, fmt: str, reader: str, options: OpenOptions
) -> ModuleTree:
    """The tree of a loaded torch file: a live tree for a (trusted) pickled module, else the
    checkpoint's state dicts, metadata and optimizer state."""
    metadata: dict[str, Any] = {"format": fmt}
    module = obj if is_module(obj) else None
    if module is None and isinstance(obj, dict):
        for key in _MODEL_OBJECT_KEYS:
            if is_module(obj.get(key)):
                module = obj[key]
                rest = {k: v for k, v in obj.items() if k != key}
                metadata.update(read_checkpoint(rest, path).metadata)
                metadata["model_key"] = key
                break
    if module is not None:
        tree = tree_from_module(module, source=path, metadata=metadata)
        tree.reader = reader
        return tree
    contents = read_checkpoint(obj, path)
    if not contents.entries:
        raise SourceError(
            f"cannot open {path}: it holds no tensors ({_describe(obj)}); there is nothing "
            "to show, open a checkpoint with weights"
        )
    for key, value in contents.metadata.items():
        metadata[key if key not in metadata else f"{key} (in the file)"] = value
    if contents.model_prefix:
        metadata["model_state_dict"] = contents.model_prefix
    tree = tree_from_entries(
        contents.entries,
        source=path,
        reader=reader,
        metadata=metadata,
        kinds=contents.kinds,
        containers=contents.containers,
        progress=lambda done, text: options.report(0.8 + 0.2 * done, text),
    )
    tree.optimizer_state = contents.optimizer_state
    return tree


def _describe(obj: Any) -> str:
    if isinstance(obj, dict) and obj:
        keys = ", ".join(str(k) for k in list(obj)[:6])
        return f"a dict with keys {keys}{', ...' if len(obj) > 6 else ''}"
    return "an empty dict" if isinstance(obj, dict) else f"a {type(obj).__name__}"


class TorchFileReader:
    name = "torch"
    title = "PyTorch files"
    file_patterns = tuple(f"*{ext}" for ext in EXTENSIONS)

    def can_read(self, spec: str) -> bool:
        kind = sniff(spec)
        if kind is not None:
            return kind in ("torch-zip", "torch-legacy", "pickle")
        return extension(spec) in EXTENSIONS

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        options.report(0.0, f"reading {spec}")
        obj, fmt = load_checkpoint_object(
            spec, options.trust, lambda done, text: options.report(0.8 * done, text)
        )
        return tree_from_torch_object(obj, spec, fmt, self.name, options)
