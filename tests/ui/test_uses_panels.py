"""The per-use gradient panels of a shared tensor, measured on screen after pressing
Backward in a window already up: equal space for every use and their sum, one colour scale,
readable up to eight panels (two rows), scrolling beyond."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from netexplorer.ui.uses_view import grid_shape


def backward_in_a_window_already_up(qtbot, window, spec: str, select: str, size):
    w = window(spec, select=select)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    w.wait_idle()  # the window is up and idle before anything is pressed
    qtbot.mouseClick(w.controls.backward_button, Qt.MouseButton.LeftButton)
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)
    qtbot.waitUntil(lambda: bool(w.heatmap_panel.uses_box.shown), timeout=5_000)
    w.wait_idle()

    def geometry():
        return [p.geometry().getRect() for p in w.heatmap_panel.uses_box.shown]

    settled = []  # what a person sees: the panels once their layout has stopped changing

    def stable() -> bool:
        settled.append(geometry())
        return len(settled) > 1 and settled[-1] == settled[-2]

    qtbot.waitUntil(stable, timeout=5_000)
    return w


def widths(w) -> list[int]:
    return [p.width() for p in w.heatmap_panel.uses_box.shown]


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_the_tied_nets_uses_and_their_sum_share_the_row_evenly(qtbot, window, size):
    w = backward_in_a_window_already_up(qtbot, window, "example:tied", "2.weight", size)
    shown = w.heatmap_panel.uses_box.shown
    assert [p.caption.text() for p in shown] == [
        "via <b>net[2]</b>",
        "via <b>net[4]</b>",
        "<b>sum of uses</b> = grad",
    ]
    row = w.heatmap_panel.uses_box.viewport().width()
    assert max(widths(w)) - min(widths(w)) <= 2
    assert min(widths(w)) >= row / 3 - 12  # a third each, less the spacing
    levels = {p.view.levels for p in shown}
    assert len(levels) == 1  # one colour scale for the uses and their sum
    w.heatmap_panel.window().resize(size[0] - 300, size[1] - 100)  # and after a resize
    qtbot.waitUntil(lambda: w.size().width() == size[0] - 300)
    assert max(widths(w)) - min(widths(w)) <= 2


def test_the_rnns_five_steps_and_their_sum_make_two_even_rows(qtbot, window):
    w = backward_in_a_window_already_up(
        qtbot, window, "example:rnn", "cell.weight_hh", (1920, 1080)
    )
    shown = w.heatmap_panel.uses_box.shown
    assert len(shown) == 6
    assert max(widths(w)) - min(widths(w)) <= 2
    assert len({p.height() for p in shown}) == 1
    rows = {p.y() for p in shown}
    assert len(rows) == 2
    total = np.sum([c.values for c in w.heatmap_panel.data.contributions], axis=0)
    np.testing.assert_allclose(shown[-1].view.image.image, total, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("count", "shape"),
    [(1, (1, 1)), (3, (1, 3)), (4, (1, 4)), (5, (2, 3)), (6, (2, 3)), (8, (2, 4)), (9, (3, 3))],
)
def test_grid_shapes(count, shape):
    assert grid_shape(count) == shape


def test_beyond_eight_panels_they_stay_readable_and_scroll(qtbot):
    from netexplorer.core.display import display_array
    from netexplorer.ui.uses_view import MIN_PANEL, UsesView

    view = UsesView()
    qtbot.addWidget(view)
    view.resize(600, 300)
    view.show()
    values = np.arange(16, dtype=np.float32).reshape(4, 4)
    panels = [(f"use {i}", values, display_array(values)) for i in range(12)]
    view.show_panels(panels, (-16.0, 16.0))
    qtbot.waitUntil(lambda: all(p.width() >= MIN_PANEL[0] for p in view.shown))
    qtbot.waitUntil(lambda: view.verticalScrollBar().maximum() > 0)  # it scrolls
