"""What a pass engine hands back: plain data (numpy arrays, floats, strings) that may cross
threads, because the window runs passes in a worker and shows their results in the GUI
thread."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..contributions import Contribution, Use
from ..display import sum_mismatch

ACTIONS = ("forward", "backward", "zero_grad", "step", "train", "edit", "init", "undo")


@dataclass
class WatchedTensor:
    """A watched parameter or buffer after a pass: its values, its `.grad` (None before any
    backward, like the notebook's `net[2].weight.grad`, and always None for a buffer) and
    its contributions (None if used once)."""

    path: str
    values: np.ndarray
    grad: np.ndarray | None
    contributions: list[Contribution] | None
    kind: str = "parameter"  # or "buffer"

    @property
    def contribution_error(self) -> float | None:
        """The largest |sum of contributions - grad|: float rounding only, if all is well."""
        if self.grad is None or not self.contributions:
            return None
        return sum_mismatch([c.values for c in self.contributions], self.grad)


@dataclass
class PassResult:
    """What one engine action left behind (or, for a "snapshot", what the model holds now)."""

    action: str  # one of ACTIONS, or "snapshot" (nothing was run)
    step: int  # optimizer steps taken so far (this one included)
    backward_passes: int  # backward passes accumulated in .grad since the last zero grad
    loss: float | None = None
    loss_name: str = ""
    output: np.ndarray | None = None  # the first output tensor, like the notebook's net(X)
    output_note: str = ""  # how the output was taken from a tuple, dict or model-output object
    input: str = ""  # the input batch as Python, e.g. torch.rand(size=(2, 4))
    grad_norms: dict[str, float | None] = field(default_factory=dict)  # every parameter path
    watched: dict[str, WatchedTensor] = field(default_factory=dict)
    uses: dict[str, list[Use]] = field(default_factory=dict)  # path -> (site, call), 2+ uses
    activations: dict[Use, np.ndarray] | None = None  # (site, call) -> that call's output
    note: str = ""  # what the user should know (no gradient yet, contributions incomplete)
    zeroed: bool = False  # .grad is None because Zero grad set it so (not: never computed)
    edit: str = ""  # an edit, init or undo: what changed (net[2].weight.data[0, 0] = 100)
    undo: str = ""  # what Undo would undo now ("" when nothing)
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        """An action ran (a snapshot only looked)."""
        return self.action != "snapshot"
