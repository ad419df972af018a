"""Hand-assembled pickles and the archives torch.save writes around them, for crafted files.

`pickle` itself refuses to write most of what an attacker writes (a GLOBAL of a function it
cannot import, a tuple nested a million deep, a storage that is not there), so crafted files
are assembled from opcodes here. Every helper returns the opcodes of one value, without PROTO
and STOP; `dumps` wraps them.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MARK, TUPLE, REDUCE, BUILD, STOP = b"(", b"t", b"R", b"b", b"."
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, EMPTY_SET = b"}", b"]", b")", b"\x8f"
SETITEM, SETITEMS, APPENDS, ADDITEMS = b"s", b"u", b"e", b"\x90"
TUPLE1, NONE, NEWFALSE, BINPERSID = b"\x85", b"N", b"\x89", b"Q"


def dumps(body: bytes, protocol: int = 2) -> bytes:
    """A whole pickle: PROTO, the opcodes of one value, STOP."""
    return b"\x80" + bytes([protocol]) + body + STOP


def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def integer(n: int) -> bytes:
    if 0 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    if len(raw) < 256:
        return b"\x8a" + bytes([len(raw)]) + raw
    return b"\x8b" + struct.pack("<I", len(raw)) + raw


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + REDUCE


def mapping(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    return EMPTY_DICT + MARK + b"".join(k + v for k, v in pairs) + SETITEMS


def storage(key: str, numel: int, kind: str = "FloatStorage", legacy: bool = False) -> bytes:
    """A persistent reference to storage `key`, as torch.save writes it (legacy: six fields)."""
    fields = [text("storage"), glob("torch", kind), text(key), text("cpu"), integer(numel)]
    if legacy:
        fields.append(NONE)
    return tup(*fields) + BINPERSID


def tensor(storage_ref: bytes, offset: int, shape: Iterable[int], stride: Iterable[int]) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())"""
    return call(
        glob("torch._utils", "_rebuild_tensor_v2"),
        storage_ref,
        integer(offset),
        tup(*map(integer, shape)),
        tup(*map(integer, stride)),
        NEWFALSE,
        call(glob("collections", "OrderedDict")),
    )


def nested_tuple(depth: int) -> bytes:
    """A tuple nested `depth` deep: ((((),),),)"""
    return EMPTY_TUPLE + TUPLE1 * depth


def write_torch_zip(
    path: Path,
    data_pkl: bytes,
    storages: dict[str, bytes] | None = None,
    *,
    deflate_pickle: bool = False,
    archive: str = "archive",
) -> Path:
    """A torch zip archive (`torch.save` layout) around a hand-assembled data.pkl."""
    with zipfile.ZipFile(path, "w") as z:
        kind = zipfile.ZIP_DEFLATED if deflate_pickle else zipfile.ZIP_STORED
        z.writestr(f"{archive}/data.pkl", data_pkl, compress_type=kind)
        z.writestr(f"{archive}/byteorder", "little")
        for key, raw in (storages or {}).items():
            z.writestr(f"{archive}/data/{key}", raw)
        z.writestr(f"{archive}/version", "3\n")
    return path


def write_deflated_zeros_pickle(path: Path, inflated: int, archive: str = "archive") -> Path:
    """A torch zip whose data.pkl is `inflated` bytes that deflate to a thousandth of that
    (a zip bomb); written a chunk at a time, never held in memory."""
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(path, "w", allowZip64=True) as z:
        info = zipfile.ZipInfo(f"{archive}/data.pkl")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            left = inflated
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
        z.writestr(f"{archive}/byteorder", "little")
        z.writestr(f"{archive}/version", "3\n")
    return path


def write_legacy(path: Path, main: bytes, storages: list[tuple[str, int, bytes]]) -> Path:
    """A legacy (pre-zip) torch.save file: magic, protocol, system info, the object's pickle
    `main`, the list of storage keys, then each storage as an 8-byte count and its bytes."""
    info = {"protocol_version": 1001, "little_endian": True}
    info["type_sizes"] = {"short": 2, "int": 4, "long": 4}
    parts = [pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, info)]
    parts.append(main)
    parts.append(pickle.dumps([key for key, _, _ in storages], protocol=2))
    for _, numel, raw in storages:
        parts.append(struct.pack("<q", numel) + raw)
    path.write_bytes(b"".join(parts))
    return path
