"""`torch.load`, for the torch files netexplorer's own reader does not build, and its errors
in one line each.

A file gets here only after the restricted reader (pickle_reader.py) read it to its end: it
is not a nesting or allocation bomb, its storages are where it says, and `needs` lists every
global it would call. Without trust, those must all be globals torch's weights-only loader
itself builds (quantized and sparse tensors, say); anything else is refused here, naming it,
before torch sees the file. With trust, the file is fully unpickled, which runs its code.
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
from .files import open_regular

# weights_only=True is safe from this version on (CVE-2025-32434 was a bypass before it)
SAFE_TORCH = (2, 6)
_MISSING_CLASS = re.compile(r"Can't get attribute '([^']+)' on <module '([^']+)'")


def untrusted_message(path: str, needs: str) -> str:
    """The one line refusing a file whose loading would run code."""
    return (
        f"refusing to open {path}: it {needs}, and loading it can run code from the file; "
        "if you trust the file, open it with --trust (in the app, confirm when asked)"
    )


def refuse_untrusted(path: str, needs: tuple[str, ...]) -> None:
    """Raise UntrustedPickleError naming the globals of `needs` that torch's weights-only
    loader would not build either (every one of them, when torch's list cannot be read)."""
    unsafe = tuple(n for n in needs if n not in _weights_only_globals())
    if unsafe:
        shown = ", ".join(unsafe[:8]) + (f" and {len(unsafe) - 8} more" if len(unsafe) > 8 else "")
        raise UntrustedPickleError(
            untrusted_message(path, f"needs code to load ({shown})"), globals_needed=unsafe
        )


def _weights_only_globals() -> set[str]:
    torch = _torch(None)
    try:
        unpickler = torch._weights_only_unpickler
        return {*unpickler._get_allowed_globals(), *unpickler._get_user_allowed_globals()}
    except Exception:  # a private list: without it, every global needs trust
        return set()


def load_with_torch(path: str, trust: bool, mappable: bool, needs: tuple[str, ...] = ()) -> Any:
    """`torch.load` of `path` (memory-mapped if `mappable`) as the trust level allows.
    `needs` names the globals the file calls that only torch builds, for messages. Raises
    UntrustedPickleError or SourceError, never anything else."""
    torch = _torch(path)
    if not trust and _version(torch.__version__) < SAFE_TORCH:
        raise UntrustedPickleError(
            f"refusing to open {path}: PyTorch {torch.__version__} cannot load pickles "
            "safely (before 2.6 its weights-only loader can be tricked into running code, "
            "CVE-2025-32434); upgrade PyTorch, or if you trust the file open it with --trust"
        )
    try:
        with warnings.catch_warnings(), _private_maps(torch):
            warnings.simplefilter("ignore")  # torch's advice about weights_only is ours to give
            if path.endswith(".safetensors") or not _utf8(path):
                # torch.load hands paths named .safetensors to the safetensors library, and
                # passes paths to C++ as UTF-8: give it the open file (not mapped, then)
                with open_regular(path) as f:
                    return torch.load(f, map_location="cpu", weights_only=not trust)
            return torch.load(path, map_location="cpu", weights_only=not trust, mmap=mappable)
    except SourceError:  # from open_regular: already one line
        raise
    except pickle.UnpicklingError as exc:
        globals_needed = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if globals_needed and not trust:
            named = tuple(dict.fromkeys(globals_needed))
            raise UntrustedPickleError(
                untrusted_message(path, f"needs code to load ({', '.join(named)})"),
                globals_needed=named,
            ) from None
        if "Unsupported operand" in str(exc):
            what = ", ".join(needs[:4]) or "objects"
            raise SourceError(
                f"cannot open {path}: it holds {what}, which only PyTorch's loader builds, and "
                "its safe loader cannot read this file's pickle protocol; if you trust the "
                "file, open it with --trust"
            ) from None
        raise unreadable(path, exc) from None
    # corrupt archives raise RuntimeError, EOFError, KeyError, ...; a trusted pickle's own
    # code may even call sys.exit
    except (Exception, SystemExit) as exc:
        if "TorchScript" in str(exc) and not trust:
            raise UntrustedPickleError(
                untrusted_message(path, "is a TorchScript archive (compiled code)"),
                compiled_code=True,
            ) from None
        missing = missing_class(exc, needs)
        if missing is not None:
            raise SourceError(missing_class_message(path, missing)) from None
        raise unreadable(path, exc) from None


def load_plain_pickle(path: str, needs: tuple[str, ...] = ()) -> Any:
    """A trusted plain pickle (`pickle.dump`, not `torch.save`), fully unpickled: this runs
    whatever code it names. Raises SourceError."""
    _torch(path)  # its tensors unpickle through torch
    try:
        with open_regular(path) as f:
            return pickle.load(f)
    except SourceError:  # from open_regular: already one line
        raise
    except (Exception, SystemExit) as exc:
        missing = missing_class(exc, needs)
        if missing is not None:
            raise SourceError(missing_class_message(path, missing)) from None
        raise unreadable(path, exc) from None


def missing_class(exc: BaseException, needs: tuple[str, ...] = ()) -> str | None:
    """The class a pickle names that cannot be imported (`mypkg.models.Net`, found among the
    globals it `needs` when Python only names the module), or None."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        module = exc.name
        return next((n for n in needs if n.startswith(module + ".")), module)
    match = _MISSING_CLASS.search(str(exc)) if isinstance(exc, AttributeError) else None
    return f"{match[2]}.{match[1]}" if match else None


def missing_class_message(path: str, name: str) -> str:
    """What to do about a whole pickled model whose code is not importable here."""
    return (
        f"cannot open {path}: it is a pickled model whose code ({name}) cannot be imported "
        "here; put the folder that defines it on PYTHONPATH, or rebuild the model from code "
        f"and load the weights: --model pkg.mod:factory --weights {path}"
    )


def unreadable(path: str, exc: BaseException) -> SourceError:
    """A damaged file, in one line, with torch's last words about it."""
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


def _torch(path: str | None) -> Any:
    try:
        return import_torch()
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        where = f"open {path}" if path else "check the file"
        raise SourceError(f"cannot {where}: PyTorch is not installed ({exc})") from None


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a file name of bytes that are not UTF-8 (surrogate escapes)
        return False
    return True


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
