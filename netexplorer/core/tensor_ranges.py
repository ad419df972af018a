"""Where a tensor's bytes lie in its file, for reading it in chunks with plain reads.

Safetensors tensors and contiguous tensors of torch zip files (read without torch) are one
byte range of one file. Reading such a range with `os.preadv` into a buffer that is used
again and again costs the copy from the page cache and no memory: touching a memory map
instead would leave every page read resident in the process (file-backed, but counted), a
whole run's gigabytes of it. Tensors stored any other way (legacy pickles, distributed
checkpoint chunks, arrays in memory) have no range and are read through their handle.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import SourceError
from .handles import TensorHandle, decode_raw, raw_view_dtype

if TYPE_CHECKING:
    import numpy as np

_DECODED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # numpy lacks them: read raw


@dataclass(frozen=True)
class FileRange:
    """`count` elements of `dtype` stored contiguously from byte `offset` of `path`."""

    path: str
    offset: int
    count: int
    dtype: str  # netexplorer's dtype name
    raw: np.dtype  # how the bytes are viewed (little-endian; uint16 for bfloat16)
    file_size: int  # the size the file had when it was opened

    @property
    def nbytes(self) -> int:
        return self.count * self.raw.itemsize

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw stored values as numbers (bfloat16 and float8 to float32)."""
        return decode_raw(raw, self.dtype) if self.dtype in _DECODED else raw


def file_range(handle: TensorHandle) -> FileRange | None:
    """The byte range of a tensor stored contiguously in one file, or None."""
    from .sources.safetensors import SafetensorsHandle
    from .sources.stored import StoredTensorHandle, contiguous_strides

    if isinstance(handle, SafetensorsHandle):
        raw = raw_view_dtype(handle.dtype)
        if raw is None:
            return None
        file = handle.file
        return FileRange(
            file.path,
            file.data_start + handle.begin,
            math.prod(handle.shape),
            handle.dtype,
            raw.newbyteorder("<"),
            file.size,
        )
    if isinstance(handle, StoredTensorHandle):
        t = handle.tensor
        raw = raw_view_dtype(t.dtype)
        if raw is None or t.stride != contiguous_strides(t.shape):
            return None
        s = t.storage
        count = t.numel()
        if (t.offset + count) * raw.itemsize > s.nbytes:
            return None  # reaches past its storage: the handle's own read says so
        return FileRange(
            s.file.path,
            s.file.data_start + s.begin + t.offset * raw.itemsize,
            count,
            t.dtype,
            raw.newbyteorder("<"),
            s.file.size,
        )
    return None


class OpenFiles:
    """The files a pass over many ranges reads, each opened once (and checked to have the
    size it had when the run was opened). Close it, or use it as a context manager."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, where: FileRange, start: int, out: np.ndarray) -> np.ndarray:
        """Elements [start, start + out.size) of `where` into `out` (of its raw dtype)."""
        fd = self._fd(where)
        view = memoryview(out.view("u1").reshape(-1))
        position = where.offset + start * where.raw.itemsize
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], position + done)
            if got <= 0:
                raise SourceError(f"cannot read {where.path}: it ends early; it may be truncated")
            done += got
        return out

    def _fd(self, where: FileRange) -> int:
        fd = self._fds.get(where.path)
        if fd is not None:
            return fd
        try:
            fd = os.open(where.path, os.O_RDONLY)
        except OSError as exc:
            raise SourceError(f"cannot read {where.path}: {exc.strerror or exc}") from None
        self._fds[where.path] = fd
        if os.fstat(fd).st_size != where.file_size:
            raise SourceError(
                f"cannot read {where.path}: the file changed size since it was opened; open "
                "it again"
            )
        return fd

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> OpenFiles:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
