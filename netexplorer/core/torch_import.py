"""One import of torch for the whole process, whoever asks first.

torch is imported lazily (it costs 1.5 s), so the first to need it may be any thread: the
window's worker that builds a preview, a reader opening a file, a statistics task. While one
thread runs `import torch`, `sys.modules["torch"]` already holds the half-built module, and
another thread that looks there (or that Python's import machinery hands that module after
its deadlock check) fails with "partially initialized module 'torch'". Every lazy import of
torch in core goes through `import_torch()`, which imports under one lock, and every "is torch
already loaded?" question goes through `loaded_torch()`, which never returns a half-built
module.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.Lock()
_torch: Any = None


def import_torch() -> Any:
    """The torch module, imported once under a lock (callers in other threads wait for the
    import to finish instead of seeing a half-initialised module). Raises ImportError if
    torch is not installed."""
    global _torch
    if _torch is None:
        with _lock:
            if _torch is None:
                import torch

                _torch = torch
    return _torch


def loaded_torch() -> Any | None:
    """torch if it is fully imported (by netexplorer or anyone else), else None. Never
    imports it: an object cannot be a torch tensor before torch is loaded."""
    if _torch is not None:
        return _torch
    module = sys.modules.get("torch")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None  # absent, or another thread is still importing it
    return module
