"""Passes on a live model: forward, backward, zero grad, optimizer steps, training, and the
gradient that arrives through each use of a shared parameter.

engine.py runs them; config.py is what they run with; results.py what they hand back;
parameters.py which tensors the model has at which paths; losses.py and input_guess.py the
loss and the input batch; diagnosis.py why a pass failed."""

from ..contributions import Contribution
from .config import DEFAULT_LR, LOSSES, OPTIMIZERS, PassConfig
from .engine import PassEngine, meta_problem, warm_up
from .input_guess import infer_input_spec
from .results import ACTIONS, PassResult, WatchedTensor

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
    "warm_up",
]
