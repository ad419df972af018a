"""Building a large tree without Python's cycle collector running through it.

Building a tree makes millions of small objects (a million tensors: nodes, their dicts,
handles, shape tuples), and every so many allocations Python's cycle collector walks all of
them again: measured, 5.4 of the 10.9 s to build a million-tensor tree, in full collections
of up to 0.87 s. A collection holds the GIL, so while a worker builds the tree the window
stops for that long. A tree has no reference cycles (its links upwards are weak: see
tree.py), so nothing is left for the collector to find; it is paused while a tree is built.
After a large build the new objects are moved out of its reach (`gc.freeze`, as the window
does with every tree it shows, ui/document.py): the first collection after the pause would
otherwise walk all of them at once (0.54 s after a million tensors).
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

FREEZE_ABOVE = 50_000  # objects made by a build: a collection of more would be seen

_lock = threading.Lock()
_pauses = 0  # builds under way (in any thread)
_was_enabled = True


def _pause() -> None:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1


def _resume() -> None:
    global _pauses
    with _lock:
        _pauses -= 1
        if _pauses == 0:
            if gc.get_count()[0] > FREEZE_ABOVE:
                gc.freeze()
            if _was_enabled:
                gc.enable()


def without_cycle_collector(build: Callable[P, R]) -> Callable[P, R]:
    """Run `build` with the cycle collector paused (nested and concurrent builds too: it
    resumes when the last one ends, and only if it was running before the first)."""

    @functools.wraps(build)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        _pause()
        try:
            return build(*args, **kwargs)
        finally:
            _resume()

    return paused


_frozen: set[str] = set()


def freeze_once(what: str) -> None:
    """Move what exists now out of the collector's reach, once per `what` in the process.
    The window calls it once its plotting panels are made ("panels": pyqtgraph's modules
    and the panels, some 150,000 objects) and once torch's optimizer stack is imported
    ("torch": about 100,000 more); they live as long as the process, and each full
    collection walked them all (106 ms measured, every few minutes while training). Later
    windows' objects (a notebook may open and close many) are left to the collector."""
    if what not in _frozen:
        _frozen.add(what)
        gc.freeze()
