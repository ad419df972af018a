"""`netexplorer.show(net)` from a notebook: it returns at once in an IPython shell, the
window follows changes made to the model from the notebook without any call, and its handle
has select, refresh and close."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from torch import nn

import netexplorer


@pytest.fixture
def shell():
    """An IPython shell with no Qt event loop running (as a fresh notebook kernel)."""
    shell = InteractiveShell.instance()
    assert shell.active_eventloop is None
    yield shell
    InteractiveShell.clear_instance()


def notebook_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def test_show_returns_at_once_in_an_ipython_shell(qtbot, shell):
    net = notebook_net()
    # were show() to run the event loop itself, this would end it after 3 s
    QTimer.singleShot(3000, QApplication.instance().quit)
    start = time.monotonic()
    explorer = netexplorer.show(net, select="2.bias")  # block decided by the shell
    elapsed = time.monotonic() - start
    qtbot.addWidget(explorer.window)
    assert elapsed < 2.5
    assert explorer.window.isVisible() and explorer.tree.module is net
    assert "event loop" in explorer.window.statusBar().currentMessage()
    assert "open" in repr(explorer)
    explorer.close()
    assert not explorer.window.isVisible()


def test_changes_made_from_the_notebook_appear_without_a_call(qtbot):
    net = notebook_net()
    explorer = netexplorer.show(net, select="2.weight", block=False)
    qtbot.addWidget(explorer.window)
    panel = explorer.window.heatmap_panel
    qtbot.waitUntil(lambda: panel.data is not None and panel.data.path == "2.weight")
    # the chapter's cell, run in the notebook while the window is open
    net[2].weight.data[0, 0] = 100
    qtbot.waitUntil(lambda: panel.data.values[0, 0] == 100.0, timeout=1000)  # within 1 s
    # an optimizer step in the user's own training loop
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.rand(2, 4)).sum().backward()
    qtbot.waitUntil(lambda: panel.data.grad is not None, timeout=1000)
    np.testing.assert_allclose(panel.data.grad, net[2].weight.grad.numpy())
    before = panel.data.values.copy()
    optimizer.step()
    qtbot.waitUntil(lambda: not np.array_equal(panel.data.values, before), timeout=1000)
    np.testing.assert_allclose(panel.data.values, net[2].weight.detach().numpy())
    # the gradient came from outside: the status says so, no per-use claim is made
    status = explorer.window.controls.status.text()
    assert "outside the explorer" in status and "is None" not in status
    column = explorer.window.tree_panel.model.index_for_path("2.weight").siblingAtColumn(5)
    assert column.data() != "—"


def test_the_handle_selects_and_refreshes(qtbot):
    net = notebook_net()
    explorer = netexplorer.show(net, block=False)
    qtbot.addWidget(explorer.window)
    explorer.select("0.bias")
    assert explorer.window.document.selected == "0.bias"
    with torch.no_grad():
        net[0].bias.fill_(0.25)
    explorer.refresh()
    assert (explorer.window.heatmap_panel.data.values == 0.25).all()
