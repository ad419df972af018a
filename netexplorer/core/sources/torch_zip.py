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

import struct
import zipfile
from typing import Any

from ..errors import SourceError
from ..handles import ITEMSIZE
from ..limits import GET_IT_AGAIN, INFLATION_FLOOR, MAX_INFLATION, MAX_PICKLE_BYTES, size_text
from .files import open_regular
from .mapped import FileWindow, MappedFile
from .pickle_reader import NotPlain, Refused, load_restricted
from .stand_ins import CALLABLES, STAND_INS, TENSOR_MAKERS, storage_reference
from .stored import Storage, StoredTensor, StoredTensorHandle, check_no_bare_storage

__all__ = [
    "NotPlain",
    "Refused",
    "Storage",
    "StoredTensor",
    "StoredTensorHandle",
    "check_inflation",
    "read_plain_zip",
]

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra length


def read_plain_zip(path: str, size: int, window: tuple[int, int] | None = None) -> Any:
    """The object saved in the torch zip file at `path` (of `size` bytes), with a
    `StoredTensor` for every tensor. Raises NotPlain when the file needs torch.load (a
    global outside the stand-ins, compressed storages, a big-endian or damaged archive),
    Refused when it breaks a limit (its message says which).

    `window` = (begin, length): the archive is those bytes of the file, not the whole file
    (a shard of a distributed checkpoint holds one `torch.save` archive per chunk)."""
    begin, length = window or (0, size)
    try:
        with open_regular(path) as raw:
            f = raw if window is None else FileWindow(raw, begin, length)
            with zipfile.ZipFile(f) as archive:
                check_inflation(archive.infolist(), path)
                obj = _ArchiveReader(path, size, f, archive, begin, length).load()
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


class _ArchiveReader:
    def __init__(
        self,
        path: str,
        size: int,
        f: Any,
        archive: zipfile.ZipFile,
        begin: int = 0,
        length: int | None = None,
    ):
        self.path = path
        self.f = f
        self.infos = {info.filename: info for info in archive.infolist()}
        self.archive = archive
        self.file = MappedFile(path, begin, size)  # offsets below are from the archive's start
        self.size = size if length is None else length
        self.storages: dict[str, Storage] = {}
        pickles = [n for n in self.infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise NotPlain("not one data.pkl at the top of the archive")
        self.prefix = pickles[0].removesuffix("data.pkl")
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
        obj = load_restricted(
            data,
            stand_ins=STAND_INS,
            callables=CALLABLES,
            tensor_makers=TENSOR_MAKERS,
            persistent_load=self.storage,
            file_size=self.size,
        )
        order = self.infos.get(f"{self.prefix}byteorder")
        if order is not None and (order.file_size > 16 or self.archive.read(order) != b"little"):
            raise NotPlain("not a little-endian archive")
        return obj

    def storage(self, pid: Any) -> Storage:
        kind, key, numel = storage_reference(pid, fields=5)
        known = self.storages.get(key)
        if known is not None:
            if known.dtype != kind.dtype:
                raise NotPlain(f"storage {key} is named with two dtypes")
            return known
        nbytes = numel * (ITEMSIZE[kind.dtype] if kind.dtype else 1)
        info = self.infos.get(f"{self.prefix}data/{key}")
        if info is None or info.compress_type != zipfile.ZIP_STORED or info.file_size < nbytes:
            raise NotPlain(f"storage {key} is missing, compressed or short")
        begin = self._data_offset(info)
        if begin + nbytes > self.size:
            raise NotPlain(f"storage {key} lies past the end of the file")
        storage = Storage(key, kind.dtype, nbytes, self.file, begin)
        self.storages[key] = storage
        return storage

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        # the local header's name and extra field may differ in length from the central one
        self.f.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(self.f.read(_LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise NotPlain(f"bad local header for {info.filename}")
        return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
