"""Models that misbehave, driven from the window as a person does (window up, then the
buttons): a forward that sleeps, changes its own parameters or carries the model's own
hooks; a backward through an operation without a gradient; frozen parameters; a model on a
device this machine lacks. The app says what happened, stays responsive and keeps what it had
(a forward that raises, a wrong input and a NaN loss are in test_passes_ui.py)."""

import io
import time
import zipfile

import numpy as np
import pytest
import torch
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from test_passes_ui import click
from torch import nn

import netexplorer
from netexplorer.cli import main
from netexplorer.core.sources import open_source
from netexplorer.ui.pass_state import Phase


def shown(qtbot, net, select):
    w = netexplorer.show(net, select=select, block=False).window
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


class SelfChanging(nn.Module):
    """Adds 1 to its own weight in every forward pass."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        with torch.no_grad():
            self.lin.weight.add_(1.0)
        return self.lin(x)


def test_a_forward_that_changes_its_own_parameters_is_shown_as_it_is_now(qtbot):
    torch.manual_seed(0)
    net = SelfChanging()
    w = shown(qtbot, net, "lin.weight")
    before = net.lin.weight.detach().clone()
    click(qtbot, w, "forward")
    qtbot.waitUntil(
        lambda: np.allclose(w.heatmap_panel.data.values, net.lin.weight.detach().numpy()),
        timeout=5000,
    )
    np.testing.assert_allclose(w.heatmap_panel.data.values, before.numpy() + 1.0, rtol=1e-6)
    expected = pytest.approx(float(before.min()) + 1.0, rel=1e-5)
    qtbot.waitUntil(
        lambda: w.details.stats is not None and w.details.stats.min == expected, timeout=5000
    )


class SharedHooked(nn.Module):
    """One layer used twice, with a gradient hook of its own that scales .grad by 10."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.lin.weight.register_hook(lambda g: g * 10)

    def forward(self, x):
        return self.lin(self.lin(x))


def test_the_models_own_gradient_hook_is_named_when_uses_do_not_add_up(qtbot):
    torch.manual_seed(0)
    net = SharedHooked()
    w = shown(qtbot, net, "lin.weight")
    click(qtbot, w, "backward")
    status = w.controls.status.text()
    assert "lin.weight" in status and "gradient hook of the model" in status
    panel = w.heatmap_panel
    assert len(panel.data.contributions) == 2  # the uses are still shown
    np.testing.assert_allclose(panel.data.grad, net.lin.weight.grad.numpy(), rtol=1e-6)


class NonDifferentiable(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x).argmax(dim=1).float()


def test_a_backward_through_argmax_says_why_and_changes_nothing(qtbot):
    torch.manual_seed(0)
    net = NonDifferentiable()
    w = shown(qtbot, net, "lin.weight")
    click(qtbot, w, "backward")
    status = w.controls.status.text()
    assert "does not depend on any parameter that requires grad" in status
    assert "argmax" in status
    assert net.lin.weight.grad is None and w.heatmap_panel.data.grad is None
    assert w.controls.forward_button.isEnabled()


class PartlyFrozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.frozen(x))


def test_frozen_and_unused_parameters_say_why_they_have_no_gradient(qtbot):
    torch.manual_seed(0)
    net = PartlyFrozen()
    w = shown(qtbot, net, "head.weight")
    click(qtbot, w, "backward")
    assert w.heatmap_panel.data.grad is not None

    def grad_fact() -> str:
        return w.details._grad_label.text()

    w.document.select("frozen.weight")
    qtbot.waitUntil(lambda: "requires_grad is False" in grad_fact(), timeout=5000)
    w.document.select("unused.weight")
    qtbot.waitUntil(lambda: "did not reach it" in grad_fact(), timeout=5000)
    click(qtbot, w, "step")  # a step moves only what has a gradient
    assert net.frozen.weight.grad is None


class Sleepy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        time.sleep(0.15)
        return self.lin(x)


def test_training_a_slow_model_keeps_the_window_responsive_and_pauses_between_steps(qtbot):
    torch.manual_seed(0)
    w = shown(qtbot, Sleepy(), "lin.weight")
    session = w.document.session
    gaps, clock, last = [], QElapsedTimer(), [0]
    clock.start()

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(w)
    timer.timeout.connect(tick)
    timer.start(10)
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.engine.steps_taken >= 2, timeout=10_000)
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)  # Pause
    paused_at = clock.elapsed()
    qtbot.waitUntil(lambda: session.state.phase is Phase.IDLE, timeout=5000)
    waited = clock.elapsed() - paused_at
    timer.stop()
    assert waited < 1000  # at most the step that was running (0.15 s) and its bookkeeping
    assert max(gaps[1:]) < 500  # the GUI thread kept turning while each forward slept
    steps = session.engine.steps_taken
    qtbot.wait(400)
    assert session.engine.steps_taken == steps


def test_a_model_built_for_a_device_this_machine_lacks_is_one_line(tmp_path, capsys):
    (tmp_path / "on_cuda.py").write_text(
        "from torch import nn\ndef make():\n    return nn.Linear(4, 4).to('cuda')\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["on_cuda:make", "--summary"]) == 2
    finally:
        sys.path.remove(str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert err.startswith("netexplorer: cannot build on_cuda:make") and "CUDA" in err
    assert "\n" not in err and "Traceback" not in err


def test_a_checkpoint_saved_on_a_gpu_opens_on_this_cpu(tmp_path):
    """Storages say where they lived ('cuda:0'); values are read into memory here."""
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = tmp_path / "gpu.pt"
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data  # protocol 2, as torch.save writes
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info.filename, data)
    tree = open_source(str(path))
    np.testing.assert_array_equal(tree.tensors["w"].handle.array(), state["w"].numpy())
