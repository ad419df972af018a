"""Checkpoint values as JSON-safe metadata (the `metadata` of the JSON description and the
details panel): numbers, strings, lists and objects only, bounded in size."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from typing import Any

MAX_ITEMS = 200  # longer lists and dicts are cut, with a note of how many were left out
MAX_TEXT = 300
MAX_DEPTH = 24
MAX_VALUES = 20_000  # values converted per call: a crafted file can share one list many times


def json_safe(value: Any, depth: int = 0, _budget: list[int] | None = None) -> Any:
    """`value` as plain JSON data: non-finite floats become strings, unknown objects their
    (shortened) repr, tuples lists, mapping keys strings. Never raises."""
    if depth > MAX_DEPTH:
        return "<nested too deeply>"
    budget = [MAX_VALUES] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        return "<not shown: too many values>"
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else _short(value)
    if isinstance(value, int):
        # Python will not print an integer of more than 4,300 digits (nor would JSON readers)
        bits = value.bit_length()
        return value if bits <= 1000 else f"<an integer of {bits:,} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i == MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more entries"
                break
            out[str(k)] = json_safe(v, depth + 1, budget)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        out_list = [json_safe(v, depth + 1, budget) for v in itertools.islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            out_list.append(f"... {len(value) - MAX_ITEMS} more")
        return out_list
    return _scalar_or_repr(value)


def _scalar_or_repr(value: Any) -> Any:
    # numpy and torch scalars, torch.Size, torch.dtype, paths, namespaces...
    if "Storage" in type(value).__name__ and hasattr(value, "nbytes"):
        # a torch storage's repr lists every element: minutes for a 40 MB storage
        return _storage_text(value)
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None and tuple(shape) == ():
        try:
            return json_safe(item())
        except Exception:
            pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a legacy TypedStorage's repr warns, for one
            text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return _short(text)


def _storage_text(storage: Any) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage warns that it is deprecated
            nbytes = int(storage.nbytes())
            dtype = getattr(storage, "dtype", None)  # an untyped storage has none
    except Exception:
        return f"<{type(storage).__name__}>"
    of = f", {str(dtype).removeprefix('torch.')}" if dtype is not None else ""
    return f"<{type(storage).__name__} of {nbytes:,} bytes{of}>"


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
