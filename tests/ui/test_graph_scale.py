"""Graphs of deep networks in the window, driven as a person does: the first view fits the
canvas at a readable zoom with the tie links of the open level on screen; repeated blocks
come folded ("Block ×24") and open into rows; Fit never shrinks labels past reading; the
search box finds a module wherever it hides."""

import pytest
import torch
from PySide6.QtCore import Qt
from test_graph_view import click, relaid, show_graph

from netexplorer.core.inputs import InputSpec
from netexplorer.core.tree import tree_from_module
from netexplorer.example_nets import TinyGPT
from netexplorer.ui.graph.canvas import READABLE_SCALE

SIZE = (1366, 768)  # a laptop on a projector


def shown(panel, *ids: str) -> bool:
    """Whether the nodes (and the labels of their tie links) are inside the view."""
    visible = panel.canvas.visible_scene_rect()
    return all(visible.contains(panel.graph_scene.to_qrect(i)) for i in ids)


def tie_ends(panel) -> tuple[str, str]:
    (group,) = panel.graph_scene.groups
    return group.nodes[0], group.nodes[-1]


@pytest.fixture
def deep(qtbot, window):
    """A 24-layer GPT (tok_emb tied to head) in a window already on screen."""
    torch.manual_seed(0)
    tree = tree_from_module(TinyGPT(layers=24))
    tree.default_input = InputSpec((2, 8), "tokens", high=32)
    w = window()
    w.resize(*SIZE)
    w.set_tree(tree)
    return w, show_graph(qtbot, w)


def test_tiny_gpt_opens_whole_and_readable_with_its_tie_on_screen(qtbot, window):
    w = window("example:tiny-gpt")
    w.resize(*SIZE)
    panel = show_graph(qtbot, w)
    canvas = panel.canvas
    assert canvas.scale_factor >= READABLE_SCALE  # labels readable
    assert canvas.visible_scene_rect().contains(panel.graph_scene.bounds.adjusted(8, 8, -8, -8))
    a, b = tie_ends(panel)
    assert {panel.graph_scene.nodes[i].node.path for i in (a, b)} == {"tok_emb", "head"}
    (group,) = panel.graph_scene.groups
    assert canvas.visible_scene_rect().contains(group.label.sceneBoundingRect())
    assert panel.status.text().endswith("1 tie link")


def test_a_deep_model_opens_folded_and_its_tie_stays_in_view_after_fit(qtbot, deep):
    _w, panel = deep
    scene = panel.graph_scene
    (fold,) = [item for item in scene.nodes.values() if item.is_fold]
    assert fold.lines == ["Block ×24", "blocks.0 … blocks.23"]
    assert "24 blocks folded" in panel.status.text()
    a, b = tie_ends(panel)
    assert shown(panel, a, b, fold.node_id)
    panel.canvas.zoom(3.0)  # look closer, somewhere else
    panel.canvas.centerOn(scene.to_qrect(fold.node_id).center())
    assert not shown(panel, a, b)
    qtbot.keyClick(panel.canvas, Qt.Key.Key_F)
    assert shown(panel, a, b) and panel.canvas.scale_factor >= READABLE_SCALE
    # a click on the fold's marker opens it: 24 nodes, in rows read like text
    relaid(qtbot, panel, lambda: click(qtbot, panel, fold.marker_rect().center()))
    blocks = [i for i in panel.graph_scene.nodes.values() if i.node.type == "Block"]
    assert [i.node.path for i in blocks] == [f"blocks.{k}" for k in range(24)]
    assert all(i.is_collapsed and not i.is_fold for i in blocks)
    layout = panel.laid.layout
    assert len(layout.rows) > 1
    rows = [layout.row_of(layout.nodes[i.node_id]) for i in blocks]
    assert rows == sorted(rows)
    # wrapped to the canvas: at the least readable zoom nothing is off to the side
    viewport = panel.canvas.viewport().width()
    assert layout.width * READABLE_SCALE <= viewport
    # and Collapse all folds them again
    relaid(qtbot, panel, panel.collapse_button.click)
    assert [i.lines[0] for i in panel.graph_scene.nodes.values() if i.is_fold] == ["Block ×24"]


def test_find_opens_the_fold_and_boxes_that_hide_a_module(qtbot, deep):
    w, panel = deep
    assert panel.find_edit.isEnabled()
    panel.canvas.setFocus()
    qtbot.keyClick(panel.canvas, Qt.Key.Key_Slash)
    assert panel.find_edit.hasFocus()
    qtbot.keyClicks(panel.find_edit, "blocks.17.attn.PROJ")  # any case
    assert panel.find_count.text() == "1 match · Enter"
    relaid(qtbot, panel, lambda: qtbot.keyClick(panel.find_edit, Qt.Key.Key_Return))
    assert panel.find_count.text() == "1 of 1"
    assert w.document.selected == "blocks.17.attn.proj"
    scene = panel.graph_scene
    (proj,) = [i for i in scene.nodes.values() if i.node.path == "blocks.17.attn.proj"]
    assert panel.highlighted()[0] == [proj.node_id]
    assert shown(panel, proj.node_id)
    assert panel.canvas.scale_factor == pytest.approx(1.0)  # the text's own size
    assert not any(i.is_fold for i in scene.nodes.values())  # the fold opened
    boxes = {b.node.path for b in scene.boxes.values()}
    assert {"blocks.17", "blocks.17.attn"} <= boxes and "blocks.16" not in boxes
    # several matches: Enter steps through them, Shift+Enter back
    panel.find_edit.clear()
    qtbot.keyClicks(panel.find_edit, "ln_f")
    qtbot.keyClick(panel.find_edit, Qt.Key.Key_Return)
    assert w.document.selected == "ln_f"
    panel.find_edit.clear()
    qtbot.keyClicks(panel.find_edit, "nothing like this")
    assert panel.find_count.text() == "no match"
    qtbot.keyClick(panel.find_edit, Qt.Key.Key_Escape)
    assert panel.find_edit.text() == ""


def test_find_steps_through_matches_both_ways(qtbot, deep):
    w, panel = deep
    panel.find_edit.setText("head")
    found = [panel.laid.graph.by_id[i].path for i in panel.find("head")]
    assert found == ["head"]
    panel.find_edit.setText("embedding")  # by type
    assert panel.find_count.text() == "2 matches · Enter"
    qtbot.keyClick(panel.find_edit, Qt.Key.Key_Return)
    assert w.document.selected == "tok_emb"
    qtbot.keyClick(panel.find_edit, Qt.Key.Key_Return)
    assert w.document.selected == "pos_emb"
    qtbot.keyClick(panel.find_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert w.document.selected == "tok_emb"
    assert panel.find_count.text() == "1 of 2"
