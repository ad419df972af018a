"""Editing a live model from the window: a heatmap cell typed into (the chapter's
`net[2].weight.data[0, 0] = 100`, seen at both places of the tied layer), Undo, the details
panel's setter, and each initialisation scheme on the selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog

from netexplorer.core.passes.edits import SCHEMES
from netexplorer.ui.cell_editor import CellEditor


def up(qtbot, window, spec: str, select: str):
    w = window(spec, select=select)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    w.wait_idle()
    return w


def idle(qtbot, w) -> None:
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)


def double_click_cell(qtbot, w, index) -> CellEditor:
    view = w.heatmap_panel.view
    rect = view.cell_rect(index)
    centre = QPoint(round(rect.center().x()), round(rect.center().y()))
    # what a double click is: press and release, then the double-click press and release
    viewport = view.viewport()
    for kind in (
        "MouseButtonPress",
        "MouseButtonRelease",
        "MouseButtonDblClick",
        "MouseButtonRelease",
    ):
        event = QMouseEvent(
            getattr(QEvent.Type, kind),
            QPointF(centre),
            QPointF(viewport.mapToGlobal(centre)),
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.NoButton if kind == "MouseButtonRelease" else Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, event)
    qtbot.waitUntil(lambda: w.heatmap_panel.editor is not None, timeout=3000)
    return w.heatmap_panel.editor


def test_typing_100_into_a_tied_cell_changes_both_places_and_undo_restores(qtbot, window, press):
    w = up(qtbot, window, "example:tied", "2.weight")
    net = w.document.tree.module
    before = net[2].weight.detach().clone()
    output_before = w.controls.output.toPlainText()
    editor = double_click_cell(qtbot, w, (0, 0))
    editor.setText("100")
    QTest.keyClick(editor, Qt.Key.Key_Return)
    idle(qtbot, w)
    assert net[2].weight[0, 0].item() == 100.0 and net[4].weight[0, 0].item() == 100.0
    qtbot.waitUntil(lambda: w.heatmap_panel.data.values[0, 0] == 100.0)
    assert "net[2].weight.data[0, 0] = 100" in w.controls.status.text()
    assert w.controls.output.toPlainText() != output_before  # the output followed
    qtbot.waitUntil(lambda: w.details.stats is not None and w.details.stats.max == 100.0)
    tree = w.tree_panel  # the other place of the same tensor, clicked in the tree
    row = tree.view.visualRect(tree.proxy.mapFromSource(tree.model.index_for_path("4.weight")))
    QTest.mouseClick(tree.view.viewport(), Qt.MouseButton.LeftButton, pos=row.center())
    assert w.document.selected == "4.weight"
    assert w.heatmap_panel.data.values[0, 0] == 100.0
    assert w.edit_actions.undo.isEnabled() and "data[0, 0] = 100" in w.edit_actions.undo.text()
    press(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    idle(qtbot, w)
    torch.testing.assert_close(net[2].weight.detach(), before)
    torch.testing.assert_close(net[4].weight.detach(), before)
    qtbot.waitUntil(lambda: w.heatmap_panel.data.values[0, 0] == before[0, 0].item())
    assert not w.edit_actions.undo.isEnabled()


def test_a_non_number_is_refused_in_place(qtbot, window):
    w = up(qtbot, window, "example:tied", "2.weight")
    before = w.document.tree.module[2].weight.detach().clone()
    editor = double_click_cell(qtbot, w, (1, 2))
    editor.setText("ten")
    QTest.keyClick(editor, Qt.Key.Key_Return)
    assert editor.isVisible() and editor.refused and "not a number" in editor.toolTip()
    QTest.keyClick(editor, Qt.Key.Key_Escape)
    idle(qtbot, w)
    assert torch.equal(w.document.tree.module[2].weight.detach(), before)


def test_a_checkpoint_cell_is_read_only(qtbot, window, tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "w.safetensors"))
    w = up(qtbot, window, str(tmp_path / "w.safetensors"), "w")
    w.heatmap_panel.edit_cell((0, 0))
    assert w.heatmap_panel.editor is None and "read-only" in w.heatmap_panel.readout.text()
    assert not w.edit_actions.undo.isEnabled()
    assert not any(a.isEnabled() for a in w.edit_actions.inits.values())


def test_the_details_panel_sets_an_element(qtbot, window):
    w = up(qtbot, window, "example:mlp", "2.bias")
    setter = next(
        w.details.facts.itemAt(i, w.details.facts.ItemRole.FieldRole).widget()
        for i in range(w.details.facts.rowCount())
        if w.details.facts.itemAt(i, w.details.facts.ItemRole.LabelRole).widget().text()
        == "Set element"
    )
    setter.index.setText("5")  # the bias has one element
    setter.value.setText("2")
    setter.button.click()
    assert "index of 1 numbers" in setter.index.toolTip()  # refused in place
    setter.index.setText("0")
    setter.value.setText("0.5")
    setter.button.click()
    idle(qtbot, w)
    assert w.document.tree.module[2].bias.item() == 0.5
    qtbot.waitUntil(lambda: float(w.heatmap_panel.data.values[0]) == 0.5)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_each_init_scheme_from_the_menu(qtbot, window, monkeypatch, scheme):
    monkeypatch.setattr(QInputDialog, "getDouble", staticmethod(lambda *a, **k: (42.0, True)))
    w = up(qtbot, window, "example:mlp", "0")
    net = w.document.tree.module
    w.edit_actions.inits[scheme].trigger()
    idle(qtbot, w)
    weight = net[0].weight.detach().numpy()
    if scheme == "constant":
        assert np.all(weight == 42.0)  # init_42
    elif scheme == "zeros":
        assert not weight.any()
    elif scheme == "chapter":
        assert np.all((weight == 0) | (np.abs(weight) >= 5))
    w.document.select("0.weight")
    np.testing.assert_array_equal(w.heatmap_panel.data.values, weight)
    assert w.edit_actions.undo.isEnabled()


def test_edited_weights_save_as_a_new_checkpoint_that_reopens(qtbot, window, tmp_path):
    from netexplorer.core.sources import open_source

    w = up(qtbot, window, "example:tied", "2.weight")
    w.document.session.edit_value("2.weight", (0, 0), 100.0)
    idle(qtbot, w)
    for name in ("edited.pt", "edited.safetensors"):
        path = tmp_path / name
        assert w.edit_actions.save_to(str(path))
        qtbot.waitUntil(lambda p=path: p.exists(), timeout=10_000)
        qtbot.waitUntil(lambda: not w.edit_actions._saver.busy, timeout=10_000)
        tree = open_source(str(path))
        assert tree.tensors["2.weight"].handle.array()[0, 0] == 100.0
        if name.endswith(".pt"):
            assert tree.tie_group("2.weight") is not None  # the tie is kept
    assert not list(tmp_path.glob(".edited-*"))  # no temporary file left


def test_saving_over_the_opened_file_asks_and_no_keeps_it(qtbot, window, tmp_path, monkeypatch):
    import hashlib

    from PySide6.QtWidgets import QMessageBox

    from netexplorer.examples import EXAMPLES

    source = tmp_path / "model.pt"
    torch.save(EXAMPLES["tied"].build(0), source)  # a whole module: opens live with --trust
    from netexplorer.core.sources import OpenOptions, open_source

    w = up(qtbot, window, "example:tied", "2.weight")
    w.set_tree(open_source(str(source), OpenOptions(trust=True)))
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    asked = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        staticmethod(lambda *a, **k: asked.append(a[1]) or QMessageBox.StandardButton.No),
    )
    assert not w.edit_actions.save_to(str(source))
    assert asked == ["Replace the file you opened?"]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_the_element_setter_follows_the_selection_made_in_the_tree(qtbot, window):
    """The details panel keeps its rows from tensor to tensor (made once, texts set): the
    setter then sets an element of the tensor selected now, with its fields emptied."""
    from PySide6.QtWidgets import QLabel

    from netexplorer.ui.cell_editor import ElementSetter

    w = up(qtbot, window, "example:mlp", "2.bias")
    net = w.document.tree.module
    facts_box = w.details.facts_box
    labels_before = len(facts_box.findChildren(QLabel))
    setter = facts_box.findChild(ElementSetter)
    setter.index.setText("0")
    view = w.tree_panel.view
    for path in ("0", "0.weight", "2", "0.bias", "0.weight"):  # clicked in the tree
        index = w.tree_panel.proxy.mapFromSource(w.tree_panel.model.index_for_path(path))
        view.scrollTo(index)
        qtbot.mouseClick(
            view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(index).center()
        )
        assert w.document.selected == path
        shown = w.details.fact_texts()
        if "." in path:  # a tensor: its facts, none of a module's
            assert shown["Kind"] == "parameter" and "Child modules" not in shown
            assert shown["Shape"] == " × ".join(map(str, net.get_parameter(path).shape))
        else:
            assert "Kind" not in shown and "Child modules" in shown
    assert w.details.fact_texts()["Gradient"] == "None (no backward pass yet)"
    assert facts_box.findChild(ElementSetter) is setter and setter.isVisible()  # kept
    assert setter.index.text() == "" and setter.index.placeholderText() == "0, 0"
    assert len(facts_box.findChildren(QLabel)) <= labels_before + 2  # rows reused, not made
    bias_before = net[2].bias.detach().clone()
    setter.index.setText("1, 2")
    setter.value.setText("7")
    setter.button.click()
    idle(qtbot, w)
    assert float(net[0].weight.detach()[1, 2]) == 7.0
    assert torch.equal(net[2].bias.detach(), bias_before)
