"""A training run in a window on screen: the time slider (dragged, clicked, its keys and the
window's) drives the heatmap, statistics, optimizer state and the difference heatmap; the
tree's Moved column shows and sorts how far each tensor moved; a key missing from a
checkpoint says when it appears. Runs are written at test time by a tiny training loop."""

from __future__ import annotations

import numpy as np
import pytest
import training_runs as tr
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyle, QStyleOptionSlider

from netexplorer.ui.movement_column import MOVEMENT_ROLE
from netexplorer.ui.tree_view import MOVED, PATH_ROLE

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture(scope="module")
def saved():
    return tr.train()


@pytest.fixture
def shown_run(qtbot, window, saved, tmp_path):
    """A window on a run of Hugging Face checkpoint folders, shown, its movement measured."""

    def make(writer=tr.write_hf_checkpoints, select="body.0.weight"):
        folder = tmp_path / "run"
        writer(folder, saved)
        w = window(str(folder), select=select)
        w.show()
        qtbot.waitExposed(w)
        qtbot.waitUntil(lambda: w.timeline_panel.movement.status == "done", timeout=20_000)
        return w

    return make


def heatmap_values(w) -> np.ndarray:
    panel = w.heatmap_panel
    return panel.data.values if panel.data is not None else None


def wait_heatmap(qtbot, w, path: str, expected: np.ndarray) -> None:
    """Until the heatmap shows `path` with these values, on its view too."""

    def shown() -> bool:
        panel = w.heatmap_panel
        data = panel.data
        return (
            data is not None
            and data.path == path
            and panel.view.display is data.display
            and np.array_equal(data.values, expected)
        )

    qtbot.waitUntil(shown, timeout=10_000)


def drag_slider(slider, value: int) -> None:
    """Press the slider's handle and drag it to where `value` is, as a mouse does."""
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    style = slider.style()
    handle = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, slider
    )
    groove = style.subControlRect(
        QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, slider
    )
    span = groove.width() - handle.width()
    x = groove.x() + handle.width() // 2
    x += QStyle.sliderPositionFromValue(slider.minimum(), slider.maximum(), value, span)
    start = handle.center()
    QTest.mousePress(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):  # a few moves on the way, as a hand makes them
        point = QPoint(start.x() + (x - start.x()) * step // 5, start.y())
        QTest.mouseMove(slider, point)
    QTest.mouseRelease(
        slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, start.y())
    )


def test_the_slider_drives_the_heatmap(qtbot, shown_run, press, saved):
    w = shown_run()
    panel = w.timeline_panel
    slider = panel.slider
    assert panel.isVisible() and slider.maximum() == len(saved) - 1
    assert slider.value() == len(saved) - 1  # opens at the latest checkpoint
    wait_heatmap(qtbot, w, "body.0.weight", saved[-1].state["body.0.weight"].numpy())
    drag_slider(slider, 1)
    assert slider.value() == 1 and w.document.timeline.step == 1
    wait_heatmap(qtbot, w, "body.0.weight", saved[1].state["body.0.weight"].numpy())
    assert "step 6 · checkpoint-6 (2 of 4)" in panel.position_label.text()
    slider.setFocus()
    press(w, Qt.Key.Key_Home)  # the slider's own keys
    wait_heatmap(qtbot, w, "body.0.weight", saved[0].state["body.0.weight"].numpy())
    press(w, Qt.Key.Key_Right)
    press(w, Qt.Key.Key_Right)
    wait_heatmap(qtbot, w, "body.0.weight", saved[2].state["body.0.weight"].numpy())
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_BracketRight)  # the window's: ] the next checkpoint
    wait_heatmap(qtbot, w, "body.0.weight", saved[3].state["body.0.weight"].numpy())
    press(w, Qt.Key.Key_Comma)  # , the previous one
    wait_heatmap(qtbot, w, "body.0.weight", saved[2].state["body.0.weight"].numpy())
    assert slider.value() == 2
    qtbot.mouseClick(panel.previous_button, Qt.MouseButton.LeftButton)
    wait_heatmap(qtbot, w, "body.0.weight", saved[1].state["body.0.weight"].numpy())
    # the statistics follow
    qtbot.waitUntil(lambda: w.details.stats is not None)
    expected = float(saved[1].state["body.0.weight"].double().norm())
    assert w.details.stats.norm == pytest.approx(expected, rel=1e-6)


def test_another_tensor_is_shown_at_the_same_checkpoint(qtbot, shown_run, press, saved):
    w = shown_run()
    w.document.timeline.set_step(2)
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)  # the next tensor
    assert w.document.selected == "body.0.bias"
    wait_heatmap(qtbot, w, "body.0.bias", saved[2].state["body.0.bias"].numpy())


def test_a_key_missing_from_a_checkpoint_says_when_it_appears(qtbot, shown_run, press, saved):
    w = shown_run(select="head.weight")
    wait_heatmap(qtbot, w, "head.weight", saved[-1].state["head.weight"].numpy())
    w.timeline_panel.slider.setFocus()
    press(w, Qt.Key.Key_Home)
    title = w.heatmap_panel.title.text()
    qtbot.waitUntil(lambda: "is not in checkpoint-3 (step 3)" in w.heatmap_panel.title.text())
    title = w.heatmap_panel.title.text()
    assert title.endswith("it appears at step 6")
    assert not w.heatmap_panel.value.showing_values
    assert w.details.stats_note.text().endswith("it appears at step 6")
    press(w, Qt.Key.Key_Right)
    wait_heatmap(qtbot, w, "head.weight", saved[1].state["head.weight"].numpy())
    assert w.heatmap_panel.value.showing_values


def test_difference_mode_shows_the_change_on_its_own_scale(qtbot, shown_run, press, saved):
    w = shown_run(select="body.2.weight")
    panel = w.timeline_panel
    assert not panel.difference.isVisible()
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_D, CTRL)  # values -> change since the previous checkpoint
    assert panel.mode_box.currentData() == "previous"
    expected = (saved[3].state["body.2.weight"] - saved[2].state["body.2.weight"]).numpy()
    qtbot.waitUntil(lambda: panel.difference.data is not None)
    np.testing.assert_allclose(panel.difference.data.values, expected, rtol=1e-6, atol=1e-7)
    view = panel.difference.heatmap.view
    assert panel.difference.isVisible() and view.display is panel.difference.data.display
    m = float(np.abs(expected).max())
    assert view.levels == pytest.approx((-m, m), rel=1e-6)  # its own scale, not the weights'
    assert view.levels[1] < float(np.abs(saved[3].state["body.2.weight"].numpy()).max())
    press(w, Qt.Key.Key_BracketLeft)  # the change follows the slider
    expected = (saved[2].state["body.2.weight"] - saved[1].state["body.2.weight"]).numpy()
    qtbot.waitUntil(lambda: panel.difference.data is not None and panel.difference.data.step == 2)
    np.testing.assert_allclose(panel.difference.data.values, expected, rtol=1e-6, atol=1e-7)
    press(w, Qt.Key.Key_D, CTRL)  # change since the first checkpoint
    expected = (saved[2].state["body.2.weight"] - saved[0].state["body.2.weight"]).numpy()
    qtbot.waitUntil(
        lambda: panel.difference.data is not None and panel.difference.data.reference == 0
    )
    np.testing.assert_allclose(panel.difference.data.values, expected, rtol=1e-6, atol=1e-7)
    assert "W at step 9 − W at step 3" in panel.difference.heatmap.caption.text()
    press(w, Qt.Key.Key_D, CTRL)  # back to values
    assert not panel.difference.isVisible()


def test_the_moved_column_shows_and_sorts_by_movement(qtbot, shown_run, saved):
    w = shown_run()
    tree = w.tree_panel
    assert not tree.view.isColumnHidden(MOVED)
    source = tree.model.index_for_path("body.2.weight").siblingAtColumn(MOVED)
    line = source.data(MOVEMENT_ROLE)
    expected = [
        tr.relative_change(saved[t - 1].state["body.2.weight"], saved[t].state["body.2.weight"])
        for t in range(1, len(saved))
    ]
    assert line.values[0] is None and list(line.values[1:]) == pytest.approx(expected, rel=1e-5)
    assert line.total == pytest.approx(sum(expected), rel=1e-5)
    assert "sum over the run" in source.data(Qt.ItemDataRole.ToolTipRole)
    head = tree.model.index_for_path("head.bias").siblingAtColumn(MOVED).data(MOVEMENT_ROLE)
    assert head.present == (False, True, True, True)
    # a click on the header sorts by total movement, most first; again: least first
    w.document.select("body.2.weight")
    qtbot.waitUntil(lambda: tree.view.currentIndex().data(PATH_ROLE) == "body.2.weight")
    header = tree.view.header()
    x = header.sectionViewportPosition(MOVED) + header.sectionSize(MOVED) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    # sorting moves rows, not the selection, nor what is expanded (a layout change)
    current = tree.view.currentIndex()
    assert current.data(PATH_ROLE) == "body.2.weight" and current.row() == 1
    assert tree.view.isExpanded(current.parent())
    assert tree.view.visualRect(current).isValid()

    def child_paths(parent_path: str) -> list[str]:
        parent = tree.proxy.mapFromSource(tree.model.index_for_path(parent_path))
        return [
            tree.proxy.index(row, 0, parent).data(PATH_ROLE)
            for row in range(tree.proxy.rowCount(parent))
        ]

    def totals(paths):
        return [
            tree.model.index_for_path(p).siblingAtColumn(MOVED).data(MOVEMENT_ROLE).total
            for p in paths
        ]

    children = child_paths("body.2")
    assert totals(children) == sorted(totals(children), reverse=True)
    assert children == ["body.2.bias", "body.2.weight"]  # the bias moved most, relatively
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert child_paths("body.2") == ["body.2.weight", "body.2.bias"]
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert child_paths("body.2") == ["body.2.weight", "body.2.bias"]  # the model's order
    assert w.timeline_panel.movement.sort_order is None


def test_the_step_chart_marks_the_slider_and_moves_it(qtbot, shown_run, saved):
    w = shown_run()
    chart = w.timeline_panel.chart
    qtbot.waitUntil(lambda: chart.row is not None and chart.row.path == "body.0.weight")
    norms = chart.norm_curve.getData()[1]
    expected = [float(s.state["body.0.weight"].double().norm()) for s in saved]
    assert list(norms) == pytest.approx(expected, rel=1e-6)
    assert chart.marker.value() == 12  # global step of the latest checkpoint
    view = chart.plot.getPlotItem().getViewBox()
    scene_point = view.mapViewToScene(QPointF(6, expected[1]))  # the point of step 6
    where = chart.plot.mapFromScene(scene_point)
    qtbot.mouseClick(chart.plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.waitUntil(lambda: w.document.timeline.step == 1)
    assert chart.marker.value() == 6
    wait_heatmap(qtbot, w, "body.0.weight", saved[1].state["body.0.weight"].numpy())


def test_play_goes_through_the_run_and_stops_at_its_end(qtbot, shown_run, press, saved):
    w = shown_run()
    timeline = w.document.timeline
    seen = []
    timeline.step_changed.connect(seen.append)
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_F10)  # at the end: plays from the first checkpoint
    assert timeline.playing and w.timeline_panel.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: not timeline.playing, timeout=20_000)
    assert seen == [0, 1, 2, 3]
    assert w.timeline_panel.play_button.text() == "Play"
    wait_heatmap(qtbot, w, "body.0.weight", saved[3].state["body.0.weight"].numpy())


def test_optimizer_state_follows_the_slider(qtbot, shown_run, press, saved):
    w = shown_run(writer=tr.write_torch_per_epoch)
    from netexplorer.ui.optimizer_state import OptimizerStatePanel

    state_panel = w.heatmap_panel.findChild(OptimizerStatePanel)
    qtbot.waitUntil(lambda: state_panel.shown_path == "body.0.weight")
    np.testing.assert_array_equal(
        state_panel.values["exp_avg"], saved[3].optimizer["state"][0]["exp_avg"].numpy()
    )
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_BracketLeft)
    press(w, Qt.Key.Key_BracketLeft)
    qtbot.waitUntil(
        lambda: np.array_equal(
            state_panel.values.get("exp_avg"), saved[1].optimizer["state"][0]["exp_avg"].numpy()
        )
    )


def test_steps_next_to_the_shown_one_are_read_ahead(qtbot, shown_run, press, saved):
    w = shown_run()
    prefetch = w.document.prefetch
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_BracketLeft)
    wait_heatmap(qtbot, w, "body.0.weight", saved[2].state["body.0.weight"].numpy())
    qtbot.waitUntil(lambda: not prefetch.busy)
    hits = prefetch.hits
    press(w, Qt.Key.Key_BracketLeft)  # read ahead: shown from the data already made
    assert prefetch.hits == hits + 1
    wait_heatmap(qtbot, w, "body.0.weight", saved[1].state["body.0.weight"].numpy())


def test_measuring_can_be_cancelled_and_started_again(qtbot, shown_run):
    w = shown_run()
    movement = w.timeline_panel.movement
    movement.start()
    movement.cancel()  # as the status bar's Cancel does
    assert movement.status == "cancelled"
    assert w.timeline_panel.measure_button.isVisible()
    assert w.document.timeline.movement is not None  # what was measured before stays
    qtbot.mouseClick(w.timeline_panel.measure_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: movement.status == "done", timeout=20_000)
    assert not w.timeline_panel.measure_button.isVisible()


def test_typing_in_the_filter_box_never_steps_the_slider(qtbot, shown_run, press, saved):
    w = shown_run()
    timeline = w.document.timeline
    w.tree_panel.focus_filter()
    QTest.keyClicks(w.tree_panel.filter_edit, "body.0,[]")  # the step keys, typed
    assert w.tree_panel.filter_edit.text() == "body.0,[]"
    assert timeline.step == len(saved) - 1


def test_a_run_given_on_the_command_line_opens_with_its_slider(qtbot, saved, tmp_path):
    from netexplorer.core.launch import LaunchRequest
    from netexplorer.ui.app import window_for

    paths = [str(p) for p in tr.write_torch_per_epoch(tmp_path / "run", saved)]
    w = window_for(LaunchRequest(run=(paths[3], paths[1], paths[0], paths[2]), select="head.bias"))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    timeline = w.document.timeline
    assert [c.info.epoch for c in timeline.run.checkpoints] == [1, 2, 3, 4]
    assert w.timeline_panel.isVisible() and timeline.step == 3
    wait_heatmap(qtbot, w, "head.bias", saved[3].state["head.bias"].numpy())
    w.wait_idle(20_000)


def test_the_values_tab_follows_the_slider(qtbot, shown_run, press, saved):
    import torch

    w = shown_run(select="head.bias")
    w.tree_panel.view.setFocus()
    press(w, Qt.Key.Key_3, CTRL)  # the Values tab
    panel = w.values_panel

    def printed() -> dict[str, str]:
        return dict(panel.printed.cells) if panel.printed is not None else {}

    expected = repr(torch.tensor(saved[3].state["head.bias"].numpy()))
    qtbot.waitUntil(lambda: printed().get("net.head.bias") == expected)
    w.timeline_panel.slider.setFocus()
    press(w, Qt.Key.Key_Home)  # a checkpoint without the key
    qtbot.waitUntil(lambda: printed().get("net.head.bias", "").endswith("it appears at step 6"))
    press(w, Qt.Key.Key_Right)
    expected = repr(torch.tensor(saved[1].state["head.bias"].numpy()))
    qtbot.waitUntil(lambda: printed().get("net.head.bias") == expected)
