"""Recently shown tensors kept ready to show again, within a memory budget.

Going back to a tensor shown a moment ago should not read and reduce it again (a 200M-element
tensor is a second of work), but what is kept must not grow with every tensor a person
clicks through. `DisplayCache` keeps values by key, counts the bytes each holds, and drops
the least recently used past its budget. A tensor read from a file's map holds only its
display array (the values are the file's pages, which the system drops and reads again as
it needs); a tensor whose values were decoded or copied (bfloat16 as float32) holds those
too.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

# What the window keeps of tensors shown before: a few dozen display arrays (4 MB at most
# each), or a decoded tensor of tens of millions of values
DISPLAY_CACHE_BYTES = 256 * 1024 * 1024


class DisplayCache:
    """Values by key, the least recently used dropped once their bytes pass `max_bytes`."""

    def __init__(self, max_bytes: int = DISPLAY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    @property
    def bytes(self) -> int:
        """The bytes the kept values hold (as `put` was told)."""
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        """The value kept for `key` (now the most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        """Keep `value` (holding `nbytes`), dropping the least recently used values past the
        budget; a value larger than the whole budget is not kept."""
        self.discard(key)
        if nbytes > self.max_bytes:
            return
        self._items[key] = (value, nbytes)
        self._bytes += nbytes
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped

    def discard(self, key: Hashable) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


def owned_bytes(array: np.ndarray | None) -> int:
    """The memory an array holds of its own: 0 for a view of a file's map (its pages are
    the file's), else the bytes of the array it is a view of."""
    if array is None:
        return 0
    base: Any = array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) or base.base is None:
            break
        base = base.base
    if isinstance(base, (np.memmap, mmap.mmap)):
        return 0
    return int(base.nbytes) if isinstance(base, np.ndarray) else int(array.nbytes)
