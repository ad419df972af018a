"""What the globals of a torch.save pickle become when netexplorer reads it: stand-ins that
build plain data only (a StoredTensor for a tensor, a dtype name for a dtype), never torch.

The allow-list is short: the rebuild functions of plain tensors and parameters, storage types
and dtypes, `collections.OrderedDict`, set, frozenset and complex, and `_codecs.encode`
(protocol 2's way to pickle bytes). Anything else is left to torch's own loader or to trust
(pickle_reader.py), after the reader has checked what it asks for.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..handles import ITEMSIZE
from .pickle_reader import NotPlain, Opaque
from .stored import StoredTensor, is_count, stored_tensor

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


# bytes per element of every storage type torch's loaders know, quantized ones too (a legacy
# file's layout is checked even where torch must build the tensors)
STORAGE_ITEMSIZES = {name: ITEMSIZE[dtype] for name, dtype in STORAGE_DTYPES.items()}
STORAGE_ITEMSIZES.update({"UntypedStorage": 1, "QInt8Storage": 1, "QUInt8Storage": 1})
STORAGE_ITEMSIZES.update({"QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1})


@dataclass(frozen=True, slots=True)
class StorageType:
    """`torch.FloatStorage` and friends: the dtype of a storage (None: untyped)."""

    name: str
    dtype: str | None

    def __setstate__(self, state: Any) -> None:  # shared by every file: never changed
        raise TypeError("a stand-in takes no state from a pickle (BUILD)")


@dataclass(frozen=True, slots=True)
class DType:
    """`torch.float32` and friends."""

    name: str

    def __setstate__(self, state: Any) -> None:
        raise TypeError("a stand-in takes no state from a pickle (BUILD)")

    def __repr__(self) -> str:  # as torch's, should a dtype be in the metadata
        return f"torch.{self.name}"


def _rebuild_tensor(storage, offset, shape, stride):
    """Before torch 1.0: no requires_grad, no hooks."""
    return stored_tensor(storage, offset, shape, stride, None, False, None)


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, _hooks, metadata=None):
    return stored_tensor(storage, offset, shape, stride, None, requires_grad, metadata)


def _rebuild_tensor_v3(storage, offset, shape, stride, requires_grad, _hooks, dtype, metadata=None):
    if not isinstance(dtype, DType):
        raise NotPlain("a tensor without a dtype")
    return stored_tensor(storage, offset, shape, stride, dtype.name, requires_grad, metadata)


def _rebuild_parameter(data, requires_grad, _hooks):
    if not isinstance(data, StoredTensor):
        raise NotPlain("a parameter that is not a plain tensor")
    return dataclasses.replace(data, requires_grad=bool(requires_grad))


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol 2 pickles bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise NotPlain("_codecs.encode of something other than latin-1 text")
    return text.encode("latin-1")


TENSOR_MAKERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3)
CALLABLES = (
    *TENSOR_MAKERS,
    _rebuild_parameter,
    _encode,
    collections.OrderedDict,
    set,
    frozenset,
    complex,
)

STAND_INS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): StorageType("UntypedStorage", None),
    ("torch", "UntypedStorage"): StorageType("UntypedStorage", None),
    ("_codecs", "encode"): _encode,
}
STAND_INS.update({("builtins", f.__name__): f for f in (set, frozenset, complex)})
STAND_INS.update({("torch", n): StorageType(n, dtype) for n, dtype in STORAGE_DTYPES.items()})
STAND_INS.update({("torch", name): DType(name) for name in ITEMSIZE})


# Protocol 0 writes a persistent id as its str(): "('storage', <class 'torch.FloatStorage'>,
# '0', 'cpu', 6)" (torch's own loader cannot read those back; this reader can)
_TEXT_ID = re.compile(
    r"^\('storage', <class 'torch\.(?:storage\.)?(\w+)'>, '([^'\\]*)', '([^'\\]*)', "
    r"(\d{1,19})(, None)?\)$"
)


def storage_fields(pid: Any, fields: int) -> tuple[str, str, int]:
    """(storage type name, key, element count) of a persistent id naming a storage: 5 fields
    in a zip archive, 6 in a legacy file (the last, an old-style view, must be None). The
    type may be one only torch builds (`QInt8Storage`). Raises NotPlain for anything else."""
    if isinstance(pid, str):
        match = _TEXT_ID.match(pid)
        if match is None or (match[5] is not None) != (fields == 6):
            raise NotPlain("a persistent id this reader does not parse")
        kind = STAND_INS.get(("torch", match[1])) or Opaque(f"torch.{match[1]}")
        pid = ("storage", kind, match[2], match[3], int(match[4]), *([None] * (fields - 5)))
    if not (isinstance(pid, tuple) and len(pid) == fields and pid[0] == "storage"):
        raise NotPlain(f"an unknown persistent id (a {type(pid).__name__})")
    kind, key, numel = pid[1], pid[2], pid[4]
    if fields == 6 and pid[5] is not None:
        raise NotPlain("an old-style view of a storage")
    if isinstance(kind, StorageType):
        name = kind.name
    elif isinstance(kind, Opaque) and kind.name.startswith("torch."):
        name = kind.name.rsplit(".", 1)[1]
    else:
        raise NotPlain("a storage of no storage type")
    if not isinstance(key, str) or not is_count(numel):
        raise NotPlain("a malformed storage reference")
    return name, key, numel


def storage_reference(pid: Any, fields: int) -> tuple[StorageType, str, int]:
    """(storage type, key, element count) of a persistent id naming a storage this reader
    maps (see `storage_fields`); NotPlain for the rest."""
    name, key, numel = storage_fields(pid, fields)
    kind = STAND_INS.get(("torch", name))
    if not isinstance(kind, StorageType):
        raise NotPlain(f"a storage of type {name}", needs=[f"torch.{name}"])
    return kind, key, numel
