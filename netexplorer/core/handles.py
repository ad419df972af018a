"""Lazy handles to tensor values.

A tree node never holds tensor data itself: it holds a handle that reads the values when they
are first shown or their statistics are asked for. Handles hand out numpy arrays, which are
plain data that may cross threads; torch is only imported by handles that wrap torch tensors,
and numpy only when values are read (opening a safetensors file and `--summary` need
neither: itemsizes come from `ITEMSIZE`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from .limits import MAX_SIZE, count_text
from .torch_import import import_torch

if TYPE_CHECKING:
    import numpy as np

# dtypes numpy has under the same name as torch / safetensors use
_NUMPY_NATIVE = {
    "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8",
    "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
}  # fmt: skip


def torch_dtype_name(dtype: Any) -> str:
    """`torch.float32` -> `float32`."""
    return str(dtype).removeprefix("torch.")


# bytes per element of every dtype a stored tensor may have
ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
    "int16": 2, "int8": 1, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1,
    "complex64": 8, "complex128": 16, "float8_e4m3fn": 1, "float8_e5m2": 1,
}  # fmt: skip


def _float8_table(exponent_bits: int, mantissa_bits: int, bias: int, fn: bool) -> np.ndarray:
    """All 256 values of an 8-bit float format as float32 (fn: no infinities, one NaN code)."""
    import numpy as np

    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exp = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    man = codes & ((1 << mantissa_bits) - 1)
    frac = man / (1 << mantissa_bits)
    normal = (1.0 + frac) * np.exp2(exp - bias)
    subnormal = frac * np.exp2(1 - bias)
    values = sign * np.where(exp == 0, subnormal, normal)
    top = (1 << exponent_bits) - 1
    if fn:  # e4m3fn: only S.1111.111 is NaN
        values[(exp == top) & (man == (1 << mantissa_bits) - 1)] = np.nan
    else:  # e5m2: IEEE-like
        values[(exp == top) & (man == 0)] = sign[(exp == top) & (man == 0)] * np.inf
        values[(exp == top) & (man != 0)] = np.nan
    return values.astype(np.float32)


_FLOAT8 = {
    "float8_e4m3fn": (4, 3, 7, True),
    "float8_e5m2": (5, 2, 15, False),
}


def decode_raw(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Turn the raw integer view of a dtype numpy lacks into float32 values.

    `raw` holds the stored bits (uint16 for bfloat16, uint8 for float8 formats). Axes of
    stride 0 (an expanded tensor: one stored value seen 2**40 times) are decoded once and
    broadcast again, so decoding costs what is stored, not what is seen.
    """
    import numpy as np

    stored = stored_values(raw)
    if dtype == "bfloat16":
        decoded = (stored.astype(np.uint32) << 16).view(np.float32)
    elif dtype in _FLOAT8:
        decoded = _float8_table(*_FLOAT8[dtype])[stored]
    else:
        raise ValueError(f"cannot decode dtype {dtype}")
    return decoded if stored is raw else np.broadcast_to(decoded, raw.shape)


def stored_values(values: np.ndarray) -> np.ndarray:
    """`values` with every axis of stride 0 cut to length 1: the values actually stored,
    each standing for `repeats(values)` elements (the array itself when there are none)."""
    if values.size == 0:
        return values
    cut = tuple(
        slice(0, 1) if stride == 0 and n > 1 else slice(None)
        for n, stride in zip(values.shape, values.strides, strict=True)
    )
    return values[cut] if any(c.stop == 1 for c in cut) else values


def repeats(values: np.ndarray) -> int:
    """How many elements of `values` each of its stored values stands for (1 for an array
    without axes of stride 0)."""
    if values.size == 0:
        return 1
    return math.prod(
        n for n, stride in zip(values.shape, values.strides, strict=True) if stride == 0 and n > 1
    )


def raw_view_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype to read a stored tensor of `dtype` with, or None if unsupported."""
    import numpy as np

    if dtype in _NUMPY_NATIVE:
        return np.dtype(dtype)
    if dtype == "bfloat16":
        return np.dtype(np.uint16)
    if dtype in _FLOAT8:
        return np.dtype(np.uint8)
    return None


def numpy_max_dims() -> int:
    """The most dimensions a numpy array may have: 64 from numpy 2, 32 before."""
    import numpy as np

    return 64 if int(np.__version__.split(".")[0]) >= 2 else 32


def element_count(shape: Any, bound: int) -> int | None:
    """The number of elements of a shape read from a file, if every dimension is a count
    (an int, not a bool, not negative) and its dimensions other than 0 multiply to at most
    `bound`; None otherwise. Linear in the number of dimensions: it stops multiplying past
    `bound` (math.prod of 100,000 dimensions of 2**62 takes half a minute). A shape it
    accepts is cheap to multiply anywhere later."""
    numel = 1
    empty = False
    for n in shape:
        if type(n) is not int or n < 0:
            return None
        if n == 0:
            empty = True
        else:
            numel *= n
            if numel > bound:
                return None
    return 0 if empty else numel


def values_problem(shape: tuple[int, ...], dtype: str) -> str | None:
    """Why numpy cannot hold the values of a tensor of `shape` and `dtype` (too many
    dimensions, more bytes than it addresses), or None. torch has neither limit, so such a
    tensor is shown with its shape and this reason instead of values."""
    max_dims = numpy_max_dims()
    if len(shape) > max_dims:
        return f"it has {len(shape)} dimensions and numpy holds at most {max_dims}"
    numel = math.prod(shape)
    if numel * ITEMSIZE.get(dtype, 1) > MAX_SIZE:
        return f"its {count_text(numel)} elements take more bytes than numpy can address"
    return None


# Elements a view may name per element its storage holds, beyond axes of stride 0 (those
# repeat one value and cost nothing): unfold(k) reads each element k times; a crafted file can
# name 10**12 elements over a few MB with strides (1, 1), and statistics would read them all.
MAX_VIEW_REPEAT = 64


def overlap_problem(shape: tuple[int, ...], strides: tuple[int, ...], stored: int) -> str | None:
    """Why the values of a view are not read: more elements than MAX_VIEW_REPEAT times the
    `stored` elements of its storage (axes of stride 0 aside), or None."""
    named = math.prod(n for n, st in zip(shape, strides, strict=True) if st != 0)
    if named <= max(1 << 20, MAX_VIEW_REPEAT * stored):
        return None
    return (
        f"its strides overlap: it names {count_text(named)} elements over {stored:,} stored "
        "ones (a crafted file?)"
    )


class TensorHandle:
    """Lazy access to one tensor: shape and dtype now, values on demand."""

    __slots__ = ()  # a subclass made a million times may have slots only (no __dict__)
    shape: tuple[int, ...]
    dtype: str
    # How a tensor saved in pieces is split: one ShardChunk (sources/dcp.py) per piece, with
    # its offsets and sizes in the tensor and the rank and file that hold it, for a tensor of
    # a distributed checkpoint; None for a tensor stored whole.
    chunks: tuple[Any, ...] | None = None

    @property
    def no_values_reason(self) -> str | None:
        """Why this tensor has no values to show (a meta tensor, too many dimensions for
        numpy, a damaged sparse tensor, ...), or None when it has values."""
        return values_problem(self.shape, self.dtype)

    @property
    def has_values(self) -> bool:
        return self.no_values_reason is None

    def check_values(self) -> None:
        """Raise ValueError with the reason when this tensor has no values."""
        reason = self.no_values_reason
        if reason is not None:
            raise ValueError(f"no values: {reason}")

    def array(self) -> np.ndarray:
        """The values as a numpy array that is never mutated afterwards (float32 stands in
        for dtypes numpy lacks, such as bfloat16). Raises ValueError without values."""
        raise NotImplementedError

    def storage_key(self) -> Hashable | None:
        """Identity of the storage region (storage, offset, shape, stride) for tie detection."""
        return None


class ArrayHandle(TensorHandle):
    """A handle whose values come from a loader function returning a numpy array."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: str,
        loader: Callable[[], np.ndarray],
        storage_key: Hashable | None = None,
    ) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self._loader = loader
        self._storage_key = storage_key

    def array(self) -> np.ndarray:
        self.check_values()
        return self._loader()

    def storage_key(self) -> Hashable | None:
        return self._storage_key


class TorchHandle(TensorHandle):
    """A handle over a torch tensor (a live Parameter or buffer, or a loaded tensor).

    `snapshot=True` (live modules) copies values on every read, so an array handed to a
    widget or another thread never changes under it when an optimizer steps.
    """

    def __init__(self, tensor: Any, snapshot: bool = True) -> None:
        self.tensor = tensor
        self.snapshot = snapshot
        self.shape = tuple(int(s) for s in tensor.shape)
        self.dtype = torch_dtype_name(tensor.dtype)

    @property
    def device(self) -> str:
        return self.tensor.device.type

    @property
    def no_values_reason(self) -> str | None:
        t = self.tensor
        if self.device == "meta":
            return "a meta tensor has a shape and a dtype but no values"
        reason = super().no_values_reason
        if reason is None and t.layout is import_torch().strided and t.numel():
            try:
                stored = t.untyped_storage().nbytes() // max(1, t.element_size())
            except (RuntimeError, NotImplementedError):  # a tensor without a storage
                return None
            reason = overlap_problem(self.shape, tuple(t.stride()), stored)
        return reason

    def array(self) -> np.ndarray:
        self.check_values()
        return _torch_to_numpy(self.tensor, copy=self.snapshot)

    def grad_array(self) -> np.ndarray | None:
        grad = getattr(self.tensor, "grad", None)
        return None if grad is None else _torch_to_numpy(grad, copy=True)

    def storage_key(self) -> Hashable | None:
        t = self.tensor
        if t.device.type == "meta":
            return None  # meta tensors have no storage; ties come from object identity
        try:
            ptr = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return None
        return (t.device.type, ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def _torch_to_numpy(tensor: Any, copy: bool) -> np.ndarray:
    import numpy as np

    if tensor.device.type == "meta":
        raise ValueError("a meta tensor has shape and dtype but no values")
    t = tensor.detach()
    shape = tuple(int(n) for n in t.shape)
    # an axis of stride 0 (an expanded tensor) is converted and copied once, then broadcast:
    # torch.zeros(1).expand(2**20, 2**20) is one value, not 4 TB
    strides = tuple(t.stride())
    cut = tuple(
        slice(0, 1) if st == 0 and n > 1 else slice(None)
        for n, st in zip(shape, strides, strict=True)
    )
    expanded = any(c.stop == 1 for c in cut)
    if expanded:
        t = t[cut]
    name = torch_dtype_name(t.dtype)
    if name not in _NUMPY_NATIVE:
        t = t.float()  # bfloat16, float8, ...: a fresh float32 copy
        copy = False
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():  # a saved negative view (of a conjugate) holds the bit, not the values
        t = t.resolve_neg()
    arr = t.numpy()
    if copy:
        arr = arr.copy()
    return np.broadcast_to(arr, shape) if expanded else arr
