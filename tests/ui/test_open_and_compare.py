"""Checkpoints in the window: File ▸ Open, Open folder, drag and drop, recent files, the
trust question, bad files, the progress bar with Cancel, Find identical tensors, Compare
with, optimizer state beside a parameter, and checkpoint metadata in the details panel."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox
from safetensors.torch import save_file
from torch import nn

from netexplorer.cli import main
from netexplorer.core.compare import compare_trees
from netexplorer.core.display import display_array
from netexplorer.core.sources import open_source
from netexplorer.core.sources.factory import build_with_weights
from netexplorer.examples import EXAMPLES
from netexplorer.ui import compare_view, identical_view, opening, stats_panel
from netexplorer.ui.optimizer_state import OptimizerStatePanel

ROOT = Path(__file__).resolve().parents[2]
TRAINING_CKPT = ROOT / "resources" / "examples" / "tied-training.ckpt"


# -- fixtures and builders ------------------------------------------------------------------


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """Small checkpoints: the tied net as safetensors (tie stored twice, plus two equal
    constant tensors), an MLP as a torch zip file, and a Hugging Face folder."""
    tied = EXAMPLES["tied"].build(0)
    tensors = {k: v.detach().clone() for k, v in tied.state_dict().items()}
    tensors["norm_a.bias"] = torch.zeros(5)
    tensors["norm_b.bias"] = torch.zeros(5)
    mlp = EXAMPLES["mlp"].build(0)
    out = {
        "tied": tmp_path / "tied.safetensors",
        "mlp": tmp_path / "mlp.pt",
        "folder": tmp_path / "hf-model",
    }
    save_file(tensors, str(out["tied"]))
    torch.save(mlp.state_dict(), out["mlp"])
    out["folder"].mkdir()
    (out["folder"] / "config.json").write_text(json.dumps({"model_type": "mlp", "hidden": 8}))
    save_file(
        {k: v.detach().clone() for k, v in mlp.state_dict().items()},
        str(out["folder"] / "model.safetensors"),
    )
    return out


class RunsCommand:
    """Unpickling calls os.system, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pick_file(monkeypatch, path: Path | str) -> list[str]:
    """File dialogs answer `path`; returns the filters they were offered."""
    offered: list[str] = []

    def get_open_file_name(_parent, _caption, _folder, filters, *args, **kwargs):
        offered.append(filters)
        return str(path), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", get_open_file_name)
    return offered


def answer_trust(monkeypatch, reply: str) -> list[dict]:
    """The trust dialog answers "enter" (its default button) or "yes"; returns what it said."""
    asked: list[dict] = []

    def exec_(box: QMessageBox):
        yes, cancel = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Cancel
        asked.append(
            {
                "title": box.windowTitle(),
                "text": box.text() + " " + box.informativeText(),
                "default_is_cancel": box.defaultButton() is box.button(cancel),
                "escape_is_cancel": box.escapeButton() is box.button(cancel),
            }
        )
        return yes if reply == "yes" else box.standardButton(box.defaultButton())

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return asked


def open_via_menu(qtbot, w, monkeypatch, path) -> None:
    pick_file(monkeypatch, path)
    w.checkpoint_actions.open_action.trigger()
    qtbot.waitUntil(lambda: not w.checkpoint_actions.opener.busy, timeout=10_000)


def idle(w) -> bool:
    return not any(r.busy for r in w.runners())


# -- File ▸ Open, Open folder, drag and drop, recent files ----------------------------------


def test_file_open_offers_every_format_and_opens_in_a_worker(qtbot, window, monkeypatch, files):
    w = window("example:tied", select="2.weight")
    offered = pick_file(monkeypatch, files["tied"])
    assert w.checkpoint_actions.open_action.shortcut().toString() == "Ctrl+O"
    w.checkpoint_actions.open_action.trigger()
    assert w.document.tree.source == "example:tied"  # still open while the worker reads
    qtbot.waitUntil(lambda: w.document.tree.source == str(files["tied"]), timeout=10_000)
    assert offered[0].startswith("Checkpoints and lessons (") and "*.safetensors" in offered[0]
    assert "Lessons (*.json)" in offered[0]
    assert "All files (*)" in offered[0] and "PyTorch files" in offered[0]
    assert "2.weight" in w.document.tree.tensors and w.document.selected == "0.weight"
    assert str(files["tied"]) in w.windowTitle()


def test_open_folder_reads_a_hugging_face_folder(qtbot, window, monkeypatch, files):
    w = window()
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(files["folder"])
    )
    w.checkpoint_actions.open_folder_action.trigger()
    qtbot.waitUntil(lambda: w.document.tree is not None, timeout=10_000)
    assert w.document.tree.metadata["config"]["model_type"] == "mlp"
    assert "model_type:</span> mlp" in w.details.source.text()


def drag_events(paths: list[str], text: str | None = None):
    mime = QMimeData()
    if paths:
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    if text is not None:
        mime.setText(text)
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(
        QPoint(50, 50), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    drop = QDropEvent(
        QPointF(50, 50), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    return mime, enter, drop


def test_dropping_a_file_on_the_window_opens_it(qtbot, window, files):
    w = window("example:tied")
    _mime, enter, drop = drag_events([], text="just text")
    QApplication.sendEvent(w, enter)
    assert not enter.isAccepted()  # text is not a file to open
    _mime, enter, drop = drag_events([str(files["mlp"])])
    QApplication.sendEvent(w, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(w, drop)
    qtbot.waitUntil(lambda: w.document.tree.source == str(files["mlp"]), timeout=10_000)
    # a heatmap (pyqtgraph takes drops itself) passes dropped files to the window too
    viewport = w.heatmap_panel.view.viewport()
    _mime, enter, drop = drag_events([str(files["tied"])])
    QApplication.sendEvent(viewport, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(viewport, drop)
    qtbot.waitUntil(lambda: w.document.tree.source == str(files["tied"]), timeout=10_000)


def test_recent_files_newest_first_pruned_and_cleared(qtbot, window, monkeypatch, files):
    w = window()
    actions = w.checkpoint_actions
    for path in (files["mlp"], files["tied"]):
        open_via_menu(qtbot, w, monkeypatch, path)
    actions.fill_recent_menu()
    entries = [a for a in actions.recent_menu.actions() if a.toolTip().startswith("/")]
    assert [a.toolTip() for a in entries] == [str(files["tied"]), str(files["mlp"])]
    assert entries[0].text() == "&1  tied.safetensors"
    entries[1].trigger()  # Open recent ▸ mlp.pt
    qtbot.waitUntil(lambda: w.document.tree.source == str(files["mlp"]), timeout=10_000)
    assert actions.recent.paths()[0] == str(files["mlp"])

    files["tied"].unlink()  # a file that is gone is dropped from the list
    actions.fill_recent_menu()
    tips = [a.toolTip() for a in actions.recent_menu.actions()]
    assert str(files["tied"]) not in tips and str(files["mlp"]) in tips
    assert actions.clear_recent_action.isEnabled()
    actions.clear_recent_action.trigger()
    assert actions.recent.paths() == []
    texts = [a.text() for a in actions.recent_menu.actions()]
    assert "No recent files" in texts and not actions.clear_recent_action.isEnabled()


# -- the trust question ---------------------------------------------------------------------


def test_a_pickle_that_runs_code_is_refused_unless_trusted(
    qtbot, window, monkeypatch, tmp_path, dialogs
):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": RunsCommand(marker)}, evil)
    w = window("example:tied", select="2.weight")
    asked = answer_trust(monkeypatch, "enter")
    open_via_menu(qtbot, w, monkeypatch, evil)
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
    assert not marker.exists()
    question = asked[0]
    assert question["default_is_cancel"] and question["escape_is_cancel"]
    assert "evil.pt" in question["text"] and "can run code on this computer" in question["text"]
    assert "posix.system" in question["text"] and "very likely malicious" in question["text"]
    # Enter (the default, Cancel) keeps the model that was open; nothing else is shown
    assert w.document.tree.source == "example:tied" and w.document.selected == "2.weight"
    assert dialogs == [] and idle(w)
    assert not marker.exists()


def test_a_trusted_pickled_module_opens_live(qtbot, window, monkeypatch, tmp_path):
    path = tmp_path / "whole-model.pt"
    torch.save(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)), path)
    w = window("example:tied")
    asked = answer_trust(monkeypatch, "yes")
    open_via_menu(qtbot, w, monkeypatch, path)
    qtbot.waitUntil(lambda: w.document.tree.source == str(path), timeout=10_000)
    assert "torch.nn.modules.container.Sequential" in asked[0]["text"]
    assert "very likely malicious" not in asked[0]["text"]  # a module, not a command
    assert w.document.tree.is_live and "0.weight" in w.document.tree.tensors
    assert w.controls.isVisibleTo(w)  # forward and backward work on it


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty"), (b"\x00garbage" * 20, "cannot open"), (b"PK\x03\x04broken", "PyTorch")],
)
def test_bad_files_say_why_and_keep_the_open_model(
    qtbot, window, monkeypatch, tmp_path, dialogs, content, expected
):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    w = window("example:tied", select="2.bias")
    open_via_menu(qtbot, w, monkeypatch, bad)
    qtbot.waitUntil(lambda: bool(dialogs), timeout=10_000)
    kind, text = dialogs[0]
    assert kind == "warning" and "bad.pt" in text and expected in text
    assert w.document.tree.source == "example:tied" and w.document.selected == "2.bias"
    assert w.checkpoint_actions.recent.paths() == []


# -- the progress bar -----------------------------------------------------------------------


def test_reader_progress_shows_after_half_a_second_and_cancel_keeps_the_model(
    qtbot, window, monkeypatch, files
):
    gate, seen = threading.Event(), {}

    def slow_open(spec, options):
        options.report(0.4, "reading shard 2 of 5")
        gate.wait(10)
        seen["cancelled"] = options.cancelled()
        return open_source(spec, options)

    monkeypatch.setattr(opening, "open_source", slow_open)
    w = window("example:tied", select="2.weight")
    bar = w.progress
    try:
        open_via_menu_async(w, monkeypatch, files["tied"])
        assert not bar.isVisibleTo(w)  # nothing shows for the first half second
        qtbot.waitUntil(lambda: bar.isVisibleTo(w) and bar.bar.value() == 400, timeout=3000)
        assert bar.current.clock.elapsed() >= 500
        assert "reading shard 2 of 5" in bar.label.toolTip()
        qtbot.mouseClick(bar.cancel_button, Qt.MouseButton.LeftButton)
        assert not bar.isVisibleTo(w) and not w.checkpoint_actions.opener.busy
    finally:
        gate.set()
    qtbot.waitUntil(lambda: "cancelled" in seen, timeout=5000)
    assert seen["cancelled"] is True  # readers that check it stop early
    assert w.document.tree.source == "example:tied" and w.document.selected == "2.weight"


def open_via_menu_async(w, monkeypatch, path) -> None:
    pick_file(monkeypatch, path)
    w.checkpoint_actions.open_action.trigger()


def test_statistics_of_a_huge_tensor_report_to_the_bar_and_cancel(
    qtbot, window, monkeypatch, tmp_path
):
    path = tmp_path / "big.safetensors"
    save_file({"big": torch.randn(600, 600)}, str(path))  # past the GUI thread's limit
    gate = threading.Event()
    real = stats_panel.compute_stats

    def slow_stats(key, values):
        yield 0.5
        gate.wait(10)
        return (yield from real(key, values))

    monkeypatch.setattr(stats_panel, "compute_stats", slow_stats)
    w = window()
    w.progress.delay_ms = 0  # this test is about the wiring, not the delay
    try:
        w.open_source_now(str(path))
        w.document.select("big")
        qtbot.waitUntil(lambda: w.progress.isVisibleTo(w), timeout=5000)
        assert "Statistics of big" in w.progress.label.text()
        qtbot.waitUntil(lambda: w.progress.bar.value() == 500, timeout=5000)
        w.progress.cancel_button.click()
        assert "cancelled" in w.details.stats_note.text()
        assert not w.progress.isVisibleTo(w)
    finally:
        gate.set()


# -- Find identical tensors -----------------------------------------------------------------


def test_find_identical_tensors_lists_ties_and_constants_and_selects(qtbot, window, files):
    w = window(str(files["tied"]))
    dialog = w.checkpoint_actions.identical
    w.checkpoint_actions.identical_action.trigger()
    qtbot.waitUntil(lambda: dialog.groups is not None, timeout=10_000)
    assert dialog.isVisible()
    groups = [dialog.list.topLevelItem(i) for i in range(dialog.list.topLevelItemCount())]
    labels = [g.text(0) for g in groups]
    assert labels[:2] == ["probable tie · 2 tensors"] * 2 and labels[2].startswith("constant")
    members = {
        tuple(g.child(i).data(0, identical_view.PATH_ROLE) for i in range(g.childCount()))
        for g in groups
    }
    assert members == {
        ("2.weight", "4.weight"),
        ("2.bias", "4.bias"),
        ("norm_a.bias", "norm_b.bias"),
    }
    child = groups[0].child(1)
    dialog.list.setCurrentItem(child)
    assert w.document.selected == child.data(0, identical_view.PATH_ROLE)
    dialog.close()


def test_find_identical_tensors_can_be_cancelled(qtbot, window, monkeypatch, files):
    gate = threading.Event()
    real = identical_view.iter_identical_tensors

    def slow_hashing(tree):
        yield 0.25, "hashing 2.weight"
        gate.wait(10)
        return (yield from real(tree))

    monkeypatch.setattr(identical_view, "iter_identical_tensors", slow_hashing)
    w = window(str(files["tied"]))
    dialog = w.checkpoint_actions.identical
    try:
        w.checkpoint_actions.identical_action.trigger()
        qtbot.waitUntil(lambda: w.progress.isVisibleTo(w), timeout=3000)
        assert w.progress.bar.value() == 250 and "hashing 2.weight" in w.progress.label.toolTip()
        assert w.progress.cancel_button.shortcut().toString() == "Esc"
        qtbot.mouseClick(w.progress.cancel_button, Qt.MouseButton.LeftButton)
        assert not dialog.busy and not w.progress.isVisibleTo(w)
        assert "Cancelled" in dialog.summary.text() and dialog.groups is None
    finally:
        gate.set()
    dialog.close()


# -- Compare with ---------------------------------------------------------------------------


def training_checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    """A: the tied net after Adam steps; B: trained further, a bias dropped, a head
    widened, a layer added (a safetensors file, so the "state_dict." prefix is matched)."""
    net = EXAMPLES["tied"].build(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(0))

    def train(steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()

    train(3)
    a = tmp_path / "a.ckpt"
    torch.save(
        {"epoch": 1, "state_dict": net.state_dict(), "optimizer_states": [opt.state_dict()]}, a
    )
    train(5)
    b_tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    del b_tensors["6.bias"]
    b_tensors["6.weight"] = torch.zeros(2, 8)
    b_tensors["8.weight"] = torch.ones(1, 2)
    b = tmp_path / "b.safetensors"
    save_file(b_tensors, str(b))
    return a, b


def test_compare_with_lists_keys_sorted_by_change_and_draws_b_minus_a(
    qtbot, window, monkeypatch, tmp_path
):
    a, b = training_checkpoints(tmp_path)
    w = window(str(a))
    pick_file(monkeypatch, b)
    w.checkpoint_actions.compare_action.trigger()
    view = w.checkpoint_actions.compare_view
    qtbot.waitUntil(
        lambda: view.comparison is not None and view.comparison.computed, timeout=10_000
    )
    assert (
        w.centre.currentWidget() is view and w.centre.tabText(w.centre.currentIndex()) == "Compare"
    )
    expected = compare_trees(open_source(str(a)), open_source(str(b)))
    keys = view.keys_in_view_order()
    # structural changes first and marked, then the largest relative change first
    assert keys[:3] == ["state_dict.6.bias", "8.weight", "6.weight"]
    kinds = [view.proxy.index(r, compare_view.CHANGE).data() for r in range(3)]
    assert kinds == ["only in A", "only in B", "shape changed"]
    assert keys[3:] == [c.path for c in expected.by_relative_change()]
    changes = [float(view.proxy.index(r, compare_view.CHANGE).data()) for r in range(3, len(keys))]
    assert changes == sorted(changes, reverse=True) and changes[0] > 0
    assert "keys matched after removing" in view.summary.text()

    # selecting a row draws B − A and selects the tensor in the tree
    key = "0.weight"
    view.select_key(key)
    assert w.document.selected == "state_dict.0.weight"
    sd_a = torch.load(a, weights_only=True)["state_dict"]
    from safetensors.numpy import load_file

    diff = load_file(str(b))[key] - sd_a[key].numpy()
    np.testing.assert_allclose(view.difference.view._values, diff, rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        view.difference.view.image.image, display_array(diff).data, rtol=0, atol=1e-7
    )
    # and selecting in the tree selects the row
    w.document.select("state_dict.2.bias")
    assert view._current_key() == "2.bias" and view.shown_key == "2.bias"
    view.select_key("6.weight")  # a shape change: a message instead of a heatmap
    assert not view.difference.showing_values and "shape changed" in view.difference.message.text()
    # clicking the header sorts by another column
    view.table.sortByColumn(compare_view.KEY, Qt.SortOrder.AscendingOrder)
    assert view.keys_in_view_order() == sorted(keys)


def test_a_comparison_shows_keys_at_once_and_can_be_cancelled(qtbot, window, monkeypatch, tmp_path):
    a, b = training_checkpoints(tmp_path)
    gate = threading.Event()
    real = compare_view.iter_compare

    def slow_compare(tree_a, tree_b):
        yield 0.5, "comparing 0.weight"
        gate.wait(10)
        return (yield from real(tree_a, tree_b))

    monkeypatch.setattr(compare_view, "iter_compare", slow_compare)
    w = window(str(a))
    view = w.checkpoint_actions.compare_view
    try:
        w.checkpoint_actions.compare_with_tree(open_source(str(b)))
        assert view.comparison is not None and not view.comparison.computed  # keys at once
        assert view.keys_in_view_order()[:3] == ["state_dict.6.bias", "8.weight", "6.weight"]
        assert view.proxy.index(3, compare_view.CHANGE).data() == "…"
        qtbot.waitUntil(lambda: w.progress.isVisibleTo(w), timeout=3000)
        assert w.progress.bar.value() == 500
        qtbot.mouseClick(w.progress.cancel_button, Qt.MouseButton.LeftButton)
        assert not view.busy and "cancelled" in view.summary.text()
        assert not view.comparison.computed
    finally:
        gate.set()


def test_compare_from_the_command_line(tmp_path, capsys):
    a, b = training_checkpoints(tmp_path)
    out = tmp_path / "compare.png"
    assert (
        main(
            [
                str(a),
                "--compare",
                str(b),
                "--select",
                "state_dict.0.weight",
                "--screenshot",
                str(out),
            ]
        )
        == 0
    )
    assert out.stat().st_size > 10_000
    assert main([str(a), "--compare", str(tmp_path / "missing.pt"), "--screenshot", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


# -- optimizer state and metadata -----------------------------------------------------------


def test_optimizer_state_shows_beside_the_parameter(qtbot, window, files):
    w = window(str(TRAINING_CKPT), select="state_dict.2.weight")
    panel = w.findChild(OptimizerStatePanel)
    assert panel.isVisibleTo(w) and panel.shown_path == "state_dict.2.weight"
    state = w.document.tree.optimizer_state["state_dict.2.weight"]
    assert set(panel.values) == {"exp_avg", "exp_avg_sq"}
    for name in ("exp_avg", "exp_avg_sq"):
        expected = state[name].array()
        np.testing.assert_array_equal(panel.values[name], expected)
        np.testing.assert_array_equal(
            panel.views[name].view.image.image, display_array(expected).data
        )
        assert panel.views[name].isVisibleTo(w)
    assert "step = 20" in panel.heading.text()
    w.document.select("state_dict.4.weight")  # the same tensor, reached by its tie
    assert (
        panel.shown_path == "state_dict.4.weight" and "of the tied tensor" in panel.heading.text()
    )
    np.testing.assert_array_equal(panel.values["exp_avg"], state["exp_avg"].array())
    w.open_source_now(str(files["tied"]))  # no optimizer state: hidden
    w.document.select("2.weight")
    assert not panel.isVisibleTo(w)


def test_checkpoint_metadata_reads_as_rows(window):
    w = window(str(TRAINING_CKPT))
    text = w.details.source.text()
    assert "epoch:</span> 4" in text
    assert "hyper_parameters:</span><br>" in text and "lr:</span> 0.01" in text
    tree = build_with_weights("netexplorer.example_nets:tied", str(TRAINING_CKPT))
    w.set_tree(tree)
    text = w.details.source.text()
    # the weights report reads as the CLI says it, one finding a row
    assert "weights_report:</span> " in text and "every model key matched" in text
    assert "8 tensors loaded (from the keys under &#x27;state_dict.&#x27;)" in text
