"""The same time slider rewinds a live model: snapshots taken while it trains in the window,
in a buffer bounded in bytes; an earlier snapshot is shown while the model trains on, and the
slider's end is the model as it is now."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import Qt

from netexplorer.core.live_run import SnapshotBuffer, take_snapshot


@pytest.fixture
def live(qtbot, window):
    w = window("example:tied", select="2.weight")
    w.show()
    qtbot.waitExposed(w)
    w.wait_idle()
    return w


def test_training_keeps_a_bounded_history_the_slider_rewinds(qtbot, live, press):
    w = live
    session, timeline = w.document.session, w.document.timeline
    module = w.document.tree.module
    start = {k: v.detach().clone().numpy() for k, v in module.state_dict().items()}
    one = take_snapshot(w.document.tree, 0).nbytes
    session.history = SnapshotBuffer(every=3, max_bytes=6 * one)
    assert timeline.run is None and not w.timeline_panel.isVisible()
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_F9)  # Train
    qtbot.waitUntil(lambda: session.state.holdings.steps > 200, timeout=30_000)
    qtbot.waitUntil(lambda: timeline.run is not None and len(timeline.run) >= 4, timeout=10_000)
    assert session.history.nbytes <= 6 * one  # bounded, however long it trains
    assert session.history.every > 3  # it thinned out and takes snapshots less often
    kept = [s.step for s in session.history.snapshots]
    assert kept[0] == 0 and all(b - a >= 3 for a, b in itertools.pairwise(kept))
    panel = w.timeline_panel
    assert panel.isVisible() and timeline.live and timeline.step == timeline.last  # "now"
    # rewind to the first snapshot while the model trains on
    panel.slider.setFocus()
    press(w, Qt.Key.Key_Home)
    assert timeline.rewound and timeline.step == 0
    qtbot.waitUntil(
        lambda: (
            w.heatmap_panel.data is not None
            and np.array_equal(w.heatmap_panel.data.values, start["2.weight"])
        )
    )
    steps = session.state.holdings.steps
    qtbot.waitUntil(lambda: session.state.holdings.steps > steps + 50, timeout=20_000)
    assert np.array_equal(w.heatmap_panel.data.values, start["2.weight"])  # still the snapshot
    assert not w.heatmap_panel.grad.isVisible()  # a snapshot holds values only
    assert "an earlier snapshot" in panel.note.text()
    press(w, Qt.Key.Key_F9)  # Pause
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)
    # stopped: the snapshots' movement is measured at once (not seconds later)

    def measured() -> bool:
        table, run = timeline.movement, timeline.run
        return table is not None and len(table.tensors["2.weight"].present) == len(run)

    qtbot.waitUntil(measured, timeout=10_000)
    run = timeline.run
    a, b = (run.handle("2.weight", i).array().astype(np.float64) for i in (0, 1))
    expected = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert timeline.movement.tensors["2.weight"].relative_change[1] == pytest.approx(expected)
    panel.slider.setFocus()
    press(w, Qt.Key.Key_End)  # now: the live model again
    assert not timeline.rewound
    live_weight = module.state_dict()["2.weight"].detach().numpy()
    qtbot.waitUntil(
        lambda: (
            w.heatmap_panel.data is not None
            and np.array_equal(w.heatmap_panel.data.values, live_weight)
        )
    )
    assert not np.array_equal(live_weight, start["2.weight"])
    assert "now (the live model)" in panel.position_label.text()


def test_another_model_forgets_the_history(qtbot, live, press):
    w = live
    session = w.document.session
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: w.document.timeline.run is not None, timeout=20_000)
    press(w, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)
    w.open_source_now("example:mlp")
    assert session.history.snapshots == [] and w.document.timeline.run is None
    assert not w.timeline_panel.isVisible()
