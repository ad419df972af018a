"""The central directory of a zip archive, read once and quickly.

`zipfile.ZipFile` makes a ZipInfo of a dozen fields for every member (0.14 s for the 100,012
members of a 50,000-tensor torch.save archive), and a torch file's directory was read twice:
once to tell a TorchScript archive from a torch.save one, once to read it. Here the
directory is read into plain tuples, in one pass over one read, and kept for the file as it
is (its real path, size and modification time) so that the second reader gets it free.

Only what torch.save writes is read here: one disk, no encryption, no archive prepended to
the zip, zip64 sizes and offsets. Anything else raises `Unusual`, and the caller uses
`zipfile` itself, whose messages then say what is wrong.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header (46 bytes)
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header (30 bytes)
_MAX_COMMENT = 1 << 16
_ENCRYPTED = 0x1
_UTF8_NAME = 0x800
_MAX_EXTRACT_VERSION = 63  # zipfile's own limit


class Unusual(Exception):
    """The archive is not laid out as this reader expects: zipfile reads it instead."""


class Member(NamedTuple):
    """One member of the archive, named as ZipInfo names the same fields."""

    filename: str
    header_offset: int  # of its local header, from the archive's start
    compress_type: int
    compress_size: int
    file_size: int
    CRC: int  # as ZipInfo spells it


def read_directory(f: BinaryIO, length: int) -> dict[str, Member]:
    """The members of the archive of `length` bytes readable from `f` (positions from the
    archive's start), by name (a later member of the same name wins, as in zipfile).
    Raises Unusual."""
    tail_start = max(0, length - _END.size - _MAX_COMMENT)
    f.seek(tail_start)
    tail = f.read(length - tail_start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _END.size > len(tail):
        raise Unusual("no end of central directory")
    _sig, disk, disk_dir, _here, count, size, offset, _comment = _END.unpack_from(tail, at)
    end_at = tail_start + at
    if disk != 0 or disk_dir != 0:
        raise Unusual("an archive over several disks")
    zip64 = at - _END64_LOCATOR.size
    if zip64 >= 0 and tail[zip64 : zip64 + 4] == b"PK\x06\x07":
        _sig, disk64, end64_at, disks = _END64_LOCATOR.unpack_from(tail, zip64)
        if disk64 != 0 or disks > 1:
            raise Unusual("an archive over several disks")
        f.seek(end64_at)
        record = f.read(_END64.size)
        if len(record) != _END64.size or record[:4] != b"PK\x06\x06":
            raise Unusual("a damaged zip64 end record")
        fields = _END64.unpack(record)
        count, size, offset = fields[7], fields[8], fields[9]
        if end64_at + _END64.size + _END64_LOCATOR.size != end_at:
            raise Unusual("data between the zip64 records")  # zipfile's "concat"
    elif offset + size != end_at:
        raise Unusual("an archive after other data")  # zipfile's "concat"
    if offset + size > length:
        raise Unusual("a directory past the end")
    f.seek(offset)
    directory = f.read(size)
    if len(directory) != size:
        raise Unusual("a truncated directory")
    return _members(directory, count)


def _members(directory: bytes, count: int) -> dict[str, Member]:
    members: dict[str, Member] = {}
    unpack = _ENTRY.unpack_from
    position, end = 0, len(directory)
    while position < end:
        (
            signature, _made, _system, version, _reserved, flags, method, _time, _date,
            crc, compressed, size, name_length, extra_length, comment_length, disk,
            _internal, _external, offset,
        ) = unpack(directory, position)  # fmt: skip
        if signature != b"PK\x01\x02" or flags & _ENCRYPTED or disk != 0:
            raise Unusual("an entry this reader does not read")
        if version > _MAX_EXTRACT_VERSION:
            raise Unusual("an entry of a later zip version")
        name_at = position + _ENTRY.size
        raw = directory[name_at : name_at + name_length]
        name = raw.decode("utf-8" if flags & _UTF8_NAME else "cp437")
        if 0xFFFFFFFF in (compressed, size, offset):
            extra = directory[name_at + name_length : name_at + name_length + extra_length]
            size, compressed, offset = _zip64_sizes(extra, size, compressed, offset)
        members[name] = Member(name, offset, method, compressed, size, crc)
        position = name_at + name_length + extra_length + comment_length
    if position != end or len(members) > count:
        raise Unusual("a directory that does not add up")
    return members


def _zip64_sizes(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The 8-byte values of the zip64 extra field, for those of the three that are 2**32-1
    (in that order, as zipfile reads them)."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        data = extra[position + 4 : position + 4 + length]
        if len(data) != length:
            raise Unusual("a damaged extra field")
        if kind == 1:
            values = [v for (v,) in struct.iter_unpack("<Q", data[: length // 8 * 8])]
            if size == 0xFFFFFFFF:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            return size, compressed, offset
        position += 4 + length
    raise Unusual("zip64 sizes without their extra field")


def data_offset(read_at: Callable[[int, int], bytes], member: Member) -> int:
    """Where a member's bytes begin: after its local header, whose name and extra field may
    differ in length from the directory's. `read_at(offset, count)` reads the archive.
    Raises Unusual for a damaged local header."""
    header = read_at(member.header_offset, _LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise Unusual(f"a bad local header for {member.filename}")
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    return member.header_offset + _LOCAL.size + name_length + extra_length


# -- kept for the file as it is ---------------------------------------------------------------

_KEPT = 2  # files whose directories are kept
_kept: OrderedDict[tuple[str, int, int], dict[str, Member]] = OrderedDict()
_lock = threading.Lock()


def file_key(path: str, f: BinaryIO) -> tuple[str, int, int]:
    """What identifies the open file `f` of `path` as it is now: its real path, size and
    modification time (a file written again is read again)."""
    info = os.fstat(f.fileno())
    return os.path.realpath(path), info.st_size, info.st_mtime_ns


def directory_of(path: str, f: BinaryIO, keep: bool) -> dict[str, Member]:
    """The members of the zip file `path`, open as `f`: read, or the ones kept by the last
    read of the same file unchanged. `keep`: keep them for the next read (telling the kind
    of a file keeps them for the reader; the reader takes them, so an open file's
    directory is not held after it is read: a million members are 150 MB). Raises Unusual."""
    key = file_key(path, f)
    with _lock:
        found = _kept.pop(key, None)
        if found is not None:
            if keep:
                _kept[key] = found
            return found
    members = read_directory(f, key[1])
    if keep:
        with _lock:
            _kept[key] = members
            while len(_kept) > _KEPT:
                _kept.popitem(last=False)
    return members
