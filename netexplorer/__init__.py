"""netexplorer: look inside PyTorch networks and checkpoints."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def show(net: Any, *, select: str | None = None, block: bool | None = None) -> Any:
    """Open the explorer on a live `nn.Module` (from a notebook or a script).

    In a notebook running Qt's event loop (`%gui qt`) the window stays open beside the
    notebook and this returns at once; otherwise it blocks until the window is closed.
    Returns the window."""
    from .ui.app import show_module

    return show_module(net, select=select, block=block)
