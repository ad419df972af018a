"""What every file reader checks first: that a path is a readable, non-empty file, and what
its first bytes say it is.

Readers choose a file by its content when the content is recognisable and by its extension
otherwise, so a safetensors file named `.bin` still opens, and an empty or damaged `.pt` file
gets the PyTorch reader's error message. Nothing here runs code from a file: sniffing reads a
few bytes and, for zip files, the central directory.
"""

from __future__ import annotations

import os
import stat
import zipfile
from functools import lru_cache

from ..errors import SourceError

FORMATS = (
    "safetensors, a PyTorch .pt/.pth/.bin/.ckpt file, a TorchScript archive or a Hugging Face "
    "folder"
)

# The legacy (pre-zip) torch.save format starts with a protocol-2 pickle of this magic number.
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_HEAD_BYTES = 64
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def check_file(path: str) -> int:
    """The size of the regular file at `path`. Raises SourceError (naming the file and what
    to do) if it is missing, a folder, not readable or empty."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"cannot open {path}: no such file; check the path") from None
    except PermissionError:
        raise SourceError(_permission_message(path)) from None
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"cannot open {path}: it is a folder where a file was expected")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"cannot open {path}: not a regular file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise SourceError(_permission_message(path)) from None
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    if info.st_size == 0:
        raise SourceError(
            f"cannot open {path}: the file is empty (0 bytes); it was probably not saved "
            "completely, save or download it again"
        )
    return info.st_size


def _permission_message(path: str) -> str:
    return f"cannot open {path}: permission denied; make the file readable (chmod +r) and retry"


def read_head(path: str, size: int = _HEAD_BYTES) -> bytes:
    """The first `size` bytes of a file, or b"" if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def sniff(path: str) -> str | None:
    """What the content of `path` is: "safetensors", "torchscript", "torch-zip" (any other
    zip archive too), "torch-legacy", "pickle", or None when unrecognised or not a file."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _sniff_cached(os.path.realpath(path), info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=64)
def _sniff_cached(path: str, size: int, mtime_ns: int) -> str | None:
    # every reader's can_read asks; the key includes size and mtime so a changed file is re-read
    head = read_head(path)
    if len(head) >= 9 and head[8:9] == b"{":
        claimed = int.from_bytes(head[:8], "little")
        if 2 <= claimed <= MAX_SAFETENSORS_HEADER:
            return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch-legacy" if head[2:14] == _LEGACY_MAGIC else "pickle"
    return None


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # BadZipFile, NotImplementedError, ...: sniffing must never raise
        return "torch-zip"  # damaged: the torch reader explains what is wrong
    # torch.jit.save writes compiled code and constants next to the data; torch.save does not
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    return "torch-zip"


def file_dialog_filters() -> list[str]:
    """Filters for a file dialog, from every reader that declares `title` and
    `file_patterns`: all checkpoint files first, each format, then all files. (Folders, such
    as a Hugging Face model folder, need a folder dialog.)"""
    from . import readers  # here, not at the top: the registry imports the reader modules

    filters, patterns = [], []
    for reader in readers():
        own = reader.file_patterns
        if own:
            filters.append(f"{reader.title} ({' '.join(own)})")
            patterns += [p for p in own if p not in patterns]
    return [f"Checkpoints ({' '.join(patterns)})", *filters, "All files (*)"]


def extension(path: str) -> str:
    """The lower-case extension of `path`, with the dot (`.pt`)."""
    return os.path.splitext(path)[1].lower()
