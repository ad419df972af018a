"""netexplorer: look inside PyTorch networks and checkpoints."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def show(net: Any, *, select: str | None = None, block: bool | None = None) -> Any:
    """Open the explorer on a live `nn.Module` (from a notebook or a script).

    In IPython or Jupyter it turns on the shell's Qt event loop if it is not on yet and
    returns at once: the window stays live beside the notebook, and changes made to the
    model from the notebook (an optimizer step, `.data` edits, a backward pass) show in it
    on their own. In a plain script it blocks until the window is closed (`block=False`:
    return at once; the window lives while something runs Qt's event loop).

    Returns an `Explorer` handle: `select(path)`, `refresh()`, `close()`, `tree`, `window`."""
    from .ui.app import show_module

    return show_module(net, select=select, block=block)
