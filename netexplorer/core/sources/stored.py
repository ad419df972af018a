"""Tensors of a torch file, located in the file and read without torch.

A `StoredTensor` is where a tensor's values lie: a storage (a byte range of the file), an
offset, a shape, strides and a dtype, each checked when it is made so that every element it
names lies inside its storage. Nothing is read until a `StoredTensorHandle` maps the bytes,
read-only, after a second bounds check.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..handles import (
    ITEMSIZE,
    TensorHandle,
    decode_raw,
    element_count,
    overlap_problem,
    raw_view_dtype,
)
from ..torch_import import import_torch
from .mapped import MappedFile
from .pickle_reader import NotPlain

if TYPE_CHECKING:
    import numpy as np

REFUSES_STATE = "a stored tensor or storage takes no state from a pickle (BUILD)"
DECODED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # numpy lacks them: shown as float32
LIMIT = 1 << 63  # offsets, sizes, strides and element counts fit torch's int64


@dataclass(slots=True, eq=False)
class Storage:
    """One storage of the file: where its bytes are, and its dtype if typed. `begin` is set
    once the file's layout is known (a legacy file lists its storages after the pickle that
    names them); nothing in a pickle can change it (BUILD reaches only OrderedDicts)."""

    key: str
    dtype: str | None  # None: an untyped storage, whose tensor names the dtype
    nbytes: int
    file: MappedFile  # its data_start is where the archive starts in the file
    begin: int  # offset of its bytes from the archive's start; -1 until known

    def __setstate__(self, state: Any) -> None:
        raise TypeError(REFUSES_STATE)


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity, as torch tensors are
class StoredTensor:
    """A tensor of the pickle: where its values lie in the file. Nothing is read."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str
    requires_grad: bool = False

    def __setstate__(self, state: Any) -> None:
        # dataclass(slots=True, frozen=True) would add one that sets every field: a pickle's
        # BUILD must never change a tensor whose bounds were checked
        raise TypeError(REFUSES_STATE)

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
    """A tensor of a torch file: values read from the file's map when first asked for."""

    __slots__ = ("dtype", "shape", "tensor")

    def __init__(self, tensor: StoredTensor) -> None:
        self.tensor = tensor
        self.shape = tensor.shape
        self.dtype = tensor.dtype

    @property
    def no_values_reason(self) -> str | None:
        t = self.tensor
        stored = t.storage.nbytes // ITEMSIZE[t.dtype]
        return super().no_values_reason or overlap_problem(t.shape, t.stride, stored)

    def raw_array(self, writable: bool = False) -> np.ndarray:
        """The stored values without decoding (bfloat16 as uint16, float8 as uint8), strided
        as in the file (a saved view of a larger storage stays a view)."""
        import numpy as np

        self.check_values()
        t = self.tensor
        view = raw_view_dtype(t.dtype).newbyteorder("<")
        if t.numel() == 0:
            return np.zeros(t.shape, dtype=view)
        s = t.storage
        count = s.nbytes // view.itemsize
        flat = s.file.bytes(s.begin, s.begin + count * view.itemsize, writable).view(view)
        if last_element(t.offset, t.shape, t.stride) >= flat.size:  # checked when read too
            raise ValueError(f"a tensor of {s.file.path} reaches past its storage")
        if t.stride == contiguous_strides(t.shape):
            return flat[t.offset : t.offset + t.numel()].reshape(t.shape)
        return np.lib.stride_tricks.as_strided(
            flat[t.offset :],
            shape=t.shape,
            strides=tuple(n * view.itemsize for n in t.stride),
            writeable=writable,
        )

    def array(self) -> np.ndarray:
        raw = self.raw_array()
        return decode_raw(raw, self.dtype) if self.dtype in DECODED else raw

    def torch_tensor(self) -> Any:
        """The values as a writable torch tensor of the stored dtype (copy-on-write: the
        file is never written)."""
        import numpy as np

        torch = import_torch()
        raw = self.raw_array(writable=True)
        if raw.dtype.byteorder == ">":  # only on big-endian machines
            raw = raw.byteswap().view(raw.dtype.newbyteorder("="))
        if self.dtype in DECODED:
            signed = np.int16 if self.dtype == "bfloat16" else np.int8
            return torch.from_numpy(raw.view(signed)).view(getattr(torch, self.dtype))
        return torch.from_numpy(raw)

    def storage_key(self) -> Hashable | None:
        t = self.tensor
        if t.storage.nbytes == 0:
            return None  # empty storages hold nothing to share
        return ("torch-zip", t.storage.file.path, t.storage.key, t.offset, t.shape, t.stride)


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def is_count(x: Any) -> bool:
    """A size, offset or stride torch could hold (an int64 that is not negative)."""
    return type(x) is int and 0 <= x < LIMIT


def last_element(offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> int:
    """The index in the storage of a tensor's last element (-1 when it has none); shape and
    stride of equal length. A plain loop: it runs for every tensor of a file."""
    last = offset
    for n, s in zip(shape, stride):  # noqa: B905 - equal lengths are checked by the caller
        if n == 0:
            return -1
        last += (n - 1) * s
    return last


def stored_tensor(
    storage: Any,
    offset: Any,
    shape: Any,
    stride: Any,
    dtype: str | None,
    requires_grad: Any,
    metadata: Any,
) -> StoredTensor:
    """A StoredTensor, after checking that every element it names lies inside its storage
    (a crafted file must not make a handle read outside the map). Raises NotPlain for what
    torch must rebuild itself, or a file that does not add up (torch then says what)."""
    found = _checked(storage, offset, shape, stride, dtype, requires_grad, metadata)
    if found is not None:
        return found
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
    if not (is_count(offset) and all(map(is_count, shape)) and all(map(is_count, stride))):
        raise NotPlain("malformed tensor shape, strides or offset")
    itemsize = ITEMSIZE[dtype]
    # counted with a bound: math.prod of a million dimensions of 2**62 takes minutes
    if element_count(shape, LIMIT - 1) is None or any(
        n * itemsize >= LIMIT for n in (offset, *stride)
    ):
        raise NotPlain("a tensor of more than 2**63 elements, or bytes")
    if last_element(offset, shape, stride) >= storage.nbytes // itemsize:
        raise NotPlain("a tensor reaching past the end of its storage")
    return StoredTensor(storage, offset, shape, stride, dtype, bool(requires_grad))


def _checked(
    storage: Any,
    offset: Any,
    shape: Any,
    stride: Any,
    dtype: str | None,
    requires_grad: Any,
    metadata: Any,
) -> StoredTensor | None:
    """The common tensor, checked as `stored_tensor` checks it in one loop over its
    dimensions (it runs for every tensor of a file); None for anything else, which
    `stored_tensor` checks step by step and says what is wrong with."""
    if type(storage) is not Storage or metadata or type(shape) is not tuple:
        return None
    dtype = dtype or storage.dtype
    itemsize = ITEMSIZE.get(dtype)  # type: ignore[arg-type]
    if (
        itemsize is None
        or (storage.dtype is not None and storage.dtype != dtype)
        or type(stride) is not tuple
        or len(shape) != len(stride)
        or type(offset) is not int
        or not 0 <= offset * itemsize < LIMIT
    ):
        return None
    numel, last, empty = 1, offset, False
    for n, step in zip(shape, stride):  # noqa: B905 - equal lengths, checked above
        if type(n) is not int or type(step) is not int or n < 0 or not 0 <= step * itemsize < LIMIT:
            return None
        if n:
            numel *= n
            if numel >= LIMIT:  # stops multiplying, as element_count does
                return None
            last += (n - 1) * step
        else:
            empty = True  # no elements: nothing reaches past the storage
    if not empty and last >= storage.nbytes // itemsize:
        return None
    return StoredTensor(storage, offset, shape, stride, dtype, bool(requires_grad))


def check_no_bare_storage(obj: Any) -> None:
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
