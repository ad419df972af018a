"""The difference mode of the time slider: how the shown tensor changed since the previous
checkpoint, or since the first, as a heatmap with its own diverging scale (centred at zero,
symmetric over the change's own range: a change a thousand times smaller than the weights
still fills the colours).

The values of the slider's checkpoint are those the heatmap already shows; only the
checkpoint compared with is read, and the subtraction and the display array of a large
tensor are made in a worker.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..core.display import DisplayArray, display_array
from ..core.handles import TensorHandle
from .appearance import MUTED
from .document import Document, TensorData
from .titled_heatmap import TitledHeatmap
from .workers import GUI_THREAD_ELEMENTS, TaskRunner


@dataclass
class DifferenceData:
    """Wₜ − W_ref of one tensor, ready to draw."""

    path: str
    step: int  # the slider's position
    reference: int  # the position compared with
    values: np.ndarray  # the difference
    display: DisplayArray
    relative_change: float | None  # ‖Wₜ − W_ref‖ / ‖W_ref‖


def difference_data(
    path: str,
    step: int,
    reference: int,
    values: np.ndarray,
    reference_handle: TensorHandle,
    slice_index: tuple[int, ...] | None,
) -> DifferenceData:
    """Worker task: read the reference, subtract, make the display array. Raises ValueError
    when the shapes differ."""
    before = np.asarray(reference_handle.array())
    if before.shape != values.shape:
        raise ValueError(
            f"the shape changed from {list(before.shape)} to {list(values.shape)}: there is "
            "no difference to show"
        )
    wide = np.float64 in (before.dtype, values.dtype)
    kind = np.float64 if wide else np.float32
    if np.iscomplexobj(values) or np.iscomplexobj(before):
        diff = np.abs(values - before).astype(kind)
    else:
        diff = values.astype(kind) - before.astype(kind)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(before.astype(np.float64).reshape(-1)))
        change = float(np.linalg.norm(diff.astype(np.float64).reshape(-1)))
    relative = None
    if math.isfinite(norm) and math.isfinite(change):
        relative = change / norm if norm else (0.0 if change == 0 else math.inf)
    return DifferenceData(
        path, step, reference, diff, display_array(diff, slice_index=slice_index), relative
    )


class DifferenceView(QWidget):
    """The shown tensor's change since the previous (or first) checkpoint; hidden in the
    slider's values mode."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.heatmap = TitledHeatmap(self)
        self.heatmap.caption.setWordWrap(True)  # never wider than the half it is given
        self.heatmap.setToolTip("Wₜ − W_ref: how each element changed, on its own scale")
        # one line: the caption, or while the mouse is over a cell its change
        self.caption = ""
        self.heatmap.view.readout_changed.connect(self._on_readout)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heatmap, 1)
        self.data: DifferenceData | None = None
        self._runner = TaskRunner(self)
        timeline = document.timeline
        document.tensor_data_changed.connect(lambda _data: self.refresh())
        timeline.mode_changed.connect(lambda _mode: self.refresh())
        timeline.step_changed.connect(lambda _step: self._on_step_changed())
        timeline.run_changed.connect(lambda _run: self.refresh())
        self.refresh()

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def _on_step_changed(self) -> None:
        tensor = self.document.shown_tensor()
        if tensor is not None and not tensor.handle.has_values:
            self.refresh()  # no data will come: say why now

    def refresh(self) -> None:
        """Show the change of the shown tensor for the slider's position and mode."""
        timeline = self.document.timeline
        self._runner.cancel()
        shown = timeline.run is not None and timeline.mode != "values"
        self.setVisible(shown)
        if not shown:
            self.data = None
            self.heatmap.view.clear_tensor()
            return
        tensor = self.document.shown_tensor()
        data: TensorData | None = self.document.tensor_data
        step, reference = timeline.step, timeline.reference()
        caption = "<b>change</b>"
        if tensor is None:
            self._message(caption, "Select a tensor to see how it changed")
            return
        if reference is None:
            self._message(caption, "The first checkpoint: there is nothing before it")
            return
        if data is None or data.path != tensor.path:
            if not tensor.handle.has_values:
                self._message(caption, f"Not in {timeline.label()}")
            return  # its values are on their way: this runs again when they come
        handle = timeline.handle_at(tensor.path, reference)
        if handle is None or not handle.has_values:
            self._message(caption, f"{tensor.path} is not in {timeline.label(reference)}")
            return
        args = (tensor.path, step, reference, data.values, handle, self.document.slice_index)
        if data.values.size <= GUI_THREAD_ELEMENTS:
            try:
                self._show(difference_data(*args))
            except ValueError as exc:
                self._message(caption, str(exc))
        else:
            self.heatmap.caption.setText(f"{caption} — computing…")
            self._runner.run(
                difference_data,
                *args,
                on_result=self._show,
                on_error=lambda e: self._message(caption, str(e)),
            )

    def _show(self, diff: DifferenceData) -> None:
        timeline = self.document.timeline
        tensor = self.document.shown_tensor()
        if tensor is None or diff.path != tensor.path or diff.step != timeline.step:
            return
        if diff.reference != timeline.reference():
            return
        self.data = diff
        ratio = "" if diff.relative_change is None else f" · ‖ΔW‖/‖W‖ = {diff.relative_change:.3g}"
        run = timeline.run
        now, before = (
            (timeline.label(i) if run is None or i >= len(run) else run.checkpoints[i].label)
            for i in (diff.step, diff.reference)
        )
        self.caption = (
            f"<b>change</b> W at {html.escape(now)} − W at {html.escape(before)} "
            f"<span style='color:{MUTED}'>(own scale{ratio})</span>"
        )
        self.heatmap.show_values(self.caption, diff.values, diff.display)
        self.heatmap.setToolTip(
            f"How each element of {diff.path} changed from {before} to {now} "
            f"(since the {'previous' if timeline.mode == 'previous' else 'first'} "
            "checkpoint), on its own scale centred at zero"
        )

    def _on_readout(self, text: str) -> None:
        if self.data is not None:
            self.heatmap.caption.setText(
                f"<code>change {html.escape(text)}</code>" if text else self.caption
            )

    def _message(self, caption: str, text: str) -> None:
        self.data = None
        self.heatmap.show_message(caption, text)
