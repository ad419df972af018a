"""Torch zip files (`torch.save` since PyTorch 1.6) read without torch and without running
anything from the file.

The archive holds `<name>/data.pkl`, a pickle of the saved object in which every tensor is a
call of a torch rebuild function on a storage, and one entry `<name>/data/<key>` per storage.
`data.pkl` is read by the restricted unpickler (pickle_reader.py) with netexplorer's stand-ins
(stand_ins.py): every tensor becomes a StoredTensor (a storage entry, an offset, a shape,
strides, a dtype), bounds-checked, and no torch object is created and no torch function
called; tensor values stay in the file until a handle reads them from a read-only memory map,
after a second bounds check.

Before anything is unpickled, the archive's own numbers are checked: a compressed member
may inflate at most MAX_INFLATION times (a zip bomb's data.pkl inflates 1,000 times), and
data.pkl may hold at most MAX_PICKLE_BYTES. Then data.pkl is read to its end even when it
needs more than plain tensors, so depth and allocation bombs are refused here, before torch.

Anything else (a quantized, sparse, conjugated or negated tensor, numpy values, a custom
class, a pickled module, code) raises `NotPlain`, naming every global it needs, and the file
goes to `torch.load(weights_only=True)` or is refused as untrusted (torch_file.py). An
archive Python's zipfile cannot read goes to torch too, so its error message is torch's; a
damaged data.pkl is `Damaged` (pickle_reader.py), named with the byte where it breaks.

Why: listing a 1.4 GB checkpoint this way takes tens of milliseconds and a few MB, where
`import torch` alone takes 1.4 s and 200 MB (bench/open.py).
"""

from __future__ import annotations

import mmap
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from ..errors import SourceError
from ..handles import ITEMSIZE
from ..limits import GET_IT_AGAIN, INFLATION_FLOOR, MAX_INFLATION, MAX_PICKLE_BYTES, size_text
from .files import open_regular
from .mapped import FileWindow, MappedFile
from .pickle_reader import NotPlain, Refused, load_restricted
from .stand_ins import CALLABLES, STAND_INS, TENSOR_MAKERS, StorageType, storage_reference
from .stored import LIMIT, Storage, StoredTensor, StoredTensorHandle, check_no_bare_storage
from .zip_directory import Unusual, data_offset, directory_of, read_directory

__all__ = [
    "NotPlain",
    "Refused",
    "Storage",
    "StoredTensor",
    "StoredTensorHandle",
    "check_inflation",
    "read_plain_zip",
]


def read_plain_zip(
    path: str,
    size: int,
    window: tuple[int, int] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Any:
    """The object saved in the torch zip file at `path` (of `size` bytes), with a
    `StoredTensor` for every tensor. Raises NotPlain when the file needs torch.load (a
    global outside the stand-ins, compressed storages, a big-endian or damaged archive),
    Refused when it breaks a limit (its message says which).

    `window` = (begin, length): the archive is those bytes of the file, not the whole file
    (a shard of a distributed checkpoint holds one `torch.save` archive per chunk).
    `progress(fraction, text)` is told how far the reading is, every 10,000 tensors."""
    begin, length = window or (0, size)
    try:
        with open_regular(path) as raw:
            f = raw if window is None else FileWindow(raw, begin, length)
            with _Archive(path, raw, f, begin, length) as archive:
                check_inflation(list(archive.infos.values()), path)
                obj = _ArchiveReader(path, size, archive, progress).load()
        check_no_bare_storage(obj)
        return obj
    except (NotPlain, Refused, SourceError):
        raise
    except Exception as exc:  # damaged: torch.load gives the error message
        raise NotPlain(f"{type(exc).__name__}: {exc}") from None


def check_inflation(infos: list[zipfile.ZipInfo], path: str) -> None:
    """Refuse an archive whose compressed members inflate past MAX_INFLATION times their
    size (torch.save never compresses; a zip bomb does)."""
    for info in infos:
        if info.compress_type == zipfile.ZIP_STORED:
            continue
        allowed = max(INFLATION_FLOOR, MAX_INFLATION * info.compress_size)
        if info.file_size > allowed:
            raise Refused(
                f"{info.filename} inflates from {size_text(info.compress_size)} to "
                f"{size_text(info.file_size)}, {info.file_size // max(1, info.compress_size):,} "
                f"times (netexplorer inflates at most {MAX_INFLATION} times, a zip bomb more); "
                f"{GET_IT_AGAIN}"
            )


_LOCAL_SIZE = 30  # a local file header, before its name and extra field
_LENGTHS = struct.Struct("<HH")  # their lengths, at byte 26


class _Archive:
    """The members of an archive and their bytes: read by zip_directory.py (the directory
    once, kept from telling the file's kind; local headers from a map of the file), or by
    zipfile when the archive is not laid out as torch.save lays it out."""

    def __init__(self, path: str, raw: BinaryIO, f: Any, begin: int, length: int) -> None:
        self.path = path
        self.f = f
        self.begin = begin
        self.length = length
        self.zipfile: zipfile.ZipFile | None = None
        self.map = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)
        if len(self.map) < begin + length:
            raise NotPlain("the file is shorter than its archive")
        try:
            self.infos: dict[str, Any] = (
                directory_of(path, raw, keep=False) if f is raw else read_directory(f, length)
            )
        except Unusual:
            self.zipfile = zipfile.ZipFile(f)
            self.infos = {info.filename: info for info in self.zipfile.infolist()}

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zipfile is not None:
            self.zipfile.close()
        self.map.close()

    def read_at(self, offset: int, count: int) -> bytes:
        """`count` bytes at `offset` of the archive (fewer at its end)."""
        offset = max(0, min(offset, self.length))
        end = min(offset + count, self.length)
        return self.map[self.begin + offset : self.begin + end]

    def read(self, info: Any) -> bytes:
        """A member's bytes, checked against its CRC."""
        if self.zipfile is not None or info.compress_type != zipfile.ZIP_STORED:
            if self.zipfile is None:
                self.zipfile = zipfile.ZipFile(self.f)
            return self.zipfile.read(info.filename)
        try:
            start = data_offset(self.read_at, info)
        except Unusual as exc:
            raise zipfile.BadZipFile(str(exc)) from None
        data = self.read_at(start, info.file_size)
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        return data

    def data_offset(self, info: Any) -> int:
        """Where a stored member's bytes begin (after its local header, whose name and
        extra field may differ in length from the directory's). Read from the map here, not
        through `zip_directory.data_offset`: it runs for every storage of a file."""
        at = info.header_offset
        header = self.map[self.begin + at : self.begin + at + _LOCAL_SIZE]
        if at + _LOCAL_SIZE > self.length or header[:4] != b"PK\x03\x04":
            raise NotPlain(f"bad local header for {info.filename}")
        name_length, extra_length = _LENGTHS.unpack_from(header, 26)
        return at + _LOCAL_SIZE + name_length + extra_length


class _ArchiveReader:
    def __init__(
        self,
        path: str,
        size: int,
        archive: _Archive,
        progress: Callable[[float, str], None] | None = None,
    ):
        self.path = path
        self.archive = archive
        self.infos = archive.infos
        self.file = MappedFile(path, archive.begin, size)  # offsets are from the archive's start
        self.size = archive.length
        self.storages: dict[str, Storage] = {}
        self.progress = progress
        pickles = [n for n in self.infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise NotPlain("not one data.pkl at the top of the archive")
        self.prefix = pickles[0].removesuffix("data.pkl")
        self.data_prefix = f"{self.prefix}data/"
        if f"{self.prefix}constants.pkl" in self.infos:
            raise NotPlain("a TorchScript archive")

    def load(self) -> Any:
        info = self.infos[f"{self.prefix}data.pkl"]
        if info.file_size > MAX_PICKLE_BYTES:
            raise Refused(
                f"its data.pkl is {size_text(info.file_size)}, more than the "
                f"{size_text(MAX_PICKLE_BYTES)} netexplorer unpickles (a million tensors "
                "pickle to about 60 MB); open it in Python with torch.load"
            )
        data = self.archive.read(info)  # checks the CRC
        stored = max(1, sum(1 for n in self.infos if n.startswith(self.data_prefix)))
        progress = self.progress

        def report(tensors: int) -> None:
            if progress is not None:
                progress(min(1.0, tensors / stored), f"read {tensors:,} tensors of {self.path}")

        obj = load_restricted(
            data,
            stand_ins=STAND_INS,
            callables=CALLABLES,
            tensor_makers=TENSOR_MAKERS,
            persistent_load=self.storage,
            file_size=self.size,
            progress=report,
        )
        order = self.infos.get(f"{self.prefix}byteorder")
        if order is not None and (order.file_size > 16 or self.archive.read(order) != b"little"):
            raise NotPlain("not a little-endian archive")
        return obj

    def storage(self, pid: Any) -> Storage:
        if (  # what torch.save writes: ("storage", torch.FloatStorage, "0", "cpu", numel)
            type(pid) is tuple
            and len(pid) == 5
            and type(pid[1]) is StorageType
            and type(pid[2]) is str
            and pid[0] == "storage"
            and type(pid[4]) is int
            and 0 <= pid[4] < LIMIT
        ):
            kind, key, numel = pid[1], pid[2], pid[4]
        else:
            kind, key, numel = storage_reference(pid, fields=5)
        known = self.storages.get(key)
        if known is not None:
            if known.dtype != kind.dtype:
                raise NotPlain(f"storage {key} is named with two dtypes")
            return known
        nbytes = numel * (ITEMSIZE[kind.dtype] if kind.dtype else 1)
        info = self.infos.get(self.data_prefix + key)
        if info is None or info.compress_type != zipfile.ZIP_STORED or info.file_size < nbytes:
            raise NotPlain(f"storage {key} is missing, compressed or short")
        begin = self.archive.data_offset(info)
        if begin + nbytes > self.size:
            raise NotPlain(f"storage {key} lies past the end of the file")
        storage = Storage(key, kind.dtype, nbytes, self.file, begin)
        self.storages[key] = storage
        return storage
