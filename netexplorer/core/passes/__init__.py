"""Passes on a live model: forward, backward, zero grad, optimizer steps, training, and the
gradient that arrives through each use of a shared parameter.

engine.py runs them; config.py is what they run with; results.py what they hand back;
parameters.py which tensors the model has at which paths; losses.py and input_guess.py the
loss and the input batch; diagnosis.py why a pass failed."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..contributions import Contribution
    from .config import DEFAULT_LR, LOSSES, OPTIMIZERS, PassConfig
    from .engine import PassEngine, meta_problem, prepare, warm_up
    from .input_guess import infer_input_spec
    from .results import ACTIONS, PassResult, WatchedTensor

# Imported when first used (PEP 562): the engine imports torch, and a window that opens a
# checkpoint imports this package (its config, its initialisation names) long before any
# model is live
_WHERE = {
    "Contribution": "..contributions",
    "DEFAULT_LR": ".config",
    "LOSSES": ".config",
    "OPTIMIZERS": ".config",
    "PassConfig": ".config",
    "PassEngine": ".engine",
    "meta_problem": ".engine",
    "prepare": ".engine",
    "warm_up": ".engine",
    "infer_input_spec": ".input_guess",
    "ACTIONS": ".results",
    "PassResult": ".results",
    "WatchedTensor": ".results",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(where, __name__), name)


__all__ = [
    "ACTIONS",
    "DEFAULT_LR",
    "LOSSES",
    "OPTIMIZERS",
    "Contribution",
    "PassConfig",
    "PassEngine",
    "PassResult",
    "WatchedTensor",
    "infer_input_spec",
    "meta_problem",
    "prepare",
    "warm_up",
]
