"""Torch zip files (`torch.save` since PyTorch 1.6) read without torch and without running
anything from the file.

The archive holds `<name>/data.pkl`, a pickle of the saved object in which every tensor is a
call of a torch rebuild function on a storage, and one uncompressed entry `<name>/data/<key>`
per storage. This reader unpickles `data.pkl` with a restricted Unpickler:
- `find_class` answers a short allow-list with netexplorer's own stand-ins: the rebuild
  functions of plain tensors and parameters, storage types and dtypes (which become a
  `StoredTensor`: a storage entry, an offset, a shape, strides, a dtype),
  `collections.OrderedDict`, and set, frozenset and complex;
- the opcodes that make or change objects other ways are refused (INST, OBJ, NEWOBJ,
  NEWOBJ_EX, EXT1/2/4), and BUILD only sets attributes of an OrderedDict (a state dict's
  `_metadata`), so no stand-in can be changed after its bounds were checked;
- it is Python's pure-Python unpickler, whose memo is a dict: a pickle cannot make it
  allocate by naming a huge memo index (the C unpickler's memo is an array).
No torch object is created and no torch function is called; tensor values stay in the file
until a handle reads them from a read-only memory map, after a second bounds check.

Anything else (a quantized, sparse, conjugated or negated tensor, numpy values, a custom
class, a pickled module, code) stops this reader before anything is called: `NotPlain` is
raised and the file goes to `torch.load(weights_only=True)` (torch_file.py), which reads it
or refuses it as it would have without this reader. Damaged archives take the same way, so
their error messages are torch's.

Why: listing a 1.4 GB checkpoint this way takes tens of milliseconds and a few MB, where
`import torch` alone takes 1.4 s and 200 MB (bench/open.py).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import pickle
import struct
import zipfile
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from ..handles import ITEMSIZE, TensorHandle, decode_raw, raw_view_dtype
from ..torch_import import import_torch
from .mapped import MappedFile

if TYPE_CHECKING:
    import numpy as np

# torch.<Name>Storage, as `torch.save` names the dtype of a typed storage
STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_DECODED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # numpy lacks them: shown as float32
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra length
MAX_PICKLE_BYTES = 1 << 30  # a data.pkl larger than this is left to torch
LIMIT = 1 << 63  # offsets, sizes, strides and element counts fit torch's int64


class NotPlain(Exception):
    """The file needs more than this reader knows (or is damaged): read it with torch.load."""


@dataclass(frozen=True, slots=True)
class Storage:
    """One storage entry of the archive: where its bytes are, and its dtype if typed."""

    key: str
    dtype: str | None  # None: an untyped storage, whose tensor names the dtype
    nbytes: int
    file: MappedFile  # offsets of `file` are absolute (data_start 0)
    begin: int  # absolute offset of the entry's bytes in the file


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity, as torch tensors are
class StoredTensor:
    """A tensor of the pickle: where its values lie in the file. Nothing is read."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str
    requires_grad: bool = False

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number (metadata scalars)."""
        return self.handle().array().reshape(-1)[0].item()

    def handle(self) -> StoredTensorHandle:
        return StoredTensorHandle(self)

    def __repr__(self) -> str:
        return f"StoredTensor(shape={list(self.shape)}, dtype={self.dtype})"


class StoredTensorHandle(TensorHandle):
    """A tensor of a torch zip file: values read from the file's map when first asked for."""

    def __init__(self, tensor: StoredTensor) -> None:
        self.tensor = tensor
        self.shape = tensor.shape
        self.dtype = tensor.dtype

    def raw_array(self, writable: bool = False) -> np.ndarray:
        """The stored values without decoding (bfloat16 as uint16, float8 as uint8), strided
        as in the file (a saved view of a larger storage stays a view)."""
        import numpy as np

        t = self.tensor
        view = raw_view_dtype(t.dtype).newbyteorder("<")
        if t.numel() == 0:
            return np.zeros(t.shape, dtype=view)
        s = t.storage
        count = s.nbytes // view.itemsize
        flat = s.file.bytes(s.begin, s.begin + count * view.itemsize, writable).view(view)
        if _last_element(t.offset, t.shape, t.stride) >= flat.size:  # checked when read too
            raise ValueError(f"a tensor of {s.file.path} reaches past its storage")
        if t.stride == _contiguous_strides(t.shape):
            return flat[t.offset : t.offset + t.numel()].reshape(t.shape)
        return np.lib.stride_tricks.as_strided(
            flat[t.offset :],
            shape=t.shape,
            strides=tuple(n * view.itemsize for n in t.stride),
            writeable=writable,
        )

    def array(self) -> np.ndarray:
        raw = self.raw_array()
        return decode_raw(raw, self.dtype) if self.dtype in _DECODED else raw

    def torch_tensor(self) -> Any:
        """The values as a writable torch tensor of the stored dtype (copy-on-write: the
        file is never written)."""
        import numpy as np

        torch = import_torch()

        raw = self.raw_array(writable=True)
        if raw.dtype.byteorder == ">":  # only on big-endian machines
            raw = raw.byteswap().view(raw.dtype.newbyteorder("="))
        if self.dtype in _DECODED:
            signed = np.int16 if self.dtype == "bfloat16" else np.int8
            return torch.from_numpy(raw.view(signed)).view(getattr(torch, self.dtype))
        return torch.from_numpy(raw)

    def storage_key(self) -> Hashable | None:
        t = self.tensor
        if t.storage.nbytes == 0:
            return None  # empty storages hold nothing to share
        return ("torch-zip", t.storage.file.path, t.storage.key, t.offset, t.shape, t.stride)


def read_plain_zip(path: str, size: int) -> Any:
    """The object saved in the torch zip file at `path` (of `size` bytes), with a
    `StoredTensor` for every tensor. Raises NotPlain when the file needs torch.load: a
    global outside the allow-list, a compressed or big-endian archive, anything damaged."""
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            obj = _ArchiveReader(path, size, f, archive).load()
        _check_no_bare_storage(obj)
        return obj
    except NotPlain:
        raise
    except Exception as exc:  # damaged: torch.load gives the error message
        raise NotPlain(f"{type(exc).__name__}: {exc}") from None


def _check_no_bare_storage(obj: Any) -> None:
    """Storages belong inside tensors; a storage saved on its own is left to torch."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, Storage):
            raise NotPlain("a storage outside a tensor")
        if id(x) in seen or not isinstance(x, (dict, list, tuple, set, frozenset)):
            continue
        seen.add(id(x))
        stack.extend([*x.keys(), *x.values()] if isinstance(x, dict) else x)


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: str | None


@dataclass(frozen=True, slots=True)
class _DType:
    name: str

    def __repr__(self) -> str:  # as torch's, should a dtype be in the metadata
        return f"torch.{self.name}"


class _ArchiveReader:
    def __init__(self, path: str, size: int, f: io.BufferedReader, archive: zipfile.ZipFile):
        self.path = path
        self.f = f
        self.infos = {info.filename: info for info in archive.infolist()}
        self.archive = archive
        self.file = MappedFile(path, 0, size)
        self.size = size
        self.storages: dict[str, Storage] = {}
        pickles = [n for n in self.infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise NotPlain("not one data.pkl at the top of the archive")
        self.prefix = pickles[0].removesuffix("data.pkl")
        if f"{self.prefix}constants.pkl" in self.infos:
            raise NotPlain("a TorchScript archive")

    def load(self) -> Any:
        order = self.infos.get(f"{self.prefix}byteorder")
        if order is not None and (order.file_size > 16 or self.archive.read(order) != b"little"):
            raise NotPlain("not a little-endian archive")
        info = self.infos[f"{self.prefix}data.pkl"]
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > MAX_PICKLE_BYTES:
            raise NotPlain("data.pkl is compressed or larger than 1 GB")
        data = self.archive.read(info)  # checks the CRC
        return _PlainUnpickler(io.BytesIO(data), self).load()

    def storage(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotPlain(f"unknown persistent id (a {type(pid).__name__})")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or not _count(numel):
            raise NotPlain("malformed storage reference")
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


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _count(x: Any) -> bool:
    return type(x) is int and 0 <= x < LIMIT


def _last_element(offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """The index in the storage of a tensor's last element (-1 when it has none)."""
    if math.prod(shape) == 0:
        return -1
    return offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))


def _tensor(
    storage: Any,
    offset: Any,
    shape: Any,
    stride: Any,
    dtype: str | None,
    requires_grad: Any,
    metadata: Any,
) -> StoredTensor:
    """A StoredTensor, after checking that every element it names lies inside its storage
    (a crafted file must not make a handle read outside the map)."""
    if not isinstance(storage, Storage):
        raise NotPlain("a tensor without a storage")
    if metadata:  # the conjugate and negative bits of a view: torch resolves them
        raise NotPlain("a tensor with metadata (a conjugated or negated view)")
    dtype = dtype or storage.dtype
    if storage.dtype is not None and storage.dtype != dtype:
        raise NotPlain("a tensor whose dtype differs from its storage's")
    if dtype not in ITEMSIZE:  # every dtype there has a raw numpy view
        raise NotPlain(f"dtype {dtype}")
    if not (isinstance(shape, tuple) and isinstance(stride, tuple) and len(shape) == len(stride)):
        raise NotPlain("malformed tensor shape or strides")
    if not (_count(offset) and all(map(_count, shape)) and all(map(_count, stride))):
        raise NotPlain("malformed tensor shape, strides or offset")
    itemsize = ITEMSIZE[dtype]
    if math.prod(shape) >= LIMIT or any(n * itemsize >= LIMIT for n in (offset, *stride)):
        raise NotPlain("a tensor of more than 2**63 elements, or bytes")
    if _last_element(offset, shape, stride) >= storage.nbytes // itemsize:
        raise NotPlain("a tensor reaching past the end of its storage")
    return StoredTensor(storage, offset, shape, stride, dtype, bool(requires_grad))


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, _hooks, metadata=None):
    return _tensor(storage, offset, shape, stride, None, requires_grad, metadata)


def _rebuild_tensor_v3(storage, offset, shape, stride, requires_grad, _hooks, dtype, metadata=None):
    if not isinstance(dtype, _DType):
        raise NotPlain("a tensor without a dtype")
    return _tensor(storage, offset, shape, stride, dtype.name, requires_grad, metadata)


def _rebuild_parameter(data, requires_grad, _hooks):
    if not isinstance(data, StoredTensor):
        raise NotPlain("a parameter that is not a plain tensor")
    return dataclasses.replace(data, requires_grad=bool(requires_grad))


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol 2 pickles bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise NotPlain("_codecs.encode of something other than latin-1 text")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): _StorageType(None),
    ("torch", "UntypedStorage"): _StorageType(None),
    ("_codecs", "encode"): _encode,
}
for _module in ("builtins", "__builtin__"):  # protocol 2 names builtins as Python 2 did
    _ALLOWED.update({(_module, f.__name__): f for f in (set, frozenset, complex)})
_ALLOWED.update({("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()})
_ALLOWED.update({("torch", name): _DType(name) for name in ITEMSIZE})


def _refuse(unpickler: _PlainUnpickler) -> NoReturn:
    raise NotPlain("an opcode that makes objects of classes")


def _build(unpickler: _PlainUnpickler) -> None:
    """BUILD (set an object's state), only as torch's state dicts use it: the attributes of
    an OrderedDict (`_metadata`)."""
    stack = unpickler.stack
    state = stack.pop()
    target = stack[-1]
    if type(target) is not collections.OrderedDict or not isinstance(state, dict):
        raise NotPlain("BUILD of something other than an OrderedDict's attributes")
    if not all(type(k) is str for k in state):
        raise NotPlain("BUILD with attribute names that are not strings")
    target.__dict__.update(state)


def _dispatch() -> dict[int, Callable[..., Any]]:
    table = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    refused = (pickle.INST, pickle.OBJ, pickle.NEWOBJ, pickle.NEWOBJ_EX)
    for opcode in (*refused, pickle.EXT1, pickle.EXT2, pickle.EXT4):
        table[opcode[0]] = _refuse
    table[pickle.BUILD[0]] = _build
    return table


class _PlainUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Resolves only the allow-list, to netexplorer's stand-ins; storages come from the
    archive. Every global a pickle names goes through `find_class` (EXT codes, which look up
    a process-wide registry first, are refused)."""

    dispatch: ClassVar[dict[int, Callable[..., Any]]] = _dispatch()

    def __init__(self, file: io.BytesIO, archive: _ArchiveReader) -> None:
        super().__init__(file)
        self._archive = archive

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise NotPlain(f"needs {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Storage:
        return self._archive.storage(pid)
