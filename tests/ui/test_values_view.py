"""The Values tab prints what Python prints, as the notebook shows it."""

from __future__ import annotations

import torch
from IPython.lib.pretty import pretty
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from safetensors.torch import save_file

from netexplorer.core.printing import live_object


def values_tab(qtbot, window, press, spec: str, select: str):
    w = window(spec, select=select)
    w.show()
    qtbot.waitExposed(w)
    press(w, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)  # the Values tab
    panel = w.values_panel
    qtbot.waitUntil(lambda: w.centre.currentWidget() is panel)
    qtbot.waitUntil(lambda: panel.printed is not None and not panel.busy, timeout=10_000)
    return w, panel


def cells(panel) -> dict[str, str]:
    return dict(panel.printed.cells)


def test_a_parameter_prints_as_in_the_notebook(qtbot, window, press):
    w, panel = values_tab(qtbot, window, press, "example:mlp", "2.bias")
    net = w.document.tree.module
    printed = cells(panel)
    assert printed["net[2].bias"] == repr(net[2].bias)  # Parameter containing: tensor(...)
    assert printed["net[2].bias"].startswith("Parameter containing:\ntensor([")
    assert printed["net[2].bias.data"] == repr(net[2].bias.data)
    assert printed["type(net[2].bias), net[2].bias.requires_grad"] == (
        "(torch.nn.parameter.Parameter, True)"
    )
    assert printed["net[2].bias.grad"] == "None"  # the notebook's NoneType
    text = panel.selection.toPlainText()
    assert ">>> net[2].bias\nParameter containing:" in text
    panel.copy_values.click()
    assert QGuiApplication.clipboard().text() == repr(net[2].bias.data)
    assert "Linear(in_features=4, out_features=8, bias=True)" in panel.net.toPlainText()
    assert panel.net.toPlainText() == repr(net)


def test_a_module_prints_its_state_dict(qtbot, window, press):
    w, panel = values_tab(qtbot, window, press, "example:mlp", "0")
    net = w.document.tree.module
    printed = cells(panel)
    assert printed["net[0]"] == repr(net[0])
    assert printed["net[0].state_dict()"] == pretty(net[0].state_dict(), max_width=79)
    assert printed["net[0].state_dict()"].startswith("OrderedDict([('weight',")


def test_the_values_follow_a_backward_pass_and_nested_access(qtbot, window, press):
    w, panel = values_tab(qtbot, window, press, "example:nested", "0.block 1.0.bias")
    net = w.document.tree.module
    assert cells(panel)["net[0][1][0].bias.data"] == repr(net[0][1][0].bias.data)
    w.document.session.run("backward")
    qtbot.waitUntil(
        lambda: cells(panel).get("net[0][1][0].bias.grad", "None") != "None", timeout=10_000
    )
    assert cells(panel)["net[0][1][0].bias.grad"] == repr(net[0][1][0].bias.grad)


def test_a_checkpoint_tensor_prints_as_torch_loads_it(qtbot, window, press, tmp_path):
    torch.manual_seed(0)
    state = {"fc.weight": torch.randn(3, 4).to(torch.bfloat16), "fc.bias": torch.randn(3)}
    path = tmp_path / "small.safetensors"
    save_file(state, str(path))
    _w, panel = values_tab(qtbot, window, press, str(path), "fc.weight")
    assert cells(panel)["net.fc.weight"] == repr(state["fc.weight"])  # dtype=torch.bfloat16


def test_live_object_walks_paths_as_attribute_access_does():
    from torch import nn

    net = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.BatchNorm1d(2))
    assert live_object(net, "0.0.bias") is net[0][0].bias
    assert live_object(net, "1.running_mean") is net[1].running_mean
    assert live_object(net, "0") is net[0]
