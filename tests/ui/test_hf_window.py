"""Hugging Face folders and TorchScript archives in a window already on screen, as a person
does it: open the folder (File ▸ Open folder's path: a worker), the architecture arrives and
refines the tree, Make live, Backward, and the embedding's two uses beside their sum; a
traced archive opened with File ▸ Open and trusted runs its passes; the input field takes a
whole input; the eval-mode switch."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hf"))
from tiny_models import save


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    return save("gpt2", tmp_path_factory.mktemp("hf-window"))


def shown_window(qtbot, window):
    w = window()
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    return w


def click(qtbot, button) -> None:
    assert button.isEnabled() and button.isVisible(), f"{button.text()} cannot be pressed"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def idle(qtbot, w) -> None:
    session = w.document.session
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=20_000)


def test_open_folder_make_live_backward_shows_the_embeddings_uses(
    qtbot, window, gpt2_folder, dialogs
):
    w = shown_window(qtbot, window)
    w.checkpoint_actions.open(str(gpt2_folder))
    # the architecture from config.json refines the header tree in a worker
    qtbot.waitUntil(
        lambda: w.document.tree is not None and w.document.tree.structure is not None,
        timeout=30_000,
    )
    tree = w.document.tree
    assert tree.root.type_name == "GPT2LMHeadModel"
    assert tree.tie_group("lm_head.weight").tie_from == "config"
    button = w.hf_actions.button
    qtbot.waitUntil(button.isVisible)
    click(qtbot, button)
    qtbot.waitUntil(lambda: w.document.tree.is_live, timeout=30_000)
    w.document.select("transformer.wte.weight")
    w.wait_idle()
    assert w.controls.isVisible()
    assert w.controls.loss.currentData() == "model"  # the model's own loss, said in the UI
    assert w.controls.loss.currentText() == "the model's own"
    click(qtbot, w.controls.backward_button)
    idle(qtbot, w)
    panel = w.heatmap_panel
    qtbot.waitUntil(lambda: len(panel.uses_box.shown) == 3, timeout=10_000)
    captions = [p.caption.text() for p in panel.uses_box.shown]
    assert captions == [
        "via <b>net.transformer.wte</b>",
        "via <b>net.lm_head</b>",
        "<b>sum of uses</b> = grad",
    ]
    grad = w.document.tree.module.transformer.wte.weight.grad.numpy()
    total = np.sum([c.values for c in panel.data.contributions], axis=0)
    np.testing.assert_allclose(total, grad, rtol=1e-4, atol=1e-6)
    assert "loss (the model's own)" in w.controls.output.toPlainText()
    source = w.details.source.text()  # the weights report says the head is tied, not missing
    assert "lm_head.weight: tied to transformer.wte.weight, loaded through it" in source
    assert "missing" not in source
    assert not dialogs


def test_the_input_field_takes_a_whole_input(qtbot, window, gpt2_folder):
    w = shown_window(qtbot, window)
    w.checkpoint_actions.open(str(gpt2_folder))
    qtbot.waitUntil(lambda: w.hf_actions.can_make_live(), timeout=30_000)
    qtbot.waitUntil(lambda: w.document.tree.structure is not None, timeout=30_000)
    assert w.hf_actions.make_live()
    qtbot.waitUntil(lambda: w.document.tree.is_live, timeout=30_000)
    w.wait_idle()
    field = w.controls.shape
    assert field.text() == "input_ids=tokens:2,8<50 labels=@input_ids"
    assert not w.controls.distribution.isVisible()  # the kinds are in the field
    field.clear()
    qtbot.keyClicks(field, "input_ids=tokens:3,5<50 labels=@input_ids")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    engine = w.document.session.engine
    assert engine.input_spec.arguments[0].spec.shape == (3, 5)
    field.clear()
    qtbot.keyClicks(field, "input_ids=tokens:3,5")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert "upper bound" in w.controls.input_error.text()
    assert engine.input_spec.arguments[0].spec.shape == (3, 5)  # the last good one stays
    # the eval-mode switch: from_pretrained leaves eval mode; off means training mode
    assert w.controls.eval_mode.isChecked()
    w.controls.eval_mode.setChecked(False)
    assert engine.config.eval_mode is False
    click(qtbot, w.controls.forward_button)
    idle(qtbot, w)
    assert w.document.tree.module.training


def test_without_transformers_one_line_says_what_it_adds(qtbot, window, gpt2_folder, monkeypatch):
    from netexplorer.core import hf_library
    from netexplorer.core.sources import hf_architecture

    monkeypatch.setattr(hf_library, "transformers_installed", lambda: False)
    monkeypatch.setattr(hf_architecture, "transformers_installed", lambda: False)
    w = shown_window(qtbot, window)
    w.checkpoint_actions.open(str(gpt2_folder))
    qtbot.waitUntil(lambda: w.document.tree is not None, timeout=20_000)
    message = w.statusBar().currentMessage()
    assert "install transformers" in message and "\n" not in message
    assert w.document.tree.structure is None
    assert not w.hf_actions.button.isVisibleTo(w)  # nothing to make live with


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.layers(self.conv(x)).mean((2, 3)))


def test_a_traced_archive_opened_with_file_open_runs_its_passes(
    qtbot, window, tmp_path, monkeypatch, dialogs
):
    from netexplorer.ui import opening

    torch.manual_seed(0)
    path = tmp_path / "traced.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(_Net(), torch.rand(2, 3, 12, 10)).save(str(path))
    monkeypatch.setattr(opening, "ask_trust", lambda *args: True)  # the user says yes
    w = shown_window(qtbot, window)
    w.checkpoint_actions.open(str(path))
    qtbot.waitUntil(lambda: w.document.tree is not None, timeout=20_000)
    w.document.select("layers.0.weight")
    w.wait_idle()
    assert w.controls.shape.text() == "2, 3, 12, 10"  # the traced example's shape
    assert w.controls.shape.isEnabled() and not w.controls.input_error.isVisible()
    click(qtbot, w.controls.backward_button)
    idle(qtbot, w)
    result = w.document.session.state.result
    assert result.action == "backward" and result.loss is not None
    qtbot.waitUntil(lambda: w.heatmap_panel.grad.isVisible(), timeout=5_000)
    grad = getattr(w.document.tree.module.layers, "0").weight.grad  # no indexing in TorchScript
    assert grad is not None and float(grad.abs().sum()) > 0
    click(qtbot, w.controls.step_button)
    idle(qtbot, w)
    assert w.document.session.engine.steps_taken == 1
    w.set_view("graph")
    panel = w.graph_panel
    qtbot.waitUntil(lambda: panel.laid is not None and not panel.building, timeout=20_000)
    graph = panel.laid.graph
    assert graph.has_data_flow  # the calls read from the compiled graphs
    assert "layers.0" in {n.path for n in graph.nodes}
    assert not dialogs


def test_the_window_shows_the_headers_first_then_the_architecture(qtbot, gpt2_folder):
    """`netexplorer FOLDER --select lm_head.weight`: the window does not wait for
    transformers; the architecture arrives from a worker and brings the tied head, which
    is then selected."""
    from netexplorer.core.launch import LaunchRequest
    from netexplorer.ui.app import window_for

    w = window_for(LaunchRequest(source=str(gpt2_folder), select="lm_head.weight"))
    qtbot.addWidget(w)
    assert w.document.tree.structure is None  # the header tree, at once
    assert "lm_head.weight" not in w.document.tree.tensors
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.document.tree.structure is not None, timeout=30_000)
    qtbot.waitUntil(lambda: w.document.selected == "lm_head.weight", timeout=5_000)
    assert "Architecture: GPT2LMHeadModel" in w.statusBar().currentMessage()
    w.wait_idle()


def test_show_of_a_transformers_model_takes_its_own_inputs_and_loss(qtbot):
    from tiny_models import build

    import netexplorer

    w = netexplorer.show(build("gpt2"), block=False).window
    qtbot.addWidget(w)
    qtbot.waitExposed(w)
    engine = w.document.session.engine
    assert engine.config.loss_name == "model"
    assert engine.input_spec.spec_text() == "input_ids=tokens:2,8<50 labels=@input_ids"
    w.build_panels()
    click(qtbot, w.controls.backward_button)
    idle(qtbot, w)
    assert w.document.session.state.result.loss is not None
