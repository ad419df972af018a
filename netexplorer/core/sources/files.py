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
from functools import lru_cache
from typing import BinaryIO

from ..errors import SourceError

FORMATS = (
    "safetensors, a PyTorch .pt/.pth/.bin/.ckpt file, a TorchScript archive or a Hugging Face "
    "folder"
)

# The legacy (pre-zip) torch.save format starts with a protocol-2 pickle of this magic number.
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_MAGIC = b"\x8a\x0a" + _LEGACY_MAGIC_NUMBER.to_bytes(10, "little")
_LEGACY_MAGIC_TEXT = f"L{_LEGACY_MAGIC_NUMBER}L\n.".encode()
_HEAD_BYTES = 64
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def check_file(path: str) -> int:
    """The size of the regular file at `path`. Raises SourceError (naming the file and what
    to do) if it is missing, a folder, a FIFO, device or socket (refused by `stat`, before
    anything opens it: opening a FIFO waits for a writer, a device never ends), not readable
    or empty."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"cannot open {path}: no such file; check the path") from None
    except PermissionError:
        raise SourceError(permission_message(path)) from None
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"cannot open {path}: it is a folder where a file was expected")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(
            f"cannot open {path}: it is {_kind(info.st_mode)}, not a regular file; netexplorer "
            "reads only files saved on disk"
        )
    with open_regular(path):
        pass
    if info.st_size == 0:
        raise SourceError(
            f"cannot open {path}: the file is empty (0 bytes); it was probably not saved "
            "completely, save or download it again"
        )
    return info.st_size


def open_regular(path: str) -> BinaryIO:
    """`path` opened for reading if it is a regular file. Opened without blocking and checked
    again on the open file, so a FIFO put in its place after `check_file` cannot hang the
    reader. Raises SourceError."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise SourceError(permission_message(path)) from None
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SourceError(f"cannot open {path}: it is {_kind(mode)}, not a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def permission_message(path: str) -> str:
    """What to do when `path` cannot be opened for lack of permission: make a folder on the
    way searchable (`chmod +x`), or the file itself readable (`chmod +r`)."""
    folder = unsearchable_folder(path)
    if folder is not None:
        return (
            f"cannot open {path}: permission denied: the folder {folder} cannot be searched; "
            f"make it searchable (chmod +x {folder}) or ask its owner"
        )
    return f"cannot open {path}: permission denied; make the file readable (chmod +r) and retry"


def unsearchable_folder(path: str) -> str | None:
    """The outermost folder on the way to `path` that the user may not search (enter), or None."""
    parent = os.path.dirname(os.path.abspath(path))
    folders = []
    while True:
        folders.append(parent)
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    for folder in reversed(folders):  # from the root down
        if not os.access(folder, os.X_OK):
            return folder
    return None


def list_folder(folder: str) -> list[str]:
    """The names in `folder`, sorted. Raises SourceError when it cannot be listed (a folder
    without read permission is not a folder without weights)."""
    try:
        return sorted(os.listdir(folder))
    except PermissionError:
        if unsearchable_folder(folder) is not None:  # a folder on the way, not this one
            raise SourceError(permission_message(folder)) from None
        raise SourceError(
            f"cannot open {folder}: permission denied listing the folder; make it readable "
            f"(chmod +r {folder}) or open a weights file inside it directly"
        ) from None
    except OSError as exc:
        raise SourceError(f"cannot open {folder}: {exc.strerror or exc}") from None


def read_head(path: str, size: int = _HEAD_BYTES) -> bytes:
    """The first `size` bytes of a regular file, or b"" if it cannot be read."""
    try:
        with open_regular(path) as f:
            return f.read(size)
    except (OSError, SourceError):
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
    if head.startswith(_LEGACY_MAGIC_TEXT):  # protocols 0 and 1 write the number as text
        return "torch-legacy"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        # protocols 4 and 5 put a FRAME (one opcode, an 8-byte length) before the number
        body = head[11:] if head[2:3] == b"\x95" else head[2:]
        return "torch-legacy" if body.startswith(_LEGACY_MAGIC) else "pickle"
    return None


def _zip_kind(path: str) -> str:
    from .zip_directory import Unusual, directory_of  # here: it is needed for zip files only

    try:
        with open_regular(path) as f:
            try:  # kept for the reader, which reads the same directory next
                names = list(directory_of(path, f, keep=True))
            except Unusual:
                import zipfile  # to tell zips apart; not imported to open safetensors

                with zipfile.ZipFile(f) as archive:
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
