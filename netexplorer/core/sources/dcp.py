"""PyTorch Distributed Checkpoint folders (`torch.distributed.checkpoint.save`, FSDP): a
`.metadata` file and one or more `__<rank>_<n>.distcp` shard files per rank.

`.metadata` is a pickle of `torch.distributed.checkpoint.metadata.Metadata`: for every key of
the saved (flattened) state dict, a TensorStorageMetadata (dtype, full size, and the chunks
the ranks saved: offsets and sizes in the full tensor) or a BytesStorageMetadata (any other
object, saved with `torch.save` into bytes); `storage_data` says which file, byte offset and
length hold each chunk; `planner_data` maps each flattened key to its path in the nested
state dict (`("optim", "state", "0.weight", "exp_avg")`).

Opening reads `.metadata` alone, in one process, without torch and without a process group:
a restricted unpickler knows exactly the metadata's classes (as netexplorer's own stand-ins,
filled with their fields: nothing of the file's choosing is called) and a few plain values
(`torch.Size`, dtypes, layouts, paths); any other global is refused with an
UntrustedPickleError naming it, and only `--trust` unpickles such a file fully. It is
Python's pure-Python unpickler, whose memo is a dict: a crafted pickle cannot make it
allocate by naming a huge memo index.

Each chunk is a `torch.save` archive at its offset in its shard file. A tensor is assembled
only when it is shown: each chunk is read by the torch zip reader of torch_zip.py over that
byte range of a read-only memory map (no torch), else by `torch.load(weights_only=True)` of
those bytes, and copied into the full tensor at its offsets. Objects that are not tensors are
pickles of anything; they are listed in the metadata and read only with trust.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import stat
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from ..errors import SourceError, UntrustedPickleError
from ..handles import TensorHandle, TorchHandle, raw_view_dtype
from ..text import first_line
from ..tree import ModuleTree, tree_from_entries
from .base import OpenOptions
from .files import check_file
from .mapped import MappedFile
from .metadata import json_safe
from .torch_file import untrusted_message
from .torch_zip import NotPlain, StoredTensor, read_plain_zip

if TYPE_CHECKING:  # numpy loads when values are first read, not to list the checkpoint
    import numpy as np

METADATA_NAME = ".metadata"
SHARD_SUFFIX = ".distcp"
MAX_METADATA_BYTES = 1 << 30  # larger .metadata files are refused, not read into memory
LIMIT = 1 << 63  # sizes, offsets and lengths fit torch's int64
MAX_PAIRWISE = 1024  # chunks of one tensor checked pair by pair for overlaps
FORMAT_NAME = "PyTorch Distributed Checkpoint"
_RANK_FILE = re.compile(r"__(\d+)_(\d+)\.distcp")  # FileSystemWriter: __<rank>_<file>.distcp


# -- what the reader hands out ---------------------------------------------------------------


@dataclass(frozen=True)
class ShardChunk:
    """One piece of a tensor of a distributed checkpoint: where it lies in the full tensor,
    and which bytes of which shard file hold it (a `torch.save` archive of the piece)."""

    offsets: tuple[int, ...]  # index of its first element in the full tensor, per dimension
    sizes: tuple[int, ...]
    file: str | None  # shard file, relative to the folder; None if the metadata names none
    rank: int | None  # the rank that wrote it (from the file name), None if unknown
    byte_offset: int
    byte_length: int

    @property
    def numel(self) -> int:
        return math.prod(self.sizes)

    def as_dict(self) -> dict[str, Any]:
        """The JSON description's `shards` entry."""
        return {
            "offsets": list(self.offsets),
            "sizes": list(self.sizes),
            "file": self.file,
            "rank": self.rank,
            "byte_offset": self.byte_offset,
            "byte_length": self.byte_length,
        }


class DistributedTensorHandle(TensorHandle):
    """A tensor of a distributed checkpoint: shape, dtype and chunk layout from the metadata;
    values assembled from the shard files when first asked for."""

    def __init__(
        self,
        folder: str,
        fqn: str,
        shape: tuple[int, ...],
        dtype: str,
        chunks: tuple[ShardChunk, ...],
        trust: bool = False,
    ) -> None:
        self.folder = folder
        self.fqn = fqn
        self.shape = shape
        self.dtype = dtype
        self.chunks = chunks
        self._trust = trust

    def storage_key(self) -> Hashable | None:
        return None  # every key of a distributed checkpoint is saved on its own

    def array(self) -> np.ndarray:
        """The full tensor, assembled from its chunks. Raises SourceError naming the shard
        file when one is missing or damaged."""
        import numpy as np

        checked = self._check_layout()
        pieces = [c for c in self.chunks if c.numel]
        if len(pieces) == 1 and pieces[0].sizes == self.shape:
            return self._chunk_values(pieces[0])  # one chunk is the whole tensor: no copy
        out: np.ndarray | None = None
        for chunk in pieces:
            values = self._chunk_values(chunk)
            if out is None:  # unchecked layouts start from zeros: nothing unset is shown
                out = (np.empty if checked else np.zeros)(self.shape, dtype=values.dtype)
            where = tuple(slice(o, o + n) for o, n in zip(chunk.offsets, chunk.sizes, strict=True))
            out[where] = values
        if out is None:  # no elements at all
            view = raw_view_dtype(self.dtype)
            decoded = view is None or self.dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2")
            out = np.zeros(self.shape, dtype=np.float32 if decoded else view)
        out.flags.writeable = False
        return out

    def _check_layout(self) -> bool:
        """That the chunks tile the tensor: each inside it, together as many elements as
        the tensor, and (checked for up to MAX_PAIRWISE chunks: the test is quadratic) none
        overlapping, so none is left unset. Whether the overlap was checked."""
        import numpy as np

        covered = 0
        for c in self.chunks:
            if len(c.offsets) != len(self.shape) or any(
                o + n > s for o, n, s in zip(c.offsets, c.sizes, self.shape, strict=True)
            ):
                raise self._damaged(f"a chunk at {list(c.offsets)} reaches outside the tensor")
            covered += c.numel
        if covered != math.prod(self.shape):
            raise self._damaged(
                f"its chunks hold {covered:,} of its {math.prod(self.shape):,} elements"
            )
        boxes = [c for c in self.chunks if c.numel]
        if len(boxes) > MAX_PAIRWISE:
            return False
        if len(boxes) > 1 and self.shape:
            low = np.array([c.offsets for c in boxes], dtype=np.int64)
            high = low + np.array([c.sizes for c in boxes], dtype=np.int64)
            overlap = np.all(
                (low[:, None, :] < high[None, :, :]) & (low[None, :, :] < high[:, None, :]), -1
            )
            np.fill_diagonal(overlap, False)
            if overlap.any():
                raise self._damaged("two of its chunks overlap")
        return True

    def _damaged(self, problem: str) -> SourceError:
        return SourceError(
            f"{self.fqn} of {self.folder}: {problem}; the checkpoint's .metadata is damaged, "
            "copy it again"
        )

    def _chunk_values(self, chunk: ShardChunk) -> np.ndarray:
        """The values of one chunk, checked against the shape the metadata gives it."""
        if chunk.file is None:
            raise self._damaged(f"no shard file is named for its chunk at {list(chunk.offsets)}")
        path = os.path.join(self.folder, chunk.file)
        size = _shard_size(self.folder, chunk.file)
        end = chunk.byte_offset + chunk.byte_length
        if end > size:
            raise SourceError(
                f"shard file {chunk.file} of {self.folder} has {size:,} bytes, but {self.fqn} "
                f"needs bytes {chunk.byte_offset:,} to {end:,}; the file is truncated, copy it "
                "again"
            )
        window = (chunk.byte_offset, chunk.byte_length)
        try:
            stored = read_plain_zip(path, size, window)
            if not isinstance(stored, StoredTensor):
                raise NotPlain("not a tensor")
            values, dtype = stored.handle().array(), stored.dtype
        except NotPlain:
            values, dtype = self._torch_load(path, size, window)
        if tuple(values.shape) != chunk.sizes or dtype != self.dtype:
            raise SourceError(
                f"shard file {chunk.file} of {self.folder} holds a {dtype} piece of shape "
                f"{list(values.shape)} where the metadata of {self.fqn} says {self.dtype} "
                f"{list(chunk.sizes)}; the checkpoint is damaged, copy it again"
            )
        return values

    def _torch_load(self, path: str, size: int, window: tuple[int, int]) -> tuple[np.ndarray, str]:
        """What the zip reader could not read (an unusual tensor, a damaged chunk), by torch
        as DCP itself loads it: `torch.load(weights_only=True)` of those bytes."""
        name = os.path.relpath(path, self.folder)
        try:
            value = load_bytes(path, size, window, self._trust)
        except UntrustedPickleError:
            raise
        except SourceError as exc:
            raise SourceError(
                f"shard file {name} of {self.folder} is damaged where {self.fqn} is saved "
                f"(bytes {window[0]:,} to {window[0] + window[1]:,}: {exc}); copy it again"
            ) from None
        import torch

        if not isinstance(value, torch.Tensor):
            raise SourceError(
                f"shard file {name} of {self.folder} holds a {type(value).__name__} where "
                f"{self.fqn} should be; the checkpoint is damaged, copy it again"
            )
        handle = TorchHandle(value, snapshot=False)
        return handle.array(), handle.dtype


def load_bytes(path: str, size: int, window: tuple[int, int], trust: bool) -> Any:
    """`torch.load` of bytes [begin, begin + length) of `path` (one saved chunk or object),
    weights only unless trusted. Raises UntrustedPickleError, or SourceError with torch's
    reason."""
    import torch

    begin, length = window
    data = MappedFile(path, 0, size).bytes(begin, begin + length)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        needed = tuple(dict.fromkeys(re.findall(r"GLOBAL ([\w.]+)", str(exc))))
        if needed and not trust:
            raise UntrustedPickleError(
                untrusted_message(path, f"needs code to load ({', '.join(needed)})"),
                globals_needed=needed,
            ) from None
        raise SourceError(_torch_reason(exc)) from None
    except (Exception, SystemExit) as exc:
        raise SourceError(_torch_reason(exc)) from None


def _torch_reason(exc: BaseException) -> str:
    """torch.load's reason in a few words: its weights-only refusals start with a paragraph
    of advice, the reason is on the line that says what is unsupported."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "")
    detail = detail.removeprefix("WeightsUnpickler error: ")
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _shard_size(folder: str, name: str) -> int:
    path = os.path.join(folder, name)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceError(
            f"shard file {name} of {folder} is missing; copy every .distcp file saved with "
            "the checkpoint into the folder"
        ) from None
    except OSError as exc:
        raise SourceError(f"cannot read shard file {name} of {folder}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"shard file {name} of {folder} is not a regular file; copy it again")
    return info.st_size


# -- the restricted unpickler of .metadata ----------------------------------------------------


class _Refused(Exception):
    """The pickle names a global outside the allow-list."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Record:
    """A stand-in for one of DCP's metadata dataclasses: NEWOBJ makes it empty, BUILD fills
    its fields. It holds data only; nothing of the file's choosing is called on it."""

    kind: ClassVar[str] = ""
    positional: ClassVar[tuple[str, ...]] = ()  # field names of a tuple state, in order
    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}


def _record(kind: str, positional: tuple[str, ...] = ()) -> type[_Record]:
    return type(kind, (_Record,), {"kind": kind, "positional": positional, "__slots__": ()})


_PROPERTIES = ("dtype", "layout", "requires_grad", "memory_format", "pin_memory")
_RECORDS: dict[str, type[_Record]] = {
    name: _record(name, _PROPERTIES if name == "TensorProperties" else ())
    for name in (
        "Metadata",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "TensorProperties",
        "MetadataIndex",
        "StorageMeta",
        "_StorageInfo",
    )
}


@dataclass(frozen=True)
class _DType:
    name: str


def _size(dims: Any = ()) -> tuple[int, ...]:
    """torch.Size(dims)."""
    if not isinstance(dims, (tuple, list)) or not all(_is_count(d) for d in dims):
        raise SourceError("a torch.Size that is not a list of sizes")
    return tuple(dims)


def _layout(name: Any) -> str:
    """torch.serialization._get_layout("torch.strided")."""
    if not isinstance(name, str):
        raise SourceError("a layout that is not named")
    return name


def _memory_format(code: Any) -> int:
    """_MEM_FORMAT_ENCODING(code)."""
    if not _is_count(code):
        raise SourceError("a memory format that is not a number")
    return code


def _path(*parts: Any) -> str:
    """pathlib.PosixPath(*parts), as plain text (the checkpoint_id it was saved to)."""
    if not all(isinstance(p, str) for p in parts):
        raise SourceError("a path made of something other than text")
    return "/".join(parts)


def _ordered_dict(*args: Any) -> dict:
    if args:
        raise SourceError("an OrderedDict made with arguments")
    return {}


_METADATA_MODULES = (
    "torch.distributed.checkpoint.metadata",
    "torch.distributed._shard.sharded_tensor.metadata",  # TensorProperties' home before 2.3
)
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"): _RECORDS["_StorageInfo"],
    ("torch", "Size"): _size,
    ("torch.serialization", "_get_layout"): _layout,
    ("collections", "OrderedDict"): _ordered_dict,
}
for _module in _METADATA_MODULES:
    _ALLOWED.update({(_module, name): cls for name, cls in _RECORDS.items()})
    _ALLOWED[(_module, "_MEM_FORMAT_ENCODING")] = _memory_format
    _ALLOWED[(_module, "MEM_FORMAT_ENCODING")] = _memory_format
for _kind in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"):
    _ALLOWED[("pathlib", _kind)] = _path
_DTYPE_NAMES = (
    *("float64", "float32", "float16", "bfloat16", "complex32", "complex64", "complex128"),
    *("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool"),
    *("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"),
    *("float4_e2m1fn_x2", "qint8", "quint8", "qint32", "quint4x2", "quint2x4"),
)
_ALLOWED.update({("torch", name): _DType(name) for name in _DTYPE_NAMES})
_CALLABLES = {id(v) for v in _ALLOWED.values() if callable(v) and not isinstance(v, type)}


def _refuse(unpickler: _MetadataUnpickler) -> NoReturn:
    raise SourceError("an opcode that makes objects of arbitrary classes")


def _reduce(unpickler: _MetadataUnpickler) -> None:
    """REDUCE: call one of the allow-list's plain functions, nothing else."""
    stack = unpickler.stack
    args = stack.pop()
    func = stack[-1]
    if id(func) not in _CALLABLES or not isinstance(args, tuple):
        raise SourceError("a call of something other than the metadata's plain values")
    stack[-1] = func(*args)


def _newobj(unpickler: _MetadataUnpickler) -> None:
    """NEWOBJ: an empty stand-in of one of the metadata's dataclasses."""
    stack = unpickler.stack
    args = stack.pop()
    cls = stack.pop()
    if not (isinstance(cls, type) and issubclass(cls, _Record)) or args != ():
        raise SourceError("an object of a class that is not part of the metadata")
    stack.append(cls())


def _build(unpickler: _MetadataUnpickler) -> None:
    """BUILD: fill a stand-in with its fields (a dict, or TensorProperties' tuple)."""
    stack = unpickler.stack
    state = stack.pop()
    target = stack[-1]
    if not isinstance(target, _Record):
        raise SourceError("BUILD of something other than the metadata's records")
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | None):
        state = {**(state[0] or {}), **(state[1] or {})}  # (dict, slot state)
    if isinstance(state, tuple) and target.positional:
        state = dict(zip(target.positional, state, strict=False))
    if not isinstance(state, dict) or not all(type(k) is str for k in state):
        raise SourceError(f"the fields of a {target.kind} are not named")
    target.fields.update(state)


def _dispatch() -> dict[int, Callable[..., Any]]:
    table = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    refused = (pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2, pickle.EXT4)
    for opcode in refused:
        table[opcode[0]] = _refuse
    table[pickle.REDUCE[0]] = _reduce
    table[pickle.NEWOBJ[0]] = _newobj
    table[pickle.BUILD[0]] = _build
    return table


class _MetadataUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Resolves only the allow-list; every global a pickle names goes through find_class."""

    dispatch: ClassVar[dict[int, Callable[..., Any]]] = _dispatch()

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> NoReturn:
        raise SourceError("a persistent id, which DCP metadata never holds")


# -- .metadata to plain, checked data ---------------------------------------------------------


@dataclass(frozen=True)
class _TensorItem:
    fqn: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[ShardChunk, ...]


@dataclass(frozen=True)
class _ObjectItem:
    fqn: str
    chunk: ShardChunk  # where its bytes are (offsets and sizes empty)


@dataclass
class _Layout:
    """What `.metadata` says, checked: every item, its path in the nested state dict, and
    the shard files named."""

    items: list[_TensorItem | _ObjectItem]
    paths: dict[str, tuple[str, ...]]
    files: list[str]
    version: str | None
    save_id: str | None


def read_layout(folder: str, trust: bool = False) -> _Layout:
    """The checked contents of `folder`'s `.metadata`. Raises UntrustedPickleError when the
    pickle names anything outside the allow-list (unless `trust`), SourceError when the file
    is missing, not a regular file or not DCP metadata."""
    path = os.path.join(folder, METADATA_NAME)
    size = check_file(path)  # refuses a FIFO or device before anything opens it
    if size > MAX_METADATA_BYTES:
        raise SourceError(f"cannot open {folder}: its .metadata has {size:,} bytes, over 1 GB")
    try:
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        metadata = _MetadataUnpickler(io.BytesIO(data)).load()
        return _checked(folder, metadata)
    except _Refused as refused:
        if not trust:
            raise UntrustedPickleError(
                untrusted_message(path, f"needs code to load ({refused.name})"),
                globals_needed=(refused.name,),
            ) from None
    except (SourceError, RecursionError) as exc:
        raise _invalid(folder, first_line(exc)) from None
    except Exception as exc:  # a damaged pickle: EOFError, UnpicklingError, KeyError, ...
        raise _invalid(folder, first_line(exc, with_type=True)) from None
    return _trusted_layout(folder, data)


def _trusted_layout(folder: str, data: bytes) -> _Layout:
    """A trusted `.metadata` that the allow-list does not cover (a custom planner's data):
    fully unpickled, as torch's FileSystemReader does, then read by the same checks."""
    try:
        import torch.distributed.checkpoint  # noqa: F401  the classes its pickle names

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metadata = pickle.loads(data)  # the user trusts the file
        return _checked(folder, metadata)
    except SourceError as exc:
        raise _invalid(folder, first_line(exc)) from None
    except (Exception, SystemExit) as exc:
        raise _invalid(folder, first_line(exc, with_type=True)) from None


def _invalid(folder: str, problem: str) -> SourceError:
    return SourceError(
        f"cannot open {folder}: its .metadata is not valid distributed checkpoint metadata "
        f"({problem}); copy it again"
    )


def _kind(obj: Any) -> str:
    return obj.kind if isinstance(obj, _Record) else type(obj).__name__


def _field(obj: Any, name: str) -> Any:
    """A field of a stand-in, or an attribute of the real object (a trusted load)."""
    if isinstance(obj, _Record):
        return obj.fields.get(name)
    return getattr(obj, name, None)


def _is_count(x: Any) -> bool:
    return type(x) is int and 0 <= x < LIMIT


def _counts(x: Any, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(_is_count(n) for n in x):
        raise SourceError(f"{what} is not a list of sizes")
    return tuple(x)


def _dtype_name(x: Any) -> str:
    name = x.name if isinstance(x, _DType) else str(x).removeprefix("torch.")
    if not name.isidentifier():
        raise SourceError("a tensor without a dtype")
    return name


def _checked(folder: str, metadata: Any) -> _Layout:
    """Plain, checked data from an unpickled Metadata (stand-ins, or torch's own objects)."""
    if _kind(metadata) != "Metadata":
        raise SourceError(f"it holds a {_kind(metadata)}, not a Metadata")
    entries = _field(metadata, "state_dict_metadata")
    if not isinstance(entries, dict):
        raise SourceError("no state_dict_metadata")
    where = _storage_index(_field(metadata, "storage_data"))
    files: dict[str, None] = {}

    def chunk(fqn: str, offsets: tuple[int, ...] | None, sizes: tuple[int, ...]) -> ShardChunk:
        info = where.get((fqn, offsets))
        if info is None:
            return ShardChunk(offsets or (), sizes, None, None, 0, 0)
        name, begin, length = info
        files[name] = None
        found = _RANK_FILE.fullmatch(os.path.basename(name))
        rank = int(found.group(1)) if found else None
        return ShardChunk(offsets or (), sizes, name, rank, begin, length)

    items: list[_TensorItem | _ObjectItem] = []
    for fqn, entry in entries.items():
        if not isinstance(fqn, str):
            raise SourceError("a key that is not text")
        kind = _kind(entry)
        if kind == "BytesStorageMetadata":
            items.append(_ObjectItem(fqn, chunk(fqn, None, ())))
            continue
        if kind != "TensorStorageMetadata":
            raise SourceError(f"{fqn!r} is described by a {kind}")
        shape = _counts(_field(entry, "size"), f"the size of {fqn!r}")
        dtype = _dtype_name(_field(_field(entry, "properties"), "dtype"))
        raw_chunks = _field(entry, "chunks")
        if not isinstance(raw_chunks, list):
            raise SourceError(f"{fqn!r} has no list of chunks")
        chunks = []
        for c in raw_chunks:
            if _kind(c) != "ChunkStorageMetadata":
                raise SourceError(f"a chunk of {fqn!r} is a {_kind(c)}")
            offsets = _counts(_field(c, "offsets"), f"the offsets of a chunk of {fqn!r}")
            sizes = _counts(_field(c, "sizes"), f"the sizes of a chunk of {fqn!r}")
            if len(offsets) != len(shape) or len(sizes) != len(shape):
                raise SourceError(f"a chunk of {fqn!r} has a different number of dimensions")
            chunks.append(chunk(fqn, offsets, sizes))
        items.append(_TensorItem(fqn, shape, dtype, tuple(chunks)))
    storage_meta = _field(metadata, "storage_meta")
    save_id = _field(storage_meta, "save_id") if storage_meta is not None else None
    version = _field(metadata, "version")
    return _Layout(
        items,
        _planner_paths(_field(metadata, "planner_data"), entries),
        list(files),
        version if isinstance(version, str) else None,
        save_id if isinstance(save_id, str) else None,
    )


def _storage_index(storage_data: Any) -> dict[tuple[str, Any], tuple[str, int, int]]:
    """(fqn, chunk offsets) -> (shard file, byte offset, length), from `storage_data`.
    Entries of another kind (a custom storage writer's) are left out: their tensors open,
    and say when shown that no file is named."""
    index: dict[tuple[str, Any], tuple[str, int, int]] = {}
    if not isinstance(storage_data, dict):
        return index
    for key, info in storage_data.items():
        if _kind(key) != "MetadataIndex" or _kind(info) != "_StorageInfo":
            continue
        fqn, offset = _field(key, "fqn"), _field(key, "offset")
        name, begin, length = (_field(info, n) for n in ("relative_path", "offset", "length"))
        if not isinstance(fqn, str) or not isinstance(name, str):
            raise SourceError("a storage entry without a key or file name")
        if not (_is_count(begin) and _is_count(length)):
            raise SourceError(f"the storage entry of {fqn!r} has no byte range")
        if os.path.isabs(name) or ".." in re.split(r"[\\/]", name):
            raise SourceError(f"the shard file {name!r} lies outside the folder (crafted?)")
        if _field(info, "transform_descriptors"):
            continue  # compressed or otherwise transformed: netexplorer cannot read it
        offsets = None if offset is None else _counts(offset, f"the offset of {fqn!r}")
        index[(fqn, offsets)] = (name, begin, length)
    return index


def _planner_paths(planner_data: Any, entries: dict) -> dict[str, tuple[str, ...]]:
    """Each key's path in the nested state dict that was saved (DCP flattens nested dicts
    and lists to dotted keys and keeps the paths in `planner_data`); a key without one is a
    top-level key."""
    paths: dict[str, tuple[str, ...]] = {}
    known = planner_data if isinstance(planner_data, dict) else {}
    for fqn in entries:
        path = known.get(fqn)
        ok = isinstance(path, tuple) and path and all(isinstance(p, (str, int)) for p in path)
        paths[fqn] = tuple(str(p) for p in path) if ok else (fqn,)
    return paths


# -- the tree ---------------------------------------------------------------------------------


def is_checkpoint_folder(spec: str) -> bool:
    """Whether `spec` is a folder holding `.metadata` (or that file itself); stat only, so
    a FIFO named `.metadata` is never opened here."""
    folder = _folder_of(spec)
    return folder is not None and os.path.lexists(os.path.join(folder, METADATA_NAME))


def _folder_of(spec: str) -> str | None:
    if os.path.isdir(spec):
        return spec
    if os.path.basename(spec) == METADATA_NAME:
        return os.path.dirname(spec) or "."
    return None


class DistributedCheckpointReader:
    name = "dcp"
    title = "PyTorch distributed checkpoints"
    file_patterns = (METADATA_NAME,)  # the folder, or its .metadata file

    def can_read(self, spec: str) -> bool:
        return is_checkpoint_folder(spec)

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        folder = _folder_of(spec) or spec
        options.report(0.0, f"reading {os.path.join(folder, METADATA_NAME)}")
        layout = read_layout(folder, options.trust)
        tensors = [i for i in layout.items if isinstance(i, _TensorItem)]
        if not tensors:
            raise SourceError(f"cannot open {folder}: it holds no tensors; nothing to show")
        handles = {
            t.fqn: DistributedTensorHandle(folder, t.fqn, t.shape, t.dtype, t.chunks, options.trust)
            for t in tensors
        }
        optimizer_state, matching = _match_optimizer_state(handles, layout.paths)
        moved = {h.fqn for state in optimizer_state.values() for h in state.values()}
        kinds = {fqn: "buffer" for fqn in _optimizer_keys(layout.paths) if fqn not in moved}
        entries = [(fqn, h) for fqn, h in handles.items() if fqn not in moved]
        containers = {layout.paths[fqn][:-1] for fqn, _ in entries if len(layout.paths[fqn]) > 1}
        metadata = _metadata(folder, layout, options)
        if matching:
            metadata["optimizer_matching"] = matching
        tree = tree_from_entries(
            entries,
            source=spec,
            reader=self.name,
            metadata=metadata,
            kinds=kinds,
            containers=sorted(containers, key=len, reverse=True),
        )
        tree.optimizer_state = optimizer_state
        return tree


def _optimizer_keys(paths: dict[str, tuple[str, ...]]) -> list[str]:
    """Keys that are optimizer state: `<optimizer>.state.<parameter>.<name>`."""
    return [fqn for fqn, p in paths.items() if len(p) == 4 and p[1] == "state"]


def _match_optimizer_state(
    handles: dict[str, DistributedTensorHandle], paths: dict[str, tuple[str, ...]]
) -> tuple[dict[str, dict[str, TensorHandle]], list[dict[str, Any]]]:
    """Optimizer state matched to its parameters by name: the state dicts of
    `torch.distributed.checkpoint.state_dict.get_state_dict` key the state by parameter
    name (`optim.state.<fqn>.exp_avg`), beside the model's `model.<fqn>`. An optimizer is
    matched whole or not at all; unmatched state stays in the tree as buffers."""
    by_model_key: dict[str, list[str]] = {}
    for fqn, path in paths.items():
        if fqn in handles and len(path) <= 2:  # a model's state dict, nested or not
            by_model_key.setdefault(path[-1], []).append(fqn)
    optimizers: dict[str, list[str]] = {}
    for fqn in _optimizer_keys(paths):
        if fqn in handles:
            optimizers.setdefault(paths[fqn][0], []).append(fqn)
    state: dict[str, dict[str, TensorHandle]] = {}
    reports = []
    for name, keys in optimizers.items():
        matched: dict[str, dict[str, TensorHandle]] = {}
        reason = ""
        for fqn in keys:
            _, _, param, state_name = paths[fqn]
            owners = [p for p in by_model_key.get(param, []) if paths[p][0] != name]
            handle = handles[fqn]
            if len(owners) != 1:
                reason = f"no single parameter named {param!r} for {fqn}"
                break
            shape = handles[owners[0]].shape
            if handle.shape and handle.shape != shape:
                reason = f"{fqn} has shape {list(handle.shape)}, but {owners[0]} {list(shape)}"
                break
            matched.setdefault(owners[0], {})[state_name] = handle
        if reason:
            reports.append({"optimizer": name, "matched": False, "reason": reason})
            continue
        state.update(matched)
        how = "by the parameter names the distributed checkpoint keys its state by"
        reports.append({"optimizer": name, "matched": True, "how": how, "parameters": len(matched)})
    return state, reports


def _metadata(folder: str, layout: _Layout, options: OpenOptions) -> dict[str, Any]:
    """The checkpoint's shard files and ranks, and its objects that are not tensors (read
    only with trust: they are pickles of anything)."""
    files = []
    for name in layout.files:
        try:
            size: Any = os.stat(os.path.join(folder, name)).st_size
        except OSError:
            size = "missing"
        found = _RANK_FILE.fullmatch(os.path.basename(name))
        files.append({"file": name, "rank": int(found.group(1)) if found else None, "bytes": size})
    ranks = {f["rank"] for f in files if f["rank"] is not None}
    metadata: dict[str, Any] = {"format": FORMAT_NAME}
    if layout.version:
        metadata["version"] = layout.version
    metadata["ranks"] = len(ranks)
    metadata["shard_files"] = json_safe(files)
    if layout.save_id:
        metadata["save_id"] = layout.save_id
    objects: dict[str, Any] = {}
    for item in layout.items:
        if isinstance(item, _ObjectItem):
            value = _object_value(folder, item, options.trust)
            *parents, last = layout.paths[item.fqn]
            place = objects
            for part in parents:
                nested = place.setdefault(part, {})
                place = nested if isinstance(nested, dict) else {}
            place[last] = value
    if objects:
        metadata["objects"] = json_safe(objects)
    return metadata


def _object_value(folder: str, item: _ObjectItem, trust: bool) -> Any:
    c = item.chunk
    where = f"{c.byte_length:,} bytes in {c.file}" if c.file else "no file named"
    if not trust:
        return f"<not loaded: a pickle, {where}; --trust reads it>"
    try:
        if c.file is None:
            raise SourceError("no shard file is named for it")
        path = os.path.join(folder, c.file)
        return load_bytes(path, _shard_size(folder, c.file), (c.byte_offset, c.byte_length), True)
    except SourceError as exc:
        return f"<unreadable ({where}): {exc}>"
