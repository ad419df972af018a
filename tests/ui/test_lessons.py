"""Lessons in the window: the shipped chapter lesson stepped to its end as a lecturer does
(PageDown), a saved setup reopened to the same state, and bad lesson files refused with the
open model kept."""

from __future__ import annotations

import torch
from PySide6.QtCore import Qt

from netexplorer.resources import resource_path
from netexplorer.ui.appearance import appearance
from netexplorer.ui.main_window import MainWindow

SHIPPED = str(resource_path("lessons", "parameter-management.json"))


def settled(qtbot, w, step_index: int) -> None:
    """Wait until a step is shown: its source open, its action done."""
    runner = w.lessons
    session = w.document.session

    def done() -> bool:
        return (
            runner.index == step_index
            and runner._pending is None
            and not w.checkpoint_actions.opener.busy
            and session.state.can_act
            and not session.busy
        )

    qtbot.waitUntil(done, timeout=20_000)


def view_of(w) -> str:
    return w.centre.tabText(w.centre.currentIndex()).lower()


def test_the_chapter_lesson_steps_to_its_end(qtbot, window, press):
    look = appearance().look
    w = window()
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    w.checkpoint_actions.open(SHIPPED)  # File ▸ Open
    lesson = w.lessons.lesson
    assert lesson is not None
    for i, step in enumerate(lesson.steps):
        if i:
            press(w, Qt.Key.Key_PageDown)
        settled(qtbot, w, i)
        assert w.lesson_panel.isVisible()
        assert f"step {i + 1} of {len(lesson.steps)}" in w.lesson_panel.heading.text()
        assert step.text == w.lesson_panel.text.text()
        assert w.document.selected == step.select
        assert view_of(w) == step.view
        if step.action == "forward":
            assert w.controls.output.toPlainText().startswith("net(X) = tensor(")
        if step.action == "init:chapter":
            weight = w.document.tree.module[0].weight.detach()
            assert torch.all((weight == 0) | (weight.abs() >= 5))
        if step.action == "set:2.weight[0, 0]=100":
            assert w.document.tree.module[4].weight[0, 0].item() == 100.0
            qtbot.waitUntil(lambda: w.heatmap_panel.data.values[0, 0] == 100.0)
    assert w.document.tree.source == "example:tied"
    qtbot.waitUntil(lambda: len(w.heatmap_panel.uses_box.shown) == 3)  # the two uses and the sum
    assert not w.lesson_panel.next_button.isEnabled() and not w.next_step.isEnabled()
    press(w, Qt.Key.Key_PageUp)
    settled(qtbot, w, len(lesson.steps) - 2)
    appearance().set_look(look)


def test_a_saved_lesson_reopens_to_the_same_state(qtbot, window, tmp_path):
    look = appearance().look
    w = window("example:tied", select="4.bias")
    w.document.session.configure(loss_name="cross_entropy", optimizer_name="adam", lr=0.02)
    w.set_view("graph")
    w.view_actions.set_theme("dark")
    path = tmp_path / "mine.json"
    w.save_lesson(str(path))
    w.close()
    appearance().set_look(look)

    again = MainWindow()
    qtbot.addWidget(again)
    again.checkpoint_actions.open(str(path))
    settled(qtbot, again, -1)
    qtbot.waitUntil(lambda: again.document.selected == "4.bias", timeout=10_000)
    config = again.document.session.engine.config
    assert again.document.tree.source == "example:tied"
    assert (config.loss_name, config.optimizer_name, config.lr) == ("cross_entropy", "adam", 0.02)
    assert view_of(again) == "graph" and appearance().look.theme == "dark"
    assert again.controls.loss.currentData() == "cross_entropy"
    appearance().set_look(look)


def test_bad_lesson_files_are_refused_and_the_model_stays(qtbot, window, tmp_path, dialogs):
    w = window("example:tied", select="2.weight")
    cases = {
        "broken.json": "{ this is not json",
        "newer.json": '{"format": "netexplorer-lesson/9", "source": "example:tied"}',
        "unknown.json": '{"format": "netexplorer-lesson/1", "source": "example:resnet9000"}',
        "missing.json": '{"format": "netexplorer-lesson/1", "source": "gone.safetensors"}',
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        w.checkpoint_actions.open(str(tmp_path / name))
    said = " ".join(text for _kind, text in dialogs)
    for fragment in ("not JSON", "newer netexplorer", "resnet9000", "gone.safetensors"):
        assert fragment in said
    assert len(dialogs) == 4
    assert w.document.tree.source == "example:tied" and w.document.selected == "2.weight"
    assert w.lessons.lesson is None
