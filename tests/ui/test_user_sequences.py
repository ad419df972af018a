"""Sequences a person really does, with the window already on screen: open while training,
select a live buffer, select while the graph is being built, Ctrl+F in the tree, an error
then a selection, many opens in a row. Each waits on conditions, never on wall-clock counts.

Sources are opened through `CheckpointActions.open`, the path File ▸ Open, recent files and
drops take (a worker, then the tree is swapped in)."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtTest import QTest
from torch import nn

import netexplorer
from netexplorer.core import handles


@pytest.fixture
def shown(qtbot, window):
    """A window on `spec`, shown and exposed, its panels made."""

    def make(spec: str, select: str | None = None):
        w = window(spec, select=select)
        w.show()
        qtbot.waitExposed(w)
        return w

    return make


def open_like_file_open(qtbot, w, spec: str) -> None:
    """Open `spec` as File ▸ Open does (in a worker) and wait until its tree is shown."""
    w.checkpoint_actions.open(spec)
    qtbot.waitUntil(
        lambda: w.document.tree is not None and w.document.tree.source == spec, timeout=20_000
    )


def click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def steps(w) -> int:
    return w.document.session.engine.steps_taken


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x):
        return self.bn(self.fc(x))


def test_selecting_a_live_buffer_shows_its_values_and_follows_passes(qtbot, dialogs):
    torch.manual_seed(0)
    net = WithBatchNorm()
    w = netexplorer.show(net, select="fc.weight", block=False).window
    qtbot.addWidget(w)
    qtbot.waitExposed(w)
    w.build_panels()
    w.document.select("bn.running_mean")  # RecursionError before: watch -> result -> refresh
    panel = w.heatmap_panel
    qtbot.waitUntil(lambda: panel.data is not None and panel.data.path == "bn.running_mean")
    np.testing.assert_array_equal(panel.data.values, net.bn.running_mean.numpy())
    assert not panel.grad.isVisibleTo(panel)  # a buffer never has a gradient
    click(qtbot, w.controls.forward_button)  # training mode: the statistics move
    qtbot.waitUntil(lambda: w.document.session.state.can_act and not w.document.session.busy)
    assert np.abs(net.bn.running_mean.numpy()).sum() > 0
    np.testing.assert_array_equal(panel.data.values, net.bn.running_mean.numpy())
    assert dialogs == []


def test_opening_another_model_while_training_leaves_train_working(qtbot, shown):
    w = shown("example:tied", select="2.weight")
    controls = w.controls
    click(qtbot, controls.train_button)
    qtbot.waitUntil(lambda: steps(w) > 3, timeout=20_000)
    assert controls.train_button.text() == "Pause"
    open_like_file_open(qtbot, w, "example:mlp")
    # the old model's loop stops between two steps; the new model is idle and can train
    qtbot.waitUntil(lambda: controls.train_button.isEnabled(), timeout=10_000)
    assert controls.train_button.text() == "Train"
    assert controls.backward_button.isEnabled() and controls.forward_button.isEnabled()
    assert "no backward pass yet" in controls.status.text()
    click(qtbot, controls.train_button)
    qtbot.waitUntil(lambda: steps(w) > 3, timeout=20_000)  # Train trains the new model
    click(qtbot, controls.train_button)  # Pause
    qtbot.waitUntil(lambda: controls.train_button.text() == "Train", timeout=10_000)
    assert controls.train_button.isEnabled()


def test_a_failed_open_while_training_keeps_training(qtbot, shown, dialogs, tmp_path):
    w = shown("example:tied", select="2.weight")
    click(qtbot, w.controls.train_button)
    qtbot.waitUntil(lambda: steps(w) > 3, timeout=20_000)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    w.checkpoint_actions.open(str(garbage))
    qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=20_000)
    assert "Cannot open" in dialogs[0][1]
    assert w.document.tree.source == "example:tied"
    before = steps(w)
    qtbot.waitUntil(lambda: steps(w) > before, timeout=10_000)  # still training
    assert w.controls.train_button.text() == "Pause"
    click(qtbot, w.controls.train_button)
    qtbot.waitUntil(lambda: w.controls.backward_button.isEnabled(), timeout=10_000)


def test_many_opens_in_a_row_keep_no_earlier_model_alive(qtbot, shown):
    w = shown("example:tied", select="2.weight")
    first = w.document.tree
    refs = {
        "tree": weakref.ref(first),
        "root": weakref.ref(first.root),
        "a tensor node": weakref.ref(first.tensors["2.weight"]),
        "the module": weakref.ref(first.module),
        "a parameter": weakref.ref(first.module[2].weight),
        "the engine": weakref.ref(w.document.session.engine),
    }
    del first
    click(qtbot, w.controls.backward_button)
    qtbot.waitUntil(lambda: w.document.session.state.can_act and not w.document.session.busy)
    for spec in ("example:mlp", "example:nested", "example:tied", "example:mlp"):
        open_like_file_open(qtbot, w, spec)
        w.document.select(next(iter(w.document.tree.tensors)))
    w.wait_idle()
    gc.collect()  # the frozen generation is not collected: only reference counting frees
    alive = [name for name, ref in refs.items() if ref() is not None]
    assert alive == []


def test_ctrl_f_in_the_tree_goes_to_the_filter(qtbot, shown):
    w = shown("example:nested")
    tree_view = w.tree_panel.view
    tree_view.setFocus()
    qtbot.waitUntil(tree_view.hasFocus)
    QTest.keyClick(tree_view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(w.tree_panel.filter_edit.hasFocus, timeout=2000)


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 2)

    def forward(self, x):
        raise ValueError("this layer is broken")


def test_an_error_stays_said_after_selecting_another_tensor(qtbot, dialogs):
    w = netexplorer.show(Exploding(), select="first.weight", block=False).window
    qtbot.addWidget(w)
    qtbot.waitExposed(w)
    w.build_panels()
    click(qtbot, w.controls.backward_button)
    qtbot.waitUntil(lambda: "this layer is broken" in w.controls.status.text(), timeout=10_000)
    for path in ("second.weight", "first.bias", "second.bias"):
        w.document.select(path)
        qtbot.wait(20)
        assert "this layer is broken" in w.controls.status.text()
    assert w.controls.backward_button.isEnabled()


def test_the_loss_stays_in_the_status_while_other_tensors_are_selected(qtbot, shown):
    w = shown("example:tied", select="2.weight")
    click(qtbot, w.controls.backward_button)
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy)
    loss = session.state.result.loss
    assert f"{loss:.6g}" in w.controls.output.toPlainText()
    for path in ("0.weight", "2.bias", "4.weight"):
        w.document.select(path)
        assert f"{loss:.6g}" in w.controls.status.text()
        assert "1 backward pass accumulated" in w.controls.status.text()


class ControlsPaints(QObject):
    """Records the pass buttons' enabled states and the Train text at every paint of the
    controls: what a person can see."""

    def __init__(self, controls) -> None:
        super().__init__()
        self.controls = controls
        self.seen: set[tuple] = set()
        controls.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            c = self.controls
            buttons = (c.forward_button, c.backward_button, c.zero_grad_button, c.step_button)
            self.seen.add(
                (
                    tuple(b.isEnabled() for b in buttons),
                    c.train_button.isEnabled(),
                    c.train_button.text(),
                )
            )
        return False


def test_train_and_pause_never_show_mixed_controls(qtbot, shown):
    w = shown("example:tied", select="2.weight")
    paints = ControlsPaints(w.controls)
    for _ in range(3):
        click(qtbot, w.controls.train_button)
        qtbot.waitUntil(lambda: w.controls.train_button.text() == "Pause", timeout=10_000)
        qtbot.wait(50)
        click(qtbot, w.controls.train_button)
        qtbot.waitUntil(lambda: w.controls.forward_button.isEnabled(), timeout=10_000)
    allowed = {
        ((True,) * 4, True, "Train"),  # idle
        ((False,) * 4, True, "Pause"),  # training
        ((False,) * 4, False, "Pause"),  # stopping after the current step
        ((False,) * 4, False, "Train"),  # running one action
    }
    assert paints.seen <= allowed, paints.seen - allowed


class SlowInEval(nn.Module):
    """Its forward waits for `release` when not training: the graph's recorded forward pass
    (which runs in eval mode) takes as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def forward(self, x):
        if not self.training:
            self.entered.set()
            self.release.wait(5)
        out = self.out(self.fc(x))
        if not self.training:
            self.finished.set()
        return out


def test_selecting_while_the_graph_is_built_never_waits_for_it(qtbot, dialogs):
    net = SlowInEval()
    w = netexplorer.show(net, select="fc.weight", block=False).window
    qtbot.addWidget(w)
    qtbot.waitExposed(w)
    w.set_view("graph")
    try:
        qtbot.waitUntil(net.entered.is_set, timeout=10_000)  # the graph's forward runs
        w.document.select("out.weight")
        # the heatmap shows it at once, while the graph's forward is still running (the GUI
        # thread waited for the engine's lock here, until the forward had finished)
        assert not net.finished.is_set()
        data = w.heatmap_panel.data
        assert data is not None and data.path == "out.weight"
        np.testing.assert_array_equal(data.values, net.out.weight.detach().numpy())
    finally:
        net.release.set()
    qtbot.waitUntil(lambda: w.graph_panel.laid is not None, timeout=10_000)


def test_a_large_live_tensor_is_copied_off_the_gui_thread(qtbot, monkeypatch, dialogs):
    net = nn.Sequential(nn.Embedding(4096, 256), nn.Linear(256, 4))  # 1M-element embedding
    copied_on: list[int] = []
    original = handles._torch_to_numpy

    def recording(tensor, copy):
        if tensor.numel() >= 4096 * 256:
            copied_on.append(threading.get_ident())
        return original(tensor, copy)

    monkeypatch.setattr(handles, "_torch_to_numpy", recording)
    w = netexplorer.show(net, select="1.weight", block=False).window
    qtbot.addWidget(w)
    qtbot.waitExposed(w)
    w.build_panels()
    w.document.select("0.weight")
    qtbot.waitUntil(
        lambda: w.heatmap_panel.data is not None and w.heatmap_panel.data.path == "0.weight",
        timeout=10_000,
    )
    assert copied_on and threading.get_ident() not in copied_on


def test_finding_identical_tensors_while_training_reads_a_model_no_step_changes(
    qtbot, shown, monkeypatch
):
    from netexplorer.ui import identical_view

    w = shown("example:tied", select="2.weight")
    click(qtbot, w.controls.train_button)
    qtbot.waitUntil(lambda: steps(w) > 3, timeout=20_000)
    original = identical_view.iter_identical_tensors
    seen: list[tuple[int, int]] = []

    def hashing(tree):  # the steps taken before and after hashing every tensor
        before = steps(w)
        result = yield from original(tree)
        seen.append((before, steps(w)))
        return result

    monkeypatch.setattr(identical_view, "iter_identical_tensors", hashing)
    dialog = w.checkpoint_actions.identical
    w.checkpoint_actions.identical_action.trigger()
    qtbot.waitUntil(lambda: dialog.groups is not None, timeout=20_000)
    assert seen and seen[0][0] == seen[0][1]  # no step while it read
    click(qtbot, w.controls.train_button)
    qtbot.waitUntil(lambda: w.controls.forward_button.isEnabled(), timeout=10_000)
    dialog.close()
