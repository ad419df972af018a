"""What the window says agrees with what it shows: every text about the passes comes from
the pass state, and no text claims something that is not so (issue 10's list)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PySide6.QtCore import Qt

from netexplorer.core.launch import LaunchRequest
from netexplorer.ui.app import window_for
from netexplorer.ui.tree_view import GRAD


def press(qtbot, w, name: str) -> None:
    button = getattr(w.controls, f"{name}_button")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)


def shown(qtbot, w):
    w.build_panels()
    w.show()
    qtbot.waitExposed(w)
    return w


def test_backward_n_on_the_command_line_shows_its_output_and_passes(qtbot):
    w = window_for(LaunchRequest(source="example:tied", backward=2, select="2.weight"))
    qtbot.addWidget(w)
    shown(qtbot, w)
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)
    status = w.controls.status.text()
    assert "2 backward passes accumulated in .grad" in status and "Press Forward" not in status
    assert w.controls.output.toPlainText().startswith("net(X) = tensor(")
    assert w.heatmap_panel.data.grad is not None
    grads = w.document.tree.module[2].weight.grad
    expected = torch.linalg.norm(grads).item()
    assert (
        w.tree_panel.model.index_for_path("2.weight").siblingAtColumn(GRAD).data()
        == f"{expected:.4g}"
    )


def test_the_tree_shows_the_norm_of_the_gradient_the_heatmap_shows(qtbot, window):
    w = shown(qtbot, window("example:tied", select="2.weight"))
    press(qtbot, w, "backward")
    for path in ("0.weight", "2.weight", "4.bias", "6.weight"):
        w.document.select(path)
        grad = w.heatmap_panel.data.grad
        assert grad is not None and w.heatmap_panel.grad.showing_values
        column = w.tree_panel.model.index_for_path(path).siblingAtColumn(GRAD).data()
        assert column == f"{float(np.linalg.norm(grad.astype(np.float64))):.4g}"


def test_after_zero_grad_the_details_say_why_grad_is_none(qtbot, window):
    w = shown(qtbot, window("example:tied", select="2.weight"))
    press(qtbot, w, "backward")
    press(qtbot, w, "zero_grad")
    facts = w.details
    qtbot.waitUntil(  # statistics refresh at most 4 times a second
        lambda: (
            facts._grad_label is not None
            and facts._grad_label.text() == "None (set so by Zero grad)"
        )
    )
    assert "Zero grad" in w.heatmap_panel.grad.message.text()
    assert ".grad is None (set so by Zero grad)" in w.controls.status.text()


def test_a_new_model_gets_a_fresh_loss_plot(qtbot, window):
    w = shown(qtbot, window("example:tied", select="2.weight"))
    for _ in range(3):
        press(qtbot, w, "backward")
        press(qtbot, w, "step")
    assert len(w.controls._losses) >= 3
    w.controls.curve_plot.getViewBox().setRange(xRange=(100, 200), yRange=(5, 6))  # zoomed away
    w.open_source_now("example:mlp")
    box = w.controls.curve_plot.getViewBox()
    assert w.controls._losses == [] and all(box.autoRangeEnabled())
    press(qtbot, w, "backward")
    qtbot.waitUntil(lambda: len(w.controls._losses) == 1)
    loss = w.controls._losses[0]

    def in_view() -> bool:  # the new point, not the old model's range
        (x_low, x_high), (y_low, y_high) = box.viewRange()
        return x_low <= 0 <= x_high and y_low <= loss <= y_high and x_high < 50

    qtbot.waitUntil(in_view)


def test_an_exact_zero_mismatch_is_not_called_rounding(qtbot, window):
    w = shown(qtbot, window("example:tied", select="2.weight"))
    press(qtbot, w, "backward")
    error = w.heatmap_panel.data.contribution_error
    text = w.heatmap_panel.uses_label.text()
    if error == 0:
        assert "= 0 (exactly)" in text and "rounding" not in text
    else:
        assert math.isfinite(error) and "(float rounding)" in text


def test_no_tie_note_where_there_are_no_ties(qtbot, window):
    w = shown(qtbot, window("example:mlp", select="0"))
    facts = w.details.fact_texts()
    assert "tied" not in facts["Parameters"]
    assert "ties counted once" not in w.details.source.text()
    w.open_source_now("example:tied")
    w.document.select("2")
    facts = w.details.fact_texts()
    assert "a tied tensor counted once" in facts["Parameters"]


def test_strange_tensors_say_truthfully_what_is_shown(qtbot, window, tmp_path):
    """Opened from a file as a user does, each strange tensor's panels say what they show:
    why there are no values (not 'a meta tensor' for everything), what the statistics are of,
    and a histogram of values near float64's limit drawn on a scaled axis."""
    path = tmp_path / "strange.pt"
    torch.save(
        {
            "many_dims": torch.zeros([1] * 65),
            "complex": torch.tensor([3 + 4j, -1j, 2.0]),
            "huge": torch.tensor([1.7e308, -1.7e308, 1.0, 0.0], dtype=torch.float64),
        },
        path,
    )
    w = window(str(path))
    w.show()
    qtbot.waitExposed(w)
    details, heatmap = w.details, w.heatmap_panel

    w.document.select("many_dims")
    assert "65 dimensions" in details.stats_note.text()
    assert "meta" not in details.stats_note.text()
    assert "65 dimensions" in heatmap.title.text()

    w.document.select("complex")
    qtbot.waitUntil(lambda: details.stats is not None, timeout=10_000)
    assert "magnitudes" in details.stats_note.text()
    assert details.stat_labels["max"].text().startswith("5")  # |3 + 4j|

    w.document.select("huge")
    qtbot.waitUntil(lambda: details.stats is not None, timeout=10_000)
    (curve,) = details.histogram.getPlotItem().listDataItems()
    xs, _ = curve.getData()
    assert np.all(np.isfinite(xs)) and np.max(np.abs(xs)) < 10  # drawn, in units of 1e308
    assert "1e308" in details.histogram.getPlotItem().getAxis("bottom").labelText
