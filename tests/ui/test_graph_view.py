"""The Graph tab: nodes, data flow and tie links drawn; selection both ways; collapse, expand
and depth; the note when there is no data flow; gradients tinting nodes and labelling links;
building off the GUI thread but never during a pass; export; `--view graph` screenshots."""

import math

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtSvg import QSvgRenderer
from torch import nn

from netexplorer.cli import main
from netexplorer.core.errors import NetExplorerError
from netexplorer.core.graph import LOOP, NO_CODE_NOTE, SHARED_MODULE, STATELESS, TIED_TENSOR
from netexplorer.core.handles import TorchHandle
from netexplorer.core.inputs import InputSpec
from netexplorer.core.tree import tree_from_entries, tree_from_module
from netexplorer.example_nets import tied
from netexplorer.ui.graph.canvas import READABLE_SCALE
from netexplorer.ui.graph.export import export_graph
from netexplorer.ui.graph.items import NODE_FILL, TieLinkItem
from netexplorer.ui.icons import ALIAS_COLOR
from netexplorer.ui.tree_view import PATH_ROLE


def show_graph(qtbot, w):
    """Show the window on its Graph tab and wait until the graph is drawn."""
    w.show()
    qtbot.waitExposed(w)
    w.set_view("graph")
    panel = w.graph_panel
    qtbot.waitUntil(lambda: panel.laid is not None and not panel.building, timeout=20_000)
    return panel


def at_path(panel, path: str) -> str:
    """The id of the (only) visible node of a module path."""
    (node_id,) = [i for i, item in panel.graph_scene.nodes.items() if item.node.path == path] or [
        i for i, box in panel.graph_scene.boxes.items() if box.node.path == path
    ]
    return node_id


def click(qtbot, panel, scene_point: QPointF, double: bool = False) -> None:
    viewport = panel.canvas.viewport()
    pos = panel.canvas.mapFromScene(scene_point)
    if double:
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    else:
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pos)


def relaid(qtbot, panel, action) -> None:
    """Do something that lays the graph out again, and wait until it is drawn."""
    with qtbot.waitSignal(panel.graph_shown, timeout=10_000):
        action()
    assert not panel.building


@pytest.fixture
def tied_graph(qtbot, window):
    w = window("example:tied", select="0.weight")
    return w, show_graph(qtbot, w)


# -- what is drawn ----------------------------------------------------------------------------


def test_tied_draws_every_call_the_flow_and_a_link_of_2_and_4_naming_weight_and_bias(tied_graph):
    _, panel = tied_graph
    scene = panel.graph_scene
    assert set(scene.nodes) == {"input", *(f"n{i}" for i in range(1, 8)), "output"}
    assert len(scene.edges) == 8  # input, the seven calls, output: a chain
    (group,) = scene.groups
    assert (group.kind, group.nodes) == (SHARED_MODULE, ["n3", "n5"])
    assert group.label.lines == ["weight, bias"]
    (arc,) = group.items
    assert isinstance(arc, TieLinkItem) and arc.scene() is scene
    start, end = arc.ends
    assert start == QPointF(scene.nodes["n3"].rect.center().x(), scene.nodes["n3"].rect.top())
    assert end.x() == scene.nodes["n5"].rect.center().x()
    # drawn apart from the data flow: above the nodes, in the module-alias colour
    assert arc.path().boundingRect().top() < scene.nodes["n3"].rect.top() - 10
    assert arc.pen().color() == QColor(ALIAS_COLOR)
    assert panel.canvas.legend.content.kinds == (SHARED_MODULE,)
    assert not panel.note.isVisible()
    tip = scene.tooltip(arc)
    assert "one module at several places" in tip and "weight, bias" in tip
    assert "net[2]" in scene.tooltip(scene.nodes["n3"])


def test_the_three_kinds_of_sharing_look_different():
    from netexplorer.ui.graph.items import link_color, link_pen

    pens = {k: link_pen(k, link_color(k, 0)) for k in (TIED_TENSOR, SHARED_MODULE, STATELESS)}
    looks = {(p.color().name(), tuple(p.dashPattern()), p.style()) for p in pens.values()}
    assert len(looks) == 3


def test_rnn_shows_a_loop_badge_and_one_loop_chain(qtbot, window):
    w = window("example:rnn")
    panel = show_graph(qtbot, w)
    scene = panel.graph_scene
    cells = [item for item in scene.nodes.values() if item.node.path == "cell"]
    assert len(cells) == 5
    assert all(not c.badge_rect().isEmpty() for c in cells)
    assert scene.nodes[at_path(panel, "head")].badge_rect().isEmpty()
    (group,) = scene.groups
    assert group.kind == LOOP and group.nodes == [c.node_id for c in cells]
    assert len(group.items) == 4
    assert group.label.lines == ["weight_ih, weight_hh, bias_ih +1 more"]
    # clicking the third call selects the cell; the other calls light up through the links
    click(qtbot, panel, cells[2].rect.center())
    assert w.document.selected == "cell"
    selected, partners = panel.highlighted()
    assert selected == [cells[2].node_id]
    assert sorted(partners) == sorted(c.node_id for c in cells if c is not cells[2])


# -- selection both ways ----------------------------------------------------------------------


def test_clicking_a_node_selects_its_module_everywhere_and_highlights_its_tie_partner(
    qtbot, tied_graph
):
    w, panel = tied_graph
    click(qtbot, panel, panel.graph_scene.nodes["n3"].rect.center())
    assert w.document.selected == "2"
    assert w.tree_panel.view.currentIndex().data(PATH_ROLE) == "2"
    assert w.heatmap_panel.tensor.path == "2.weight"
    assert panel.highlighted() == (["n3"], ["n5"])
    (arc,) = panel.graph_scene.groups[0].items
    assert arc.emphasis == 1
    # the model input is no module: clicking it changes nothing
    click(qtbot, panel, panel.graph_scene.nodes["input"].rect.center())
    assert w.document.selected == "2"


def test_selecting_in_the_tree_highlights_and_scrolls_to_the_node(qtbot, tied_graph):
    w, panel = tied_graph
    assert panel.highlighted() == (["n1"], [])  # 0.weight was selected before the graph
    index = w.tree_panel.proxy.mapFromSource(w.tree_panel.model.index_for_path("4"))
    w.tree_panel.view.setCurrentIndex(index)
    assert w.document.selected == "4"
    assert panel.highlighted() == (["n5"], ["n3"])
    # a tensor: the nodes of every path tied to it
    w.document.select("2.bias")
    assert sorted(panel.highlighted()[0]) == ["n3", "n5"]
    # zoomed in on the start, selecting the last layer brings it into view
    panel.canvas.zoom(3.0)
    panel.canvas.centerOn(panel.graph_scene.nodes["input"].rect.center())
    last = panel.graph_scene.nodes["n7"].rect
    viewport = panel.canvas.viewport().rect()
    assert not viewport.contains(panel.canvas.mapFromScene(last.center()))
    w.document.select("6")
    assert panel.highlighted() == (["n7"], [])
    assert viewport.contains(panel.canvas.mapFromScene(last).boundingRect())


# -- collapse, expand, depth ------------------------------------------------------------------


def test_collapse_expand_and_the_depth_control_change_what_is_shown(qtbot, window):
    w = window("example:nested")
    panel = show_graph(qtbot, w)
    leaves = {"0.block 1.0", "0.block 1.1", "0.block 1.2", "0.block 1.3"}

    def paths() -> set[str]:
        return {item.node.path for item in panel.graph_scene.nodes.values()}

    relaid(qtbot, panel, panel.expand_button.click)
    assert panel.depth.value() == 3  # everything open
    assert leaves <= paths()
    block = panel.graph_scene.boxes[at_path(panel, "0.block 1")]
    relaid(qtbot, panel, lambda: click(qtbot, panel, block.header_rect().center()))
    assert "0.block 1" in paths() and not leaves & paths()
    node = panel.graph_scene.nodes[at_path(panel, "0.block 1")]
    assert node.is_collapsed
    relaid(qtbot, panel, lambda: click(qtbot, panel, node.marker_rect().center()))
    assert leaves <= paths() and at_path(panel, "0.block 1") in panel.graph_scene.boxes
    box = panel.graph_scene.boxes[at_path(panel, "0.block 1")]
    relaid(qtbot, panel, lambda: click(qtbot, panel, box.rect.center(), double=True))
    assert not leaves & paths()

    relaid(qtbot, panel, lambda: panel.depth.setValue(1))
    assert paths() == {None, "0", "1"}  # the input, the two children, the output
    relaid(qtbot, panel, panel.expand_button.click)
    assert panel.depth.value() == 3 and leaves <= paths()  # the box shut by hand opens too
    relaid(qtbot, panel, panel.collapse_button.click)
    assert paths() == {None, "0", "1"}
    # selecting a module inside a collapsed box highlights the box
    w.document.select("0.block 2.2")
    assert panel.highlighted()[0] == [at_path(panel, "0")]


# -- without data flow ------------------------------------------------------------------------


def test_a_checkpoint_shows_its_hierarchy_with_tie_links_and_the_note(qtbot, window):
    state = tied().state_dict()  # 2.* and 4.* share storage
    tree = tree_from_entries(
        [(k, TorchHandle(v, snapshot=False)) for k, v in state.items()], source="tied.pt"
    )
    w = window()
    w.set_tree(tree)
    panel = show_graph(qtbot, w)
    assert panel.note.isVisible() and NO_CODE_NOTE in panel.note.text()
    scene = panel.graph_scene
    assert scene.edges == []
    assert {item.node.path for item in scene.nodes.values()} == {"0", "2", "4", "6"}
    (group,) = scene.groups
    assert group.kind == TIED_TENSOR
    assert group.nodes == [at_path(panel, "2"), at_path(panel, "4")]
    assert group.label.lines == ["2.weight = 4.weight, 2.bias = 4.bias"]
    assert panel.canvas.legend.content.data_flow is False


class Refuse(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this layer refuses")


def test_a_model_whose_forward_raises_shows_the_hierarchy_and_says_why(qtbot, window):
    shared = nn.Linear(8, 8)
    tree = tree_from_module(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, Refuse(), shared))
    tree.default_input = InputSpec((2, 4))
    w = window()
    w.set_tree(tree)
    panel = show_graph(qtbot, w)
    assert "the forward pass raised ValueError in module `3` (Refuse)" in panel.note.text()
    (group,) = panel.graph_scene.groups
    assert group.kind == SHARED_MODULE and group.label.lines == ["weight, bias"]


# -- gradients --------------------------------------------------------------------------------


def test_backward_tints_nodes_by_gradient_norm_and_labels_each_use(qtbot, tied_graph):
    w, panel = tied_graph
    session = w.document.session
    with qtbot.waitSignal(session.state.holdings_changed, timeout=10_000) as got:
        assert session.run("backward")
    norms = got.args[0].grad_norms
    scene = panel.graph_scene
    (group,) = scene.groups
    qtbot.waitUntil(lambda: len(group.label.lines) == 2, timeout=10_000)

    expected = math.hypot(norms["2.weight"], norms["2.bias"])
    assert scene.nodes["n3"].grad_norm == pytest.approx(expected)
    assert scene.nodes["n2"].grad_norm is None  # a ReLU has no parameters
    assert scene.nodes["n3"].fill != NODE_FILL and scene.nodes["n2"].fill == NODE_FILL
    # a larger norm is a darker fill
    by_norm = sorted((i for i in scene.nodes.values() if i.grad_norm), key=lambda i: i.grad_norm)
    assert by_norm[0].fill.lightness() > by_norm[-1].fill.lightness()
    assert panel.canvas.legend.content.grad is not None

    uses = session.engine.contributions
    via = [
        math.hypot(*(np.linalg.norm(c.values) for name in ("2.weight", "2.bias")
                     for c in uses[name] if c.site == site))
        for site in ("2", "4")
    ]  # fmt: skip
    assert group.use_norms == pytest.approx(via)
    assert group.label.lines[1].startswith("grad via 2: ") and " · via 4: " in group.label.lines[1]
    assert "‖gradient via Linear 4‖" in scene.tooltip(group.items[0])

    with qtbot.waitSignal(session.state.holdings_changed, timeout=10_000):
        assert session.run("zero_grad")
    assert scene.nodes["n3"].fill == NODE_FILL and panel.canvas.legend.content.grad is None
    qtbot.waitUntil(lambda: group.label.lines == ["weight, bias"], timeout=10_000)


def test_the_graph_waits_for_training_then_follows_it(qtbot, window):
    w = window("example:tied")
    session = w.document.session
    w.show()
    qtbot.waitExposed(w)
    assert session.train()
    qtbot.waitUntil(lambda: session.state.holdings.steps > 0, timeout=10_000)  # it trains
    w.set_view("graph")
    panel = w.graph_panel
    # its forward pass would run on the module the training loop is using: it waits
    assert panel.laid is None and not panel.building
    assert "Waiting" in panel.canvas.message.text()
    session.stop()
    qtbot.waitUntil(lambda: panel.laid is not None and not panel.building, timeout=20_000)
    assert panel.graph_scene.nodes["n3"].grad_norm is not None  # the last step's gradients
    qtbot.waitUntil(lambda: not session.busy, timeout=10_000)


def test_a_graph_too_big_to_read_whole_stays_readable_with_an_overview(qtbot, window):
    w = window("example:tiny-gpt", select="blocks.0.ln1")
    panel = show_graph(qtbot, w)
    relaid(qtbot, panel, panel.expand_button.click)  # every box open: too big for this window
    canvas = panel.canvas
    bounds = panel.graph_scene.bounds
    assert not canvas.fits_readably(bounds)
    assert canvas.scale_factor == pytest.approx(READABLE_SCALE)  # not shrunk to fit
    (ln1,) = panel.highlighted()[0]
    assert canvas.visible_scene_rect().contains(panel.graph_scene.to_qrect(ln1))  # around it
    overview = canvas.overview
    qtbot.waitUntil(overview.isVisible)  # drawn on the next turn of the event loop
    before = canvas.visible_scene_rect().center()
    qtbot.mouseClick(overview, Qt.MouseButton.LeftButton, pos=overview.rect().bottomRight())
    after = canvas.visible_scene_rect().center()
    assert after.x() + after.y() > before.x() + before.y() + 100  # moved to the far corner
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert canvas.scale_factor == pytest.approx(READABLE_SCALE)
    assert canvas.visible_scene_rect().contains(panel.graph_scene.to_qrect(ln1))
    scale = canvas.scale_factor
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.scale_factor == pytest.approx(scale * 1.25)
    qtbot.mouseClick(panel.fit_button, Qt.MouseButton.LeftButton)
    assert canvas.scale_factor == pytest.approx(scale)
    qtbot.keyClick(canvas, Qt.Key.Key_Z)  # zoom to the selection: at the text's own size
    assert canvas.scale_factor == pytest.approx(1.0)


def test_a_new_input_shape_rebuilds_the_graph_after_the_pass(qtbot, tied_graph):
    w, panel = tied_graph
    assert panel.graph_scene.nodes["input"].lines == ["input", "2×4"]
    w.document.session.configure(input_spec=InputSpec((5, 4)))
    with qtbot.waitSignal(panel.graph_shown, timeout=10_000):
        assert w.document.session.run("forward")
    assert panel.graph_scene.nodes["input"].lines == ["input", "5×4"]
    qtbot.waitUntil(lambda: not panel.building and not w.document.session.busy)


# -- export and the command line --------------------------------------------------------------


def test_export_from_the_file_menu(qtbot, tied_graph, tmp_path, monkeypatch):
    w, panel = tied_graph
    out = tmp_path / "tied_graph.svg"
    monkeypatch.setattr(
        "netexplorer.ui.graph.panel.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), "")
    )
    w.export_graph_action.trigger()
    assert QSvgRenderer(str(out)).isValid()
    assert panel.status.text() == f"Saved {out}"


def test_export_writes_png_and_svg_of_the_whole_graph(qtbot, tied_graph, tmp_path):
    _, panel = tied_graph
    panel.canvas.zoom(4.0)  # the export is of the whole graph, whatever is in view
    png = tmp_path / "g.png"
    export_graph(panel.graph_scene, png)
    image = QImage(str(png))
    width = panel.graph_scene.itemsBoundingRect().width()
    assert not image.isNull() and image.width() >= 2 * width
    svg = tmp_path / "g.svg"
    export_graph(panel.graph_scene, svg)
    text = svg.read_text()
    assert "<svg" in text and "weight, bias" in text and "one module at several places" in text
    assert QSvgRenderer(str(svg)).isValid()
    with pytest.raises(NetExplorerError, match=r"\.png or \.svg"):
        export_graph(panel.graph_scene, tmp_path / "g.jpg")
    with pytest.raises(NetExplorerError, match="cannot write"):
        export_graph(panel.graph_scene, tmp_path / "no" / "such" / "g.png")


def test_view_graph_screenshot_draws_the_graph(tmp_path):
    out = tmp_path / "shot.png"
    assert main(["example:tied", "--view", "graph", "--screenshot", str(out)]) == 0
    image = QImage(str(out))
    purple = QColor(ALIAS_COLOR)

    def near(c: QColor) -> bool:
        return (
            abs(c.red() - purple.red()) + abs(c.green() - purple.green())
            + abs(c.blue() - purple.blue()) < 60
        )  # fmt: skip

    # the tie link's arc and its legend, in the centre (the tree's alias icons are left)
    hits = sum(
        near(image.pixelColor(x, y))
        for y in range(0, image.height(), 2)
        for x in range(int(0.25 * image.width()), int(0.75 * image.width()), 2)
    )
    assert hits > 40
