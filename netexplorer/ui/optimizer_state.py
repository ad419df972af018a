"""Optimizer state beside a parameter's value: for a training checkpoint whose optimizer
state was matched to its parameters (`tree.optimizer_state`), the shown parameter's state
tensors (Adam's `exp_avg` and `exp_avg_sq`, SGD's `momentum_buffer`, ...) as small heatmaps,
one per state tensor, each on its own scale; scalar state (`step`) in the heading. Hidden
when the shown tensor has no state. A tied parameter's second path shows the state of the
one tensor both paths reach.
"""

from __future__ import annotations

import html
import math

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.display import DisplayArray, display_array
from ..core.handles import TensorHandle
from ..core.tree import ModuleTree, TensorNode
from .appearance import MUTED
from .document import Document
from .heatmap import HeatmapView, format_value
from .workers import GUI_THREAD_ELEMENTS, TaskRunner

# What each common state tensor is, in a few words (PyTorch's names)
MEANINGS = {
    "exp_avg": "running mean of the gradient (Adam's 1st moment)",
    "exp_avg_sq": "running mean of grad² (Adam's 2nd moment, ≥ 0)",
    "max_exp_avg_sq": "largest exp_avg_sq so far (AMSGrad, ≥ 0)",
    "momentum_buffer": "momentum: running sum of gradients (SGD)",
    "square_avg": "running mean of grad² (RMSprop, ≥ 0)",
    "grad_avg": "running mean of the gradient (RMSprop, centered)",
    "acc_delta": "running mean of squared updates (Adadelta)",
    "sum": "sum of squared gradients (Adagrad, ≥ 0)",
    "exp_inf": "running max of |grad| (Adamax)",
    "mu_product": "product of momentum factors (NAdam)",
}


def optimizer_state_of(tree: ModuleTree, path: str) -> tuple[str, dict[str, TensorHandle]]:
    """The optimizer state of the tensor at `path` and the path it is stored under (a tie
    partner's for the second path of a tied tensor); ("", {}) when there is none."""
    state = tree.optimizer_state
    if path in state:
        return path, state[path]
    for partner in tree.tie_partners(path):
        if partner in state:
            return partner, state[partner]
    return "", {}


def read_state(
    key: tuple[str, int], handles: dict[str, TensorHandle]
) -> tuple[tuple[str, int], dict[str, np.ndarray], dict[str, DisplayArray]]:
    """Read state tensors and make their display arrays (in a worker when large)."""
    values = {name: np.asarray(h.array()) for name, h in handles.items()}
    displays = {name: display_array(v) for name, v in values.items() if v.size > 1}
    return key, values, displays


class StateHeatmap(QWidget):
    """One state tensor: a caption above a compact heatmap."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel(self)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        self.view = HeatmapView(self, compact=True)
        self.view.setMinimumSize(120, 80)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)


class OptimizerStatePanel(QWidget):
    """The shown parameter's optimizer state as heatmaps (hidden when there is none)."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.heading = QLabel(self)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.heading.setWordWrap(True)
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.readout = QLabel(" ", self)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.readout.font()
        font.setFamily("monospace")
        self.readout.setFont(font)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(2, 2, 2, 2)
        self._layout.addWidget(self.heading)
        self._layout.addWidget(self.readout)
        self.views: dict[str, StateHeatmap] = {}  # by state name, reused across selections
        self.values: dict[str, np.ndarray] = {}  # what the views show
        self.shown_path: str | None = None  # the tensor whose state is shown
        self._request = 0
        self._stored_under = ""
        self._runner = TaskRunner(self)
        self.setToolTip("The optimizer's state for this parameter, saved in the checkpoint")
        self.setVisible(False)
        document.tree_changed.connect(lambda _tree: self._on_selection_changed(None))
        document.selection_changed.connect(self._on_selection_changed)
        document.timeline.step_changed.connect(self._on_selection_changed)  # a run's checkpoint
        self._on_selection_changed(document.selected)  # made late: catch up with the document

    @property
    def busy(self) -> bool:
        return self._runner.pending

    def _on_selection_changed(self, _path: str | None) -> None:
        self._runner.cancel()
        self._request += 1
        tree = self.document.tree
        tensor = self.document.shown_tensor()
        if tree is None or tensor is None or not tree.optimizer_state:
            self._hide()
            return
        stored_under, handles = optimizer_state_of(tree, tensor.path)
        handles = {n: h for n, h in handles.items() if h.has_values}
        if not handles:
            self._hide()
            return
        key = (tensor.path, self._request)
        self._stored_under = stored_under
        if sum(math.prod(h.shape) for h in handles.values()) <= GUI_THREAD_ELEMENTS:
            self._on_read(read_state(key, handles))
        else:
            self.heading.setText(f"<b>Optimizer state</b> — reading {len(handles)} tensors…")
            self._runner.run(
                read_state,
                key,
                handles,
                on_result=self._on_read,
                on_error=lambda e: self.heading.setText(f"Cannot read the optimizer state: {e}"),
            )

    def _on_read(self, result) -> None:
        (path, request), values, displays = result
        tensor = self.document.shown_tensor()
        if request != self._request or tensor is None or tensor.path != path:
            return
        self.shown_path = path
        self.values = {name: values[name] for name in displays}
        self.heading.setText(self._heading(tensor, values, displays))
        for name, display in displays.items():
            view = self.views.get(name)
            if view is None:
                view = StateHeatmap(self)
                view.view.readout_changed.connect(
                    lambda text, n=name: self.readout.setText(f"{n}{text}" if text else " ")
                )
                self.views[name] = view
                self._layout.insertWidget(self._layout.count() - 1, view, 1)
            meaning = MEANINGS.get(name, "")
            view.caption.setText(
                f"<b>{html.escape(name)}</b>"
                + (
                    f"<br><span style='color:{MUTED}'>{html.escape(meaning)}</span>"
                    if meaning
                    else ""
                )
            )
            view.view.set_tensor(values[name], display)
            view.setToolTip(f"optimizer state {name!r} of {path}, {display.description}")
            view.setVisible(True)
        for name, view in self.views.items():
            if name not in displays:
                view.setVisible(False)
                view.view.clear_tensor()
        self.setVisible(True)

    def _heading(
        self,
        tensor: TensorNode,
        values: dict[str, np.ndarray],
        displays: dict[str, DisplayArray],
    ) -> str:
        scalars = [
            f"{html.escape(name)} = {format_value(float(v.reshape(-1)[0]))}"
            for name, v in values.items()
            if name not in displays and v.size == 1
        ]
        text = "<b>Optimizer state</b>"
        if scalars:
            text += " · " + ", ".join(scalars)
        if self._stored_under and self._stored_under != tensor.path:
            text += (
                f"<br><span style='color:{MUTED}'>of the tied tensor "
                f"{html.escape(self._stored_under)}</span>"
            )
        return text

    def _hide(self) -> None:
        self.shown_path = None
        self.values = {}
        self.setVisible(False)
        for view in self.views.values():
            view.view.clear_tensor()
