"""PyTorch files (`.pt`, `.pth`, `.bin`, `.ckpt`): the zip format of `torch.save` and the legacy
(pre-zip) pickle format, holding a state dict, a dict of state dicts or a training checkpoint.

Security: a pickle can name any Python callable, and unpickling calls it. Without trust, a
zip file is first read by torch_zip.py, whose unpickler knows only plain tensors and
containers and needs no torch at all; anything else it meets goes to
`torch.load(weights_only=True)`, whose unpickler also only builds tensors and plain
containers and refuses every other global before calling anything. A refusal becomes an
`UntrustedPickleError` naming what the file wants to run. Only with `options.trust` is the
file fully unpickled (then a pickled `nn.Module` becomes a live tree).

Opening reads the pickle, not the tensor data: zip files are memory-mapped (by torch_zip.py,
or `mmap=True`). The legacy format cannot be mapped and is read whole by torch.
"""

from __future__ import annotations

import contextlib
import mmap
import pickle
import re
import sys
import warnings
from typing import Any

from ..errors import SourceError, UntrustedPickleError
from ..torch_import import import_torch
from ..tree import ModuleTree, tree_from_entries, tree_from_module
from .base import OpenOptions
from .checkpoint import is_module, read_checkpoint
from .files import check_file, extension, sniff
from .torch_zip import NotPlain, read_plain_zip

EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".pkl", ".pickle")
FORMAT_NAMES = {
    "torch-zip": "PyTorch zip (torch.save)",
    "torch-legacy": "PyTorch legacy pickle (torch.save before 1.6)",
    "pickle": "Python pickle",
}
# weights_only=True is safe from this version on (CVE-2025-32434 was a bypass before it)
SAFE_TORCH = (2, 6)
# Keys under which a trusted checkpoint may hold a whole pickled model
_MODEL_OBJECT_KEYS = ("model", "module", "net", "network")


def untrusted_message(path: str, needs: str) -> str:
    """The one line refusing a file whose loading would run code."""
    return (
        f"refusing to open {path}: it {needs}, and loading it can run code from the file; "
        "if you trust the file, open it with --trust (in the app, confirm when asked)"
    )


def load_checkpoint_object(path: str, trust: bool) -> tuple[Any, str]:
    """The object saved in the torch file at `path`, and the name of its format: read
    without torch when it is a zip file holding only tensors and plain containers (the
    common case, and much faster), else with `torch.load` as the trust level allows. Raises
    UntrustedPickleError or SourceError, never anything else."""
    size = check_file(path)
    if sniff(path) == "torch-zip":
        try:
            return read_plain_zip(path, size), FORMAT_NAMES["torch-zip"]
        except NotPlain:
            pass  # torch.load reads it, refuses it, or says what is damaged
    return load_torch_object(path, trust)


def load_torch_object(path: str, trust: bool) -> tuple[Any, str]:
    """`torch.load` of `path` (memory-mapped for zip files) as the trust level allows, and
    the name of its format. Raises UntrustedPickleError or SourceError, never anything else."""
    check_file(path)
    kind = sniff(path) or "torch-legacy"
    try:
        torch = import_torch()
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise SourceError(f"cannot open {path}: PyTorch is not installed ({exc})") from None
    if not trust and _version(torch.__version__) < SAFE_TORCH:
        raise UntrustedPickleError(
            f"refusing to open {path}: PyTorch {torch.__version__} cannot load pickles "
            "safely (before 2.6 its weights-only loader can be tricked into running code, "
            "CVE-2025-32434); upgrade PyTorch, or if you trust the file open it with --trust"
        )
    try:
        with warnings.catch_warnings(), _private_maps(torch):
            warnings.simplefilter("ignore")  # torch's advice about weights_only is ours to give
            if path.endswith(".safetensors"):
                # torch.load hands paths by that name to the safetensors library: give it the
                # open file instead (a torch file misnamed .safetensors; it cannot be mapped)
                with open(path, "rb") as f:
                    obj = torch.load(f, map_location="cpu", weights_only=not trust)
            else:
                obj = torch.load(
                    path,
                    map_location="cpu",
                    weights_only=not trust,
                    mmap=kind in ("torch-zip", "torchscript"),
                )
    except pickle.UnpicklingError as exc:
        globals_needed = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if globals_needed and not trust:
            named = tuple(dict.fromkeys(globals_needed))
            raise UntrustedPickleError(
                untrusted_message(path, f"needs code to load ({', '.join(named)})"),
                globals_needed=named,
            ) from None
        raise _unreadable(path, exc) from None
    # corrupt archives raise RuntimeError, EOFError, KeyError, ...; a trusted pickle's own
    # code may even call sys.exit
    except (Exception, SystemExit) as exc:
        if "TorchScript" in str(exc) and not trust:
            raise UntrustedPickleError(
                untrusted_message(path, "is a TorchScript archive (compiled code)"),
                compiled_code=True,
            ) from None
        raise _unreadable(path, exc) from None
    return obj, FORMAT_NAMES.get(kind, FORMAT_NAMES["torch-zip"])


def _version(text: str) -> tuple[int, int]:
    major, minor = [*re.findall(r"\d+", text), "0", "0"][:2]
    return int(major), int(minor)


def _private_maps(torch: Any) -> contextlib.AbstractContextManager:
    """Memory maps of loaded files stay private (copy-on-write), whatever the process-wide
    default: with MAP_SHARED, changing a loaded tensor would write to the file."""
    options = torch.serialization
    if sys.platform == "win32" or options.get_default_mmap_options() == mmap.MAP_PRIVATE:
        return contextlib.nullcontext()
    return options.set_default_mmap_options(mmap.MAP_PRIVATE)


def _unreadable(path: str, exc: BaseException) -> SourceError:
    text = str(exc).strip().splitlines()
    detail = text[-1] if text else type(exc).__name__
    if "Weights only load failed" in str(exc):
        detail = next((line for line in text if "Unsupported" in line), detail).strip()
    detail = detail.removeprefix("WeightsUnpickler error: ")
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return SourceError(
        f"cannot open {path}: not a readable PyTorch file ({type(exc).__name__}: {detail}); "
        "it may be truncated or damaged: save or download it again"
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
        obj, fmt = load_checkpoint_object(spec, options.trust)
        return tree_from_torch_object(obj, spec, fmt, self.name, options)
