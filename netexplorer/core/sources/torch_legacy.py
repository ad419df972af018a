"""Legacy torch files (`torch.save` before PyTorch 1.6, or with
`_use_new_zipfile_serialization=False`) and plain Python pickles, read without torch.

A legacy file is a run of pickles: the magic number, the format's version, facts about the
saving machine, the object (whose persistent ids name storages), the list of storage keys;
then each storage in that order as an 8-byte element count and its bytes. Every pickle is
read by the restricted unpickler (pickle_reader.py) over a read-only memory map, with the
stand-ins of stand_ins.py, and every storage is checked against the bytes the file holds
for it before anything points into them. torch's own loader allocates each storage at the
size its persistent id names, before reading a byte of it, so that check is also what keeps
a 300-byte file from making torch allocate 3 GB when it is handed on.

A file whose first pickle is not the magic number is a plain pickle (`pickle.dump`): its
object is read the same way.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any

from .files import open_regular
from .mapped import MappedFile
from .pickle_reader import Damaged, NotPlain, load_restricted
from .stand_ins import (
    CALLABLES,
    STAND_INS,
    STORAGE_ITEMSIZES,
    TENSOR_MAKERS,
    storage_fields,
    storage_reference,
)
from .stored import Storage, check_no_bare_storage

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_COUNT = struct.Struct("<q")


def read_plain_pickle(path: str, size: int) -> tuple[Any, bool]:
    """(the object saved in the legacy torch file or plain pickle at `path`, whether it is a
    legacy torch file), with a StoredTensor for every tensor. Raises NotPlain when torch's
    loader or trust is needed (`written_by_torch` says which kind of file it is), Refused or
    Damaged when the file breaks a limit or is not a valid pickle."""
    with open_regular(path) as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        legacy = False
        try:
            first = _load(data, size)
            legacy = type(first) is int and first == LEGACY_MAGIC
            if not legacy:
                check_no_bare_storage(first)
                return first, False
            return _read_legacy(path, size, data), True
        except NotPlain as error:
            error.written_by_torch = legacy
            raise


def _load(data: mmap.mmap, size: int, persistent_load: Any = None) -> Any:
    return load_restricted(
        data,
        stand_ins=STAND_INS,
        callables=CALLABLES,
        tensor_makers=TENSOR_MAKERS,
        persistent_load=persistent_load,
        file_size=size,
    )


def _read_legacy(path: str, size: int, data: mmap.mmap) -> Any:
    version = _load(data, size)
    if version != PROTOCOL_VERSION:
        raise Damaged(f"it names format version {version!r:.20}, not {PROTOCOL_VERSION}")
    info = _load(data, size)
    if not isinstance(info, dict):
        raise Damaged("its system information is not a dict")
    layout = _Layout(MappedFile(path, 0, size))
    needs: NotPlain | None = None
    try:
        obj = _load(data, size, layout.storage)
    except NotPlain as error:  # the layout is still checked: torch would allocate from it
        needs, obj = error, None
    keys = _load(data, size)
    if not (isinstance(keys, list) and all(type(k) is str for k in keys)):
        raise Damaged("its list of storage keys is not a list of names")
    layout.place(data, keys, size)
    if info.get("little_endian") is False:
        raise needs or NotPlain("a big-endian file")
    if needs is not None:
        raise needs
    check_no_bare_storage(obj)
    return obj


class _Layout:
    """The storages a legacy pickle names, then where their bytes lie in the file."""

    def __init__(self, file: MappedFile) -> None:
        self.file = file
        self.named: dict[str, tuple[int, int]] = {}  # key -> (itemsize, element count)
        self.storages: dict[str, Storage] = {}  # the ones this reader maps

    def storage(self, pid: Any) -> Storage:
        """persistent_load: a Storage to be placed, or NotPlain for one torch builds."""
        name, key, numel = storage_fields(pid, fields=6)
        itemsize = STORAGE_ITEMSIZES.get(name)
        if itemsize is None:
            raise NotPlain(f"a storage of type {name}", needs=[f"torch.{name}"])
        if self.named.setdefault(key, (itemsize, numel)) != (itemsize, numel):
            raise Damaged(f"it names storage {key[:40]!r} with two sizes or types")
        kind, key, numel = storage_reference(pid, fields=6)
        if kind.dtype is None:
            raise NotPlain("an untyped storage in a legacy file")
        if key not in self.storages:
            self.storages[key] = Storage(key, kind.dtype, numel * itemsize, self.file, -1)
        return self.storages[key]

    def place(self, data: mmap.mmap, keys: list[str], size: int) -> None:
        """Set where each storage's bytes begin (after the pickles, in the order of `keys`),
        checking each against the count the file stores with it and against the end of
        the file."""
        offset = data.tell()
        for key in keys:
            if key not in self.named:
                raise Damaged(f"it stores storage {key[:40]!r}, which no tensor names")
            itemsize, numel = self.named.pop(key)
            if offset + _COUNT.size > size:
                raise Damaged("it ends before its storages")
            (count,) = _COUNT.unpack_from(data, offset)
            if count != numel:
                raise Damaged(
                    f"storage {key[:40]!r} holds {count:,} elements where its tensors name "
                    f"{numel:,}"
                )
            begin = offset + _COUNT.size
            offset = begin + numel * itemsize
            if offset > size:
                raise Damaged(f"storage {key[:40]!r} lies past the end of the file (truncated)")
            if key in self.storages:
                self.storages[key].begin = begin
        if self.named:
            missing = next(iter(self.named))
            raise Damaged(f"storage {missing[:40]!r} is named by a tensor but not stored")
