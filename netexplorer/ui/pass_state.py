"""The state of the passes on the open model, in one place.

`PassState` is owned by the pass session (session.py), which alone writes it; the controls,
the tree's gradient column, the heatmaps, the details and the graph render from it and keep
no copy of their own. It holds:

- the phase: unavailable (no live model), idle, running an action, training, stopping (Pause
  was pressed, or another source opened, and the worker has not finished its step yet), or
  failed (the last action raised; idle otherwise). A phase that involves a worker lasts until
  the worker's thread has finished, not until it was asked to stop;
- the result of the last action that ran (forward, backward, zero grad, step, or the latest
  training step): its output, loss and notes. Reading the model's values (a snapshot) never
  replaces it;
- what the model holds now: optimizer steps taken, backward passes accumulated in `.grad`,
  whether `.grad` was zeroed, and every parameter's gradient norm. Snapshots update these.

Each part has its own signal, emitted only on a real change.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from .appearance import MUTED

if TYPE_CHECKING:  # torch loads when a live model is opened, not when the window starts
    from ..core.passes import PassResult

ACTION_WORDS = {
    "forward": "forward pass",
    "backward": "backward pass",
    "zero_grad": "zero grad",
    "step": "optimizer step",
    "train": "training",
    "edit": "edit",
    "init": "initialisation",
    "undo": "undo",
}


class Phase(Enum):
    UNAVAILABLE = "unavailable"
    IDLE = "idle"
    RUNNING = "running"
    TRAINING = "training"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class Holdings:
    """What the model holds now, as far as passes are concerned."""

    steps: int = 0
    backward_passes: int = 0  # accumulated in .grad since the last zero grad
    zeroed: bool = False  # .grad is None because Zero grad set it so
    grad_norms: Mapping[str, float | None] = field(default_factory=dict)
    undo: str = ""  # what Undo would undo ("" when nothing was edited)

    @property
    def has_grad(self) -> bool:
        return any(n is not None for n in self.grad_norms.values())

    @classmethod
    def of(cls, result: PassResult) -> Holdings:
        return cls(
            result.step,
            result.backward_passes,
            result.zeroed,
            dict(result.grad_norms),
            result.undo,
        )


class PassState(QObject):
    """Phase, last result and holdings of the open model's passes (read-only outside the
    session)."""

    phase_changed = Signal(object)  # Phase
    result_changed = Signal(object)  # PassResult of the last action that ran, or None
    holdings_changed = Signal(object)  # Holdings

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._phase = Phase.UNAVAILABLE
        self._action = ""
        self._error = ""
        self._reason = "nothing is open"
        self._input = ""
        self._result: PassResult | None = None
        self._holdings = Holdings()

    # -- reading ----------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def action(self) -> str:
        """The action running (RUNNING), or the one that failed (FAILED)."""
        return self._action

    @property
    def error(self) -> str:
        """Why the last action failed (FAILED only)."""
        return self._error

    @property
    def unavailable_reason(self) -> str:
        return self._reason

    @property
    def input_text(self) -> str:
        """The input batch passes run on, as Python (`torch.rand(size=(2, 4))`)."""
        return self._input

    @property
    def result(self) -> PassResult | None:
        return self._result

    @property
    def holdings(self) -> Holdings:
        return self._holdings

    @property
    def live(self) -> bool:
        return self._phase is not Phase.UNAVAILABLE

    @property
    def can_act(self) -> bool:
        """A new action or training may start."""
        return self._phase in (Phase.IDLE, Phase.FAILED)

    @property
    def training(self) -> bool:
        """A training loop runs (or is finishing its step after Pause)."""
        return self._phase in (Phase.TRAINING, Phase.STOPPING) and self._action == "train"

    # -- writing (the session only) ---------------------------------------------------------

    def reset(self, reason: str = "", input_text: str = "", phase: Phase | None = None) -> None:
        """Another model (or none): no result, fresh holdings; unavailable with `reason`."""
        self._reason = reason
        self._input = input_text
        self._set_result(None)
        self._set_holdings(Holdings())
        if phase is None:
            phase = Phase.UNAVAILABLE if reason else Phase.IDLE
        self.set_phase(phase)

    def set_phase(self, phase: Phase, action: str = "", error: str = "") -> None:
        if (phase, action, error) != (self._phase, self._action, self._error):
            self._phase, self._action, self._error = phase, action, error
            self.phase_changed.emit(phase)

    def set_input_text(self, text: str) -> None:
        if text != self._input:
            self._input = text
            self.phase_changed.emit(self._phase)  # the text shown with the phase changed

    def take_result(self, result: PassResult) -> None:
        """A result: of an action that ran (kept as the last result), or a snapshot (only
        what the model holds is taken from it)."""
        if result.input:
            self._input = result.input
        self._set_holdings(Holdings.of(result))  # first: whoever shows the result reads them
        if result.ran:
            self._set_result(result)

    def _set_result(self, result: PassResult | None) -> None:
        if result is not self._result:
            self._result = result
            self.result_changed.emit(result)

    def _set_holdings(self, holdings: Holdings) -> None:
        if holdings != self._holdings:
            self._holdings = holdings
            self.holdings_changed.emit(holdings)


def grad_status(holdings: Holdings) -> str:
    """What `.grad` holds, in the words of the notebook."""
    n = holdings.backward_passes
    if n:
        return f"{n} backward pass{'es' if n != 1 else ''} accumulated in .grad"
    if holdings.has_grad:
        return ".grad holds gradients computed outside the explorer"
    if holdings.zeroed:
        return ".grad is None (set so by Zero grad)"
    return ".grad is None (no backward pass yet)"


def status_html(state: PassState) -> str:
    """The pass controls' status line: the phase, then what the model holds and the last
    result's loss and note. Everything in it comes from `state`."""
    phase = state.phase
    if phase is Phase.UNAVAILABLE:
        return f"<span style='color:{MUTED}'>Passes: {html.escape(state.unavailable_reason)}</span>"
    holdings, result = state.holdings, state.result
    parts = [f"step {holdings.steps}", grad_status(holdings)]
    if result is not None and result.loss is not None:
        name = "the model's own" if result.loss_name == "model" else result.loss_name
        parts.append(f"loss ({name}) {_number(result.loss)}")
    line = " · ".join(parts)
    if phase is Phase.RUNNING:
        head = f"<b>Running the {ACTION_WORDS.get(state.action, state.action)}…</b>"
    elif phase is Phase.TRAINING:
        head = "<b>Training</b> (Pause: F9)"
    elif phase is Phase.STOPPING and state.action != "train":
        return "<b>Finishing the work on the model opened before…</b>"
    elif phase is Phase.STOPPING:
        head = "<b>Stopping</b> after the current step…"
    elif phase is Phase.IDLE and result is None and not holdings.backward_passes:
        input_text = html.escape(state.input_text) if state.input_text else "the input batch"
        return (
            f"Input <code>{input_text}</code> · {html.escape(grad_status(holdings))}. "
            "Press Forward (F5) or Backward (F6)."
        )
    else:
        head = ""
    text = f"{head} {html.escape(line)}" if head else html.escape(line)
    if phase is Phase.FAILED:
        text = f"<span style='color:#c0392b'><b>{html.escape(state.error)}</b></span><br>{text}"
    elif result is not None and phase is Phase.IDLE:
        if result.edit:
            text += f"<br><b>{html.escape(result.edit)}</b>"
        if result.note:
            text += f"<br><span style='color:#a60'>{html.escape(result.note)}</span>"
    return text


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)
