"""Files mapped into memory, read-only, shared by the lazy handles of their tensors.

Both readers that need no torch (safetensors, and torch zip files whose pickle holds only
tensors and plain containers) hand out slices of one map per file: mapping costs no memory
until pages are touched, and tensors are read only when they are shown.
"""

from __future__ import annotations

import collections
import errno
import io
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import SourceError

if TYPE_CHECKING:  # numpy loads when values are first read, not to list a file's tensors
    import numpy as np


class MappedFile:
    """A file mapped into memory on first use. Offsets are relative to `data_start`.

    One map per file keeps the number of open maps small for files of thousands of tensors.
    Each map holds an open file, and a folder of 1,100 shards read one after another must not
    hold 1,100 (the usual limit is 1,024): the RECENT_MAPS maps used last are kept, the others
    live only as long as an array handed out holds them (by weak reference). The file is
    never written: the read-only map cannot be, and the writable map handed to models built
    from code is copy-on-write."""

    def __init__(self, path: str, data_start: int, size: int) -> None:
        self.path = path
        self.data_start = data_start
        self.size = size
        self._lock = threading.Lock()
        self._map: Callable[[], np.memmap | None] = _nothing
        self._writable: Callable[[], np.memmap | None] = _nothing

    @property
    def is_mapped(self) -> bool:
        """Whether the read-only map is held (by this file, or an array read from it)."""
        return self._map() is not None

    def bytes(self, begin: int, end: int, writable: bool = False) -> np.ndarray:
        """The bytes [begin, end) of the data section as a uint8 array (read-only, or
        copy-on-write: writes stay in memory and never reach the file)."""
        import numpy as np

        with self._lock:
            self._check_unchanged()
            mapped = (self._writable if writable else self._map)()
            if mapped is None:
                mapped = self._open_map("c" if writable else "r")
                if writable:
                    self._writable = weakref.ref(mapped)
                else:
                    self._map = weakref.ref(mapped)
        _keep_recent(mapped)
        start = self.data_start + begin
        return np.asarray(mapped[start : self.data_start + end])

    def _open_map(self, mode: str) -> np.memmap:
        import numpy as np

        try:
            return np.memmap(self.path, dtype=np.uint8, mode=mode)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise SourceError(
                    f"cannot read {self.path}: too many files are open at once; raise the "
                    "limit (ulimit -n) or close other programs, and retry"
                ) from None
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def release(self) -> None:
        """Let go of the read-only map: its pages leave the process once no array read from
        it is left (a training run's checkpoints that are not shown), and the next read maps
        the file again."""
        with self._lock:
            mapped = self._map()
            self._map = _nothing
        if mapped is not None:
            with _recent_lock:
                _recent.pop(id(mapped), None)

    def _check_unchanged(self) -> None:
        # touching a mapped page past a shrunken end of file kills the process (SIGBUS)
        try:
            size = os.stat(self.path).st_size
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if size != self.size:
            raise SourceError(
                f"cannot read {self.path}: the file changed size since it was opened; open it again"
            )


class FileWindow(io.RawIOBase):
    """Bytes [begin, begin + length) of an open binary file, read as a file of their own:
    positions start at 0 and reads stop at the window's end. For an archive saved inside a
    larger file (each chunk of a distributed checkpoint's shard is one `torch.save`), so
    that zipfile finds that archive's directory and not the last one of the file."""

    def __init__(self, f: io.BufferedIOBase, begin: int, length: int) -> None:
        super().__init__()
        self._f = f
        self._begin = begin
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = max(0, min(len(buffer), self._length - self._position))
        if count == 0:
            return 0
        self._f.seek(self._begin + self._position)
        data = self._f.read(count)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


RECENT_MAPS = 64  # maps kept open although no array holds them (reading tensor after tensor)
_recent: collections.OrderedDict[int, np.memmap] = collections.OrderedDict()
_recent_lock = threading.Lock()


def _keep_recent(mapped: np.memmap) -> None:
    with _recent_lock:
        _recent[id(mapped)] = mapped
        _recent.move_to_end(id(mapped))
        while len(_recent) > RECENT_MAPS:
            _recent.popitem(last=False)


def _nothing() -> None:
    return None
