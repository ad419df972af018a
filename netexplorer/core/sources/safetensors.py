"""`.safetensors` files, read without torch.

The header (8-byte little-endian length, then JSON) is parsed and validated here, so opening a
file and `--summary` cost as much as reading the header: no torch import (about 1.4 s), no
tensor data. Values come from a read-only memory map of the file, sliced per tensor when a
tensor is first shown. The file is never written: the map is opened read-only, and the
writable map handed to models built from code is copy-on-write.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Hashable, Iterator
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import SourceError
from ..handles import ITEMSIZE, TensorHandle, decode_raw, element_count, raw_view_dtype
from ..limits import MAX_SIZE, MAX_TENSORS, count_text
from ..order import in_display_order, natural_key  # noqa: F401 - natural_key for hf_folder
from ..text import first_line

if TYPE_CHECKING:  # numpy loads when values are first read, not to list a file's tensors
    import numpy as np
from ..torch_import import import_torch
from ..tree import ModuleTree, tree_from_entries
from .base import OpenOptions
from .files import MAX_SAFETENSORS_HEADER, check_file, extension, open_regular, sniff
from .mapped import MappedFile

# safetensors dtype codes -> the names torch and netexplorer use
DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
    "C64": "complex64",
}
# Formats the library knows whose values netexplorer cannot decode (sub-byte floats): shown
# with shape and dtype, without values.
UNDECODED = {"F4": "float4_e2m1fn_x2", "F6_E2M3": "float6_e2m3", "F6_E3M2": "float6_e3m2"}
UNDECODED.update({"E8M0": "float8_e8m0fnu", "F8_E8M0": "float8_e8m0fnu"})


class Header(NamedTuple):
    """A validated safetensors header."""

    path: str
    entries: list[SafetensorsHandle]  # every tensor, in the header's order
    metadata: dict[str, Any]  # the file's `__metadata__`
    data_start: int  # absolute offset of the data section
    file_size: int
    # whether two tensors could be one: the format cannot store aliases, but a hand-written
    # header can point two names at one byte range (see _may_share_bytes)
    may_share: bool = True


def read_header(path: str, names_checked: bool = True) -> Header:
    """Parse and validate the header of the safetensors file at `path`, reading nothing else.

    Raises SourceError, naming the file and the problem, for anything that does not add up:
    a length past the end of the file, invalid JSON, unknown dtypes, offsets outside the
    data, or a shape that does not fit its byte range. `names_checked=False`: the caller
    checks that no name repeats and none is `__metadata__` (its tree of the entries does,
    at no cost) and reads the header again, checked, if one does."""
    size = check_file(path)
    if size < 8:
        raise _invalid(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    try:
        with open_regular(path) as f:
            length = int.from_bytes(f.read(8), "little")
            if length > size - 8:
                raise _invalid(
                    path,
                    f"the header claims {length:,} bytes but the file has only {size - 8:,} "
                    "after the length; the file is truncated",
                )
            if length > MAX_SAFETENSORS_HEADER:
                raise _invalid(path, f"the header claims {length:,} bytes, more than 100 MB")
            raw = f.read(length)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    # counted before parsing: a million entries cost seconds and hundreds of MB to parse
    count = raw.count(b'"data_offsets"')
    if count > MAX_TENSORS:
        raise SourceError(
            f"cannot open {path}: its header lists {count:,} tensors, more than the "
            f"{MAX_TENSORS:,} netexplorer opens (each is a tree node, a line and statistics); "
            "split it into smaller files to explore it"
        )
    data_start = 8 + length
    data_size = size - data_start
    file = MappedFile(path, data_start, size)
    try:
        written = _read_as_written(file, raw, data_size, names_checked)
        if written is not None:
            entries, metadata, out_of_order = written
            may_share = out_of_order and _may_share_bytes(entries)
            return Header(path, entries, metadata, data_start, size, may_share)
        header = _parse_in_pieces(raw)
        if header is None:  # small, or not in pieces as written: the one call says why
            header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"the header is not valid JSON ({first_line(exc)})") from None
    except RecursionError:
        raise _invalid(path, "the header JSON is nested too deeply") from None
    except ValueError:  # int() of more digits than Python converts
        digits = sys.get_int_max_str_digits()
        raise _invalid(path, f"the header holds a number of more than {digits:,} digits") from None
    if not isinstance(header, dict):
        raise _invalid(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _invalid(path, "__metadata__ is not a JSON object")
    entries = _entries(file, header, data_size)
    return Header(path, entries, metadata, data_start, size, _may_share_bytes(entries))


PIECE_BYTES = 4 << 20  # a header larger than two of these is parsed a piece at a time
_BETWEEN_ENTRIES = b'},"'  # an entry's object closed, the next key opened


def _parse_in_pieces(raw: bytes) -> dict[str, Any] | None:
    """The header of a large file parsed in pieces of about PIECE_BYTES, or None (small, or
    anything unexpected: the caller parses it whole, which reports what is wrong).

    `json.loads` is one C call that holds the GIL: a million tensors' 100 MB header held it
    for about a second while a worker parsed it, and the window stood still. Between two
    pieces other threads run. A piece ends after an entry (`},"` cannot be inside a JSON
    string, where every quote is escaped); a cut inside a nested object leaves one piece
    with a brace too few and the next with one too many, which fails to parse, and then the
    whole header is parsed at once. Later pieces update earlier ones, as `json.loads` keeps
    the last of repeated keys."""
    last = len(raw) - 1  # the closing brace, before the spaces writers pad with (not
    while last > 0 and raw[last] == 0x20:  # rstrip: a copy of the whole header)
        last -= 1
    if len(raw) <= 2 * PIECE_BYTES or not raw.startswith(b"{") or raw[last : last + 1] != b"}":
        return None
    header: dict[str, Any] = {}
    start = 1  # after the opening brace
    try:
        while start < last:
            cut = raw.find(_BETWEEN_ENTRIES, start + PIECE_BYTES, last)
            end = last if cut < 0 else cut + 1  # the piece keeps its entry's closing brace
            # decoded as the whole header is (UTF-8 only); a cut at an ASCII byte never
            # splits a character
            piece = json.loads((b"{" + raw[start:end] + b"}").decode("utf-8"))
            if type(piece) is not dict:
                return None
            header.update(piece)
            start = end + 1  # past the comma
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return header


# bytes per element of each dtype code netexplorer reads values of
_CODE_ITEMSIZES = {code: ITEMSIZE[dtype] for code, dtype in DTYPES.items()}

# One tensor as the safetensors library writes it (serde_json, compact, fields in this order):
# its name (no quote, backslash or control character here: an escaped name is read by
# `json`), its dtype and shape as one group (they repeat together: checked once per kind, by
# _Kinds), its first and last offset (counts without a leading zero, which JSON forbids).
# Simple classes: 40% faster than counts spelled out in full.
_TENSOR = (
    r'"([^"\\\x00-\x1f]*)":\{"dtype":"([^"]*","shape":\[[^\]]*)\],'
    r'"data_offsets":\[((?!0[0-9])[0-9]+),((?!0[0-9])[0-9]+)\]\}'
)
_FIRST_TENSOR = re.compile(_TENSOR)  # right after the opening brace
_AS_WRITTEN = re.compile("," + _TENSOR)  # every other one, after a comma
# the fixed text of a tensor after its comma, but its groups
_AS_WRITTEN_FIXED = len(',"":{"dtype":"],"data_offsets":[,]}')
# a dtype code and the counts of a shape, as JSON writes them (no leading zero)
_COUNT = r"(?:0|[1-9][0-9]*)"
_KIND = re.compile(r'([A-Z0-9_]+)","shape":\[((?:' + _COUNT + r"(?:," + _COUNT + r")*)?)")
WRITTEN_PIECE_CHARACTERS = 1 << 17  # 128 k: its matches stay in the cache (7 ms of 60 faster)
_METADATA_FIRST = '{"__metadata__":'


class _Kinds(dict):
    """`F32","shape":[4,4` (a dtype and shape as written) -> (dtype, shape, bytes a tensor
    of them takes), or None for anything else: a dtype without values, a shape past
    MAX_SIZE elements, text that is not a dtype code and counts."""

    def __missing__(self, text: str) -> tuple[str, tuple[int, ...], int] | None:
        kind = None
        found = _KIND.fullmatch(text)
        if found is not None:
            code, dims = found.group(1), found.group(2)
            shape = tuple(map(int, dims.split(","))) if dims else ()
            numel = element_count(shape, MAX_SIZE)
            itemsize = _CODE_ITEMSIZES.get(code)
            if numel is not None and itemsize is not None:
                kind = (DTYPES[code], shape, numel * itemsize)
        self[text] = kind
        return kind


def _read_as_written(
    file: MappedFile, raw: bytes, data_size: int, names_checked: bool = True
) -> tuple[list[SafetensorsHandle], dict[str, Any], bool] | None:
    """The entries and metadata of a header as the safetensors library writes it, and
    whether their bytes lie out of order (they could then share some), read with one
    regular expression (C speed) instead of `json.loads` and a loop over its dicts: a
    50,000-tensor header in two thirds of the time. None for anything else (spaces, escaped
    names, fields in another order, a name met twice unless `names_checked` is False):
    `json` then reads it and says what is wrong. Exact, not a guess: the matches must tile
    the header, each entry's text is its groups and the fixed text around them, so nothing
    between entries goes unread.

    Read a piece of about WRITTEN_PIECE_CHARACTERS at a time (pieces end before an entry's
    comma, at a `},"`; a name ending in `},` holds one too, and a cut there fails to tile:
    json reads that header), so other threads run between pieces. A tensor that is not
    the common case (a dtype without values, an offset past the data) sends the header to
    the JSON path as well, which accepts it or says what is wrong (its first problem, as
    always)."""
    try:
        text = raw.decode("utf-8")  # as json.loads would (names come out as text)
    except UnicodeDecodeError:
        return None
    last = len(text) - 1  # the closing brace, before the spaces writers pad with
    while last > 0 and text[last] == " ":
        last -= 1
    if not text.startswith("{") or text[last] != "}":
        return None
    metadata: Any = {}
    if text.startswith(_METADATA_FIRST):  # JSON of its own: a string in it may hold anything
        try:
            metadata, start = json.JSONDecoder().raw_decode(text, len(_METADATA_FIRST))
        except ValueError:
            return None
        if type(metadata) is not dict or start > last or text[start] not in ",}":
            return None  # start: at the comma before the first tensor (or the closing brace)
        head: list[tuple[str, ...]] = []
    else:  # the first tensor right after the brace
        match = _FIRST_TENSOR.match(text, 1, last)
        if match is None:
            return None
        start, head = match.end(), [match.groups()]
    entries: list[SafetensorsHandle] = []
    append = entries.append
    kinds = _Kinds()  # dtypes and shapes repeat: one tuple for all tensors of a shape
    at = 0  # where the data of the next tensor begins, if they lie one after another
    in_order = True
    try:
        for found in chain([head], _pieces_as_written(text, start, last)):
            for name, kind_text, first, after in found:
                kind = kinds[kind_text]
                begin, end = int(first), int(after)
                if begin != at:
                    in_order = False
                at = end
                if kind is None or not begin <= end <= data_size or kind[2] != end - begin:
                    return None  # `_entries` accepts it (a dtype without values) or says why not
                append(SafetensorsHandle(file, name, kind[0], kind[1], begin, end))
    except _NotAsWritten:  # something between or inside entries that is not as written
        return None  # json says what
    if names_checked and not _names_as_json_reads_them(entries):
        return None  # json reads them: the last of a repeated name, at the first one's place
    # tensors whose bytes lie one after another, as the library writes them, share none
    return entries, metadata, not in_order


def _names_as_json_reads_them(entries: list[SafetensorsHandle]) -> bool:
    """No name repeats, and none is `__metadata__` (where json would take the last one
    met as the metadata)."""
    names = set(map(_NAME, entries))
    return len(names) == len(entries) and "__metadata__" not in names


class _NotAsWritten(Exception):
    """A header's text is not what the safetensors library writes: json reads it."""


def _pieces_as_written(text: str, start: int, last: int) -> Iterator[list[tuple[str, ...]]]:
    """The groups of every tensor in text[start:last] (each after its comma), a piece of
    about WRITTEN_PIECE_CHARACTERS at a time. Raises _NotAsWritten unless the matches tile
    each piece: every character is a match's group or fixed text."""
    while start < last:
        cut = text.find('},"', start + WRITTEN_PIECE_CHARACTERS, last)
        end = last if cut < 0 else cut + 1
        found = _AS_WRITTEN.findall(text, start, end)
        if sum(map(len, chain.from_iterable(found))) + _AS_WRITTEN_FIXED * len(found) != (
            end - start
        ):
            raise _NotAsWritten
        yield found
        start = end


def _entries(file: MappedFile, header: dict[str, Any], data_size: int) -> list[SafetensorsHandle]:
    """Every tensor of a header, validated. The common entry is checked in one tight
    loop (a dtype numpy reads, a shape of counts, offsets inside the data that span exactly
    its bytes); anything else goes through `_entry`, which accepts it or says what is
    wrong with it. Elements are counted with a bound (`element_count`): a product of 100,000
    dimensions of 2**62 made refusing a 2 MB header take 29 s."""
    entries = []
    append = entries.append
    itemsizes = _CODE_ITEMSIZES
    for name, info in header.items():
        if type(info) is dict:
            code = info.get("dtype")
            shape = info.get("shape")
            offsets = info.get("data_offsets")
            if (
                type(code) is str
                and code in itemsizes
                and type(shape) is list
                and type(offsets) is list
                and len(offsets) == 2
            ):
                begin, end = offsets
                if type(begin) is int and type(end) is int and 0 <= begin <= end <= data_size:
                    span = end - begin
                    numel = element_count(shape, span)
                    if numel is not None and numel * itemsizes[code] == span:
                        append(
                            SafetensorsHandle(file, name, DTYPES[code], tuple(shape), begin, end)
                        )
                        continue
        append(_entry(file, name, info, data_size))
    return entries


def _entry(file: MappedFile, name: str, info: Any, data_size: int) -> SafetensorsHandle:
    path = file.path
    if not isinstance(info, dict):
        raise _invalid(path, f"tensor {_short(name)} is not described by a JSON object")
    code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(code, str) or (code not in DTYPES and code not in UNDECODED):
        raise _invalid(path, f"tensor {_short(name)} has an unknown dtype {code!r}")
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        raise _invalid(path, f"tensor {_short(name)} has an invalid shape {_short(shape)}")
    too_big = next((n for n in shape if n > MAX_SIZE), None)
    if too_big is not None:
        raise _invalid(
            path,
            f"tensor {_short(name)} has a dimension of {count_text(too_big)}, more than any "
            "tensor holds",
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _invalid(path, f"tensor {_short(name)} has invalid data_offsets {_short(offsets)}")
    begin, end = offsets
    if end > data_size:
        raise _invalid(
            path,
            f"tensor {_short(name)} ends at byte {count_text(end)} of the data but the file "
            f"holds only {data_size:,}; the file is truncated",
        )
    dtype = DTYPES.get(code) or UNDECODED[code]
    itemsize = ITEMSIZE.get(dtype)
    numel = element_count(shape, MAX_SIZE)  # None: multiplied only as far as 2**63
    if numel is None or numel * (itemsize or 1) > MAX_SIZE:
        count = "more than 2**63" if numel is None else count_text(numel)
        raise _invalid(
            path,
            f"tensor {_short(name)} of shape {_short(shape)} has {count} elements, "
            "more than any tensor holds",
        )
    if itemsize is not None and numel * itemsize != end - begin:
        raise _invalid(
            path,
            f"tensor {_short(name)} of shape {_short(shape)} and dtype {code} needs "
            f"{numel * itemsize:,} bytes but its data_offsets span {end - begin:,}",
        )
    return SafetensorsHandle(file, name, dtype, tuple(shape), begin, end)


def _short(value: Any) -> str:
    """A name or value of the header for a message: its repr, at most 80 characters (a shape
    may list 1,000 numbers, a name may be a megabyte)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _invalid(path: str, problem: str) -> SourceError:
    return SourceError(
        f"cannot open {path}: not a valid safetensors file: {problem}; save or download it again"
    )


class SafetensorsHandle(TensorHandle):
    """A tensor of a safetensors file, as its header describes it (its name, dtype, shape
    and byte range in the data section): values read from the map when first asked for.
    (The header's entries are these handles: one object per tensor, a million of them.)"""

    __slots__ = ("begin", "dtype", "end", "file", "name", "shape")

    def __init__(
        self, file: MappedFile, name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int
    ) -> None:
        self.file = file
        self.name = name  # the key in the header
        self.dtype = dtype  # netexplorer's name (`bfloat16`), not the file's code (`BF16`)
        self.shape = shape
        self.begin = begin  # offsets in the data section
        self.end = end

    @property
    def no_values_reason(self) -> str | None:
        if self.dtype not in ITEMSIZE:
            return f"netexplorer cannot decode {self.dtype} values"
        return super().no_values_reason

    def raw_array(self, writable: bool = False) -> np.ndarray:
        """The stored values without decoding (bfloat16 as uint16, float8 as uint8)."""
        import numpy as np

        self.check_values()
        view = raw_view_dtype(self.dtype)
        if self.begin == self.end:
            return np.zeros(self.shape, dtype=view)
        raw = self.file.bytes(self.begin, self.end, writable)
        return raw.view(view.newbyteorder("<")).reshape(self.shape)

    def array(self) -> np.ndarray:
        raw = self.raw_array()
        if self.dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            return decode_raw(raw, self.dtype)
        return raw

    def torch_tensor(self) -> Any:
        """The values as a torch tensor of the stored dtype, backed by a copy-on-write map
        (writable, as loading into a live model needs; the file is never written)."""
        import numpy as np

        torch = import_torch()

        raw = self.raw_array(writable=True)
        if raw.dtype.byteorder == ">":  # only on big-endian machines
            raw = raw.byteswap().view(raw.dtype.newbyteorder("="))
        if self.dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            signed = np.int16 if self.dtype == "bfloat16" else np.int8
            return torch.from_numpy(raw.view(signed)).view(getattr(torch, self.dtype))
        return torch.from_numpy(raw)

    def storage_key(self) -> Hashable | None:
        # the format cannot store aliases, but a hand-written header could point two names
        # at one byte range: that is a tie
        if self.begin == self.end:
            return None
        return ("safetensors", self.file.path, self.begin, self.end, self.dtype, self.shape)


def handles_of(header: Header, display_order: bool = True) -> dict[str, SafetensorsHandle]:
    """Every tensor of a parsed header by name, in display order (order.py), or in the
    header's order."""
    by_name = {e.name: e for e in header.entries}
    if not display_order:
        return by_name
    return {name: by_name[name] for name in in_display_order(list(by_name))}


class SafetensorsReader:
    name = "safetensors"
    title = "safetensors"
    file_patterns = ("*.safetensors",)

    def can_read(self, spec: str) -> bool:
        kind = sniff(spec)
        if kind is not None:
            return kind == "safetensors"
        return extension(spec) == ".safetensors" and not os.path.isdir(spec)

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        options.report(0.0, f"reading the header of {spec}")
        header = read_header(spec, names_checked=False)  # the tree checks them
        tree = self._tree(spec, header, options)
        if len(tree.tensors) != len(header.entries) or "__metadata__" in tree.tensors:
            # a name repeats (the tree holds it once) or is the metadata's: as json reads it
            tree = self._tree(spec, read_header(spec), options)
        return tree

    def _tree(self, spec: str, header: Header, options: OpenOptions) -> ModuleTree:
        options.report(0.2, f"read the header: {len(header.entries):,} tensors")
        metadata: dict[str, Any] = {"format": "safetensors", "file_size": header.file_size}
        if header.metadata:
            metadata["safetensors"] = header.metadata
        return tree_from_entries(
            zip(map(_NAME, header.entries), header.entries, strict=True),  # sorted there
            count=len(header.entries),
            source=spec,
            reader=self.name,
            metadata=metadata,
            natural_order=True,
            progress=lambda done, text: options.report(0.2 + 0.8 * done, text),
            ties=header.may_share,
        )


_NAME = attrgetter("name")


def _may_share_bytes(entries: list[SafetensorsHandle]) -> bool:
    """Whether two tensors of a header could be one (the format cannot store aliases, but a
    hand-written header can point two names at one byte range): only if two non-empty byte
    ranges begin at the same offset (one set of the offsets: no storage key per tensor)."""
    begins = [e.begin for e in entries if e.begin != e.end]
    return len(set(begins)) != len(begins)
