"""The details panel, the examples gallery and the window around them."""

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from torch import nn

from netexplorer.core.display import tensor_stats
from netexplorer.core.tree import tree_from_module
from netexplorer.examples import EXAMPLES
from netexplorer.ui.document import Document
from netexplorer.ui.main_window import EXPLORER, GALLERY
from netexplorer.ui.stats_panel import DetailsPanel


def make_details(qtbot, net, select):
    document = Document()
    panel = DetailsPanel(document)
    qtbot.addWidget(panel)
    document.set_tree(tree_from_module(net))
    document.select(select)
    return document, panel


def facts(panel) -> dict[str, str]:
    return panel.fact_texts()


def test_tensor_details_show_access_shape_dtype_and_statistics(qtbot):
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    _doc, panel = make_details(qtbot, net, "2.weight")
    assert panel.access.text() == "net[2].weight"
    about = facts(panel)
    assert about["Shape"] == "1 × 8" and about["Dtype"] == "float32" and about["Elements"] == "8"
    expected = tensor_stats(net[2].weight.detach().numpy())
    assert panel.stats.mean == pytest.approx(expected.mean)
    assert panel.stat_labels["max"].text() == f"{expected.max:.6g}"
    assert panel.stat_labels["nan_count"].text() == "0"
    panel.copy_button.click()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == "net[2].weight"


def test_nan_and_inf_counts_stand_out(qtbot):
    net = nn.Linear(3, 2)
    with torch.no_grad():
        net.bias[0] = float("nan")
        net.weight[0, 0] = float("inf")
    _doc, panel = make_details(qtbot, net, "bias")
    assert panel.stat_labels["nan_count"].text() == "1"
    assert "c0c" in panel.stat_labels["nan_count"].styleSheet()
    assert panel.stat_labels["inf_count"].styleSheet() == ""


def test_tie_partner_link_selects_the_partner(qtbot):
    document, panel = make_details(qtbot, EXAMPLES["tied"].build(0), "2.weight")
    assert "4.weight" in facts(panel)["Tied with"]
    row = next(
        panel.facts.itemAt(r, panel.facts.ItemRole.FieldRole).widget()
        for r in range(panel.facts.rowCount())
        if panel.facts.itemAt(r, panel.facts.ItemRole.LabelRole).widget().text() == "Tied with"
    )
    row.linkActivated.emit("4.weight")
    assert document.selected == "4.weight"


def test_module_details_count_ties_once_and_name_other_places(qtbot):
    _doc, panel = make_details(qtbot, EXAMPLES["tied"].build(0), "4")
    about = facts(panel)
    assert about["Parameters"].startswith("72")
    assert "2" in about["Same object as"]
    assert panel.stats_box.isHidden()
    _doc, panel = make_details(qtbot, EXAMPLES["sharing"].build(0), "body.1")
    assert "no parameters" in facts(panel)["Same object as"]


def test_gallery_lists_every_example_and_opens_one(qtbot, window):
    w = window()
    w.show()
    qtbot.waitExposed(w)
    assert w.pages.currentIndex() == GALLERY
    gallery = w.gallery
    names = [
        gallery.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(gallery.list.count())
    ]
    assert names == list(EXAMPLES)
    gallery.list.setCurrentRow(names.index("rnn"))
    assert "time step" in gallery.explanation.text()
    assert "torch.rand(size=(2, 5, 4))" in gallery.explanation.text()
    qtbot.mouseClick(gallery.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.document.tree is not None, timeout=10_000)
    assert w.pages.currentIndex() == EXPLORER
    assert w.document.tree.source == "example:rnn"
    assert w.document.selected == "cell.weight_ih"  # the first tensor is shown at once
    assert "example:rnn" in w.windowTitle()
    w.gallery_action.trigger()
    assert w.pages.currentIndex() == GALLERY


def test_a_failed_open_keeps_the_open_model_and_says_why(qtbot, window, dialogs):
    w = window("example:tied", select="2.weight")
    w.open_source("example:missing")
    qtbot.waitUntil(lambda: bool(dialogs), timeout=10_000)
    kind, text = dialogs[0]
    assert kind == "warning" and "unknown example 'missing'" in text
    assert w.document.tree.source == "example:tied" and w.document.selected == "2.weight"
    assert w.pages.currentIndex() == EXPLORER


def test_select_from_the_command_line_shows_the_heatmap(window):
    w = window("example:cnn", select="3.weight")
    loaded = w.heatmap_panel.loaded
    assert loaded.path == "3.weight" and loaded.display.layout == "mosaic"
    np.testing.assert_array_equal(loaded.values, w.document.tree.module[3].weight.detach().numpy())


def test_gallery_previews_the_structure_like_print_net(qtbot, window):
    w = window()
    w.show()
    qtbot.waitExposed(w)
    gallery = w.gallery
    names = [
        gallery.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(gallery.list.count())
    ]
    gallery.list.setCurrentRow(names.index("tied"))
    qtbot.waitUntil(lambda: "Sequential(" in gallery.preview.toPlainText(), timeout=20_000)
    text = gallery.preview.toPlainText()
    assert "(4): Linear(in_features=8, out_features=8, bias=True)" in text
    assert "<tie 0: 2.weight = 4.weight>" in text


def test_a_distributed_checkpoint_tensor_shows_its_shards(qtbot, window, tmp_path):
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    state = {"fc.weight": torch.randn(6, 4), "fc.bias": torch.randn(6)}
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process"
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(tmp_path / "step_1"))
    w = window(str(tmp_path / "step_1"), select="fc.weight")
    details = w.details
    assert details.shards_box.isVisibleTo(details)
    facts = details.fact_texts()
    assert facts["Shards"] == "1 chunk held by 1 rank"
    w.document.select("fc")
    assert not details.shards_box.isVisibleTo(details)


def test_the_histogram_is_one_item_redrawn_for_each_tensor(qtbot):
    """One bars item whose data is replaced (a new item per selection laid the plot out
    again): after a module and another tensor, it draws that tensor's counts."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    document, panel = make_details(qtbot, net, "0.weight")
    panel.show()
    for path in ("1", "2.weight", "0", "2.bias"):
        document.select(path)
        items = panel.histogram.getPlotItem().listDataItems()
        assert len(items) == 1
        assert panel.histogram.isVisibleTo(panel) == ("." in path)
    (bars,) = panel.histogram.getPlotItem().listDataItems()
    _x, counts = bars.getData()
    assert bars.isVisible() and counts.sum() == 3  # 2.bias: three elements
    expected = tensor_stats(net[2].bias.detach().numpy()).histogram
    np.testing.assert_array_equal(counts, expected[0])
