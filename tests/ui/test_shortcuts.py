"""Every shortcut does what its action does, pressed with the keyboard in a window already
on screen (focus in the tree, as when a model opens); Help ▸ Keyboard shortcuts lists them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from netexplorer.ui.appearance import appearance
from netexplorer.ui.pass_state import Phase

CTRL, SHIFT, ALT = (
    Qt.KeyboardModifier.ControlModifier,
    Qt.KeyboardModifier.ShiftModifier,
    Qt.KeyboardModifier.AltModifier,
)


@pytest.fixture
def up(qtbot, window):
    look = appearance().look
    w = window("example:tied", select="2.weight")
    w.show()
    qtbot.waitExposed(w)
    w.wait_idle()
    w.tree_panel.view.setFocus()
    yield w
    appearance().set_look(look)


def idle(qtbot, w) -> None:
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)


@pytest.mark.parametrize(
    ("key", "action"),
    [(Qt.Key.Key_F5, "forward"), (Qt.Key.Key_F6, "backward"), (Qt.Key.Key_F8, "step")],
)
def test_pass_keys_run_their_action(qtbot, up, press, key, action):
    press(up, Qt.Key.Key_F6)  # a gradient first, so that Step steps
    idle(qtbot, up)
    press(up, key)
    idle(qtbot, up)
    assert up.document.session.state.result.action == action


def test_f7_zeroes_and_f9_trains_then_pauses(qtbot, up, press):
    session = up.document.session
    press(up, Qt.Key.Key_F6)
    idle(qtbot, up)
    press(up, Qt.Key.Key_F7)
    idle(qtbot, up)
    assert session.state.holdings.zeroed
    press(up, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: session.state.holdings.steps > 2, timeout=10_000)
    press(up, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: session.state.phase is Phase.IDLE, timeout=10_000)


def test_alt_arrows_walk_the_tensors(qtbot, up, press):
    press(up, Qt.Key.Key_Down, ALT)
    assert up.document.selected == "2.bias"
    press(up, Qt.Key.Key_Up, ALT)
    press(up, Qt.Key.Key_Up, ALT)
    assert up.document.selected == "0.bias"


def test_filter_keys(qtbot, up, press):
    press(up, Qt.Key.Key_F, CTRL)
    assert up.tree_panel.filter_edit.hasFocus()
    up.tree_panel.filter_edit.setText("bias")
    up.tree_panel._apply_filter()
    press(up, Qt.Key.Key_Escape)
    assert up.tree_panel.filter_edit.text() == "" and up.tree_panel.view.hasFocus()


def test_view_keys(qtbot, up, press):
    for key, panel in (
        (Qt.Key.Key_2, "graph_panel"),
        (Qt.Key.Key_3, "values_panel"),
        (Qt.Key.Key_1, "heatmap_panel"),
    ):
        press(up, key, CTRL)
        assert up.centre.currentWidget() is getattr(up, panel)
    press(up, Qt.Key.Key_P, CTRL | SHIFT)
    assert appearance().look.presenting
    press(up, Qt.Key.Key_P, CTRL | SHIFT)
    assert not appearance().look.presenting
    press(up, Qt.Key.Key_Plus, CTRL)
    assert appearance().look.scale == pytest.approx(1.15)
    press(up, Qt.Key.Key_0, CTRL)
    assert appearance().look.scale == 1.0
    press(up, Qt.Key.Key_F11)
    assert up.isFullScreen()
    press(up, Qt.Key.Key_F11)
    assert not up.isFullScreen()


def test_help_lists_every_shortcut(up):
    listed = dict(up.shortcuts())
    for keys in (
        "F5",
        "F6",
        "F7",
        "F8",
        "F9",
        "Ctrl+F",
        "Alt+Down",
        "Alt+Up",
        "Ctrl+Shift+P",
        "F11",
        "Ctrl+3",
        "Ctrl+Z",
        "F1",
    ):
        assert any(keys in k.split(" or ") for k in listed), keys
    assert "Clear the filter" in listed.values()
