"""Passes from the window: buttons, live gradients that add up, per-use contributions,
training off the GUI thread with Pause, and failures that leave the app running."""

import numpy as np
import pytest
import torch
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from torch import nn

import netexplorer
from netexplorer.core.handles import TorchHandle
from netexplorer.core.tree import tree_from_entries
from netexplorer.ui.pass_state import Phase


def click(qtbot, window, name):
    """Press a pass button and wait until its worker has finished and the window is idle
    (or failed) again."""
    session = window.document.session
    button = getattr(window.controls, f"{name}_button")
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert session.state.phase is Phase.RUNNING  # at once: the buttons know
    qtbot.waitUntil(lambda: session.state.can_act and not session.busy, timeout=10_000)


@pytest.fixture
def tied_window(qtbot, window):
    w = window("example:tied", select="2.weight")
    w.show()
    qtbot.waitExposed(w)
    return w


def test_no_gradient_until_backward_then_two_backwards_double_it(qtbot, tied_window):
    w = tied_window
    panel = w.heatmap_panel
    assert not panel.grad.showing_values
    assert "net[2].weight.grad is None" in panel.grad.message.text()
    click(qtbot, w, "backward")
    once = panel.data.grad.copy()
    assert panel.grad.showing_values
    click(qtbot, w, "backward")
    np.testing.assert_array_equal(panel.data.grad, 2 * once)  # gradients accumulate
    assert "2 backward passes accumulated" in w.controls.status.text()
    click(qtbot, w, "zero_grad")
    assert panel.data.grad is None and not panel.grad.showing_values


def test_backward_shows_each_use_and_their_sum(qtbot, tied_window):
    w = tied_window
    panel = w.heatmap_panel
    click(qtbot, w, "backward")
    data = panel.data
    assert [(c.site, c.call) for c in data.contributions] == [("2", 0), ("4", 0)]
    captions = [u.caption.text() for u in panel.uses if u.isVisibleTo(panel)]
    assert captions[0] == "via <b>net[2]</b>" and captions[1] == "via <b>net[4]</b>"
    assert "sum of uses" in captions[2]
    total = panel.uses[2].view.image.image
    np.testing.assert_allclose(total, data.grad, atol=1e-6)
    assert data.contribution_error < 1e-5
    assert "max |sum − grad|" in panel.uses_label.text()
    # the two uses differ: the gradient really arrives in two different parts
    assert not np.allclose(data.contributions[0].values, data.contributions[1].values)
    # the partner path shows the same tensor, the same uses
    w.document.select("4.weight")
    np.testing.assert_array_equal(panel.data.grad, data.grad)


def test_forward_prints_the_output_like_the_notebook(qtbot, tied_window):
    w = tied_window
    click(qtbot, w, "forward")
    net = w.document.tree.module
    x = w.document.tree.default_input.make(0)
    expected = net(x).detach().numpy()
    text = w.controls.output.toPlainText()
    assert text.startswith("net(X) = tensor([[")
    assert f"{expected[0, 0]:.4f}".rstrip("0") in text
    assert panel_grad_is_none(w)  # forward alone makes no gradient


def panel_grad_is_none(w) -> bool:
    return w.heatmap_panel.data.grad is None


def test_the_tree_gains_a_live_gradient_norm_column(qtbot, tied_window):
    w = tied_window
    model = w.tree_panel.model
    assert not w.tree_panel.view.isColumnHidden(5)
    index = model.index_for_path("0.weight").siblingAtColumn(5)
    assert index.data() == "—"
    click(qtbot, w, "backward")
    norm = torch.linalg.norm(w.document.tree.module[0].weight.grad).item()
    assert index.data() == f"{norm:.4g}"


def test_training_runs_off_the_gui_thread_and_pauses_between_steps(qtbot, tied_window):
    w = tied_window
    session = w.document.session
    ticks = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer(w)
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start(10)
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)
    assert session.training and w.controls.train_button.text() == "Pause"
    assert not w.controls.backward_button.isEnabled()
    qtbot.waitUntil(lambda: len(w.controls._losses) > 50, timeout=20_000)
    frames = []
    w.document.tensor_data_changed.connect(lambda d: frames.append(d.version))
    qtbot.waitUntil(lambda: len(frames) >= 3, timeout=5000)  # heatmaps refresh while training
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state.phase is Phase.IDLE, timeout=10_000)
    timer.stop()
    qtbot.waitUntil(lambda: not session.busy, timeout=10_000)
    steps = session.engine.steps_taken
    assert steps > 50 and w.controls.train_button.text() == "Train"
    assert len(ticks) > 10  # the GUI thread kept running its timer while training
    assert w.controls._losses[-1] < w.controls._losses[0]  # the loss went down
    qtbot.wait(100)
    assert session.engine.steps_taken == steps  # paused: no more steps
    assert w.controls.backward_button.isEnabled()


@pytest.mark.parametrize("points", [2_009, 2_104, 40_000])
def test_the_loss_curve_of_a_long_run_settles_once_drawn(qtbot, tied_window, points):
    """Backward at step 0, then the losses of a training run far from it (a model trained
    600,000 steps), as training frames bring them: the curve spans both, and once drawn the
    plot stops repainting. pyqtgraph's automatic downsampling follows the view while the
    view follows the drawn points: for some counts (2,104 here) the first point was dropped
    and restored in turn, 400 repaints a second, idle or not, and training slowed 3-10x in
    a long soak."""
    import pyqtgraph as pg

    w = tied_window
    w.resize(1500, 950)
    session = w.document.session
    click(qtbot, w, "backward")
    losses = [(600_001 + i, 1e-3 / (1 + i)) for i in range(points)]
    for first in range(0, points, 45):  # frames of 45 steps, as training sends them
        session.losses_added.emit(losses[first : first + 45])
    qtbot.wait(300)  # drawn
    axis = w.controls.curve_plot.getAxis("bottom")
    assert axis.isVisible()
    painted = []
    original = pg.AxisItem.paint

    def counting(item, *args):
        if item is axis:
            painted.append(item)
        return original(item, *args)

    pg.AxisItem.paint = counting
    try:
        qtbot.wait(500)
    finally:
        pg.AxisItem.paint = original
    assert len(painted) <= 2, f"the idle loss plot repainted {len(painted)} times in 0.5 s"
    (left, right), _ = w.controls.curve_plot.getViewBox().viewRange()
    assert left <= 0 and right >= losses[-1][0]  # the whole curve in view


def test_the_drawn_loss_curve_keeps_spikes_ends_and_its_size():
    from netexplorer.ui.controls import peaks

    xs = list(range(100_000))
    ys = [1.0] * 100_000
    ys[31_337] = 50.0  # one step's spike
    ys[77_000] = float("nan")  # skipped, not spread to its stretch
    x, y = peaks(xs, ys, 2_000)
    assert len(x) == len(y) <= 2_000
    assert x[0] == 0 and x[-1] == 99_999 and y[-1] == 1.0
    assert max(y) == 50.0 and not np.isnan(y).any()
    assert peaks(xs[:10], ys[:10], 2_000) == (xs[:10], ys[:10])  # few: as they are


def test_a_model_opened_from_the_window_has_its_parameters_indexed_off_the_gui_thread(
    qtbot, window, monkeypatch
):
    """File ▸ Open of a live model: the worker that builds it also walks its parameters,
    buffers and modules for the pass engine (30 ms for 10,000 modules), not the GUI thread
    when the tree is shown; Backward then works as ever."""
    import threading

    from netexplorer.core.passes import parameters

    made_in: list[str] = []
    original = parameters.ParameterIndex.__init__

    def recording(index, module):
        made_in.append(threading.current_thread().name)
        original(index, module)

    monkeypatch.setattr(parameters.ParameterIndex, "__init__", recording)
    w = window()
    w.show()
    qtbot.waitExposed(w)
    w.open_source("example:tied")  # as File ▸ Open does
    session = w.document.session
    qtbot.waitUntil(lambda: session.engine is not None, timeout=20_000)
    tree = w.document.tree
    assert tree.source == "example:tied"
    assert session.engine.index is tree.parameter_index
    assert made_in and threading.main_thread().name not in made_in
    w.document.select("2.weight")
    w.build_panels()
    click(qtbot, w, "backward")
    assert w.heatmap_panel.grad.showing_values
    assert "1 backward pass accumulated" in w.controls.status.text()


def test_a_loss_spike_stays_on_the_curve_of_a_long_run(qtbot, tied_window):
    """Past MAX_CURVE_POINTS the kept losses are thinned to each stretch's lowest and
    highest (every other point was kept before: a one-step spike could vanish)."""
    from netexplorer.ui.controls import MAX_CURVE_POINTS

    w = tied_window
    session = w.document.session
    count = MAX_CURVE_POINTS + 50_000
    losses = [(step, 1.0) for step in range(count)]
    losses[77_777] = (77_777, 9.0)  # one step's spike, at an odd step
    for first in range(0, count, 25_000):
        session.losses_added.emit(losses[first : first + 25_000])
    assert len(w.controls._steps) <= MAX_CURVE_POINTS
    assert max(w.controls._losses) == 9.0
    _, drawn = w.controls.curve.getData()
    assert max(drawn) == 9.0


def test_selecting_while_training_shows_each_selection_and_training_goes_on(qtbot, tied_window):
    """The worker gives way while a selection and its first frame are drawn
    (session.FramePacer.hold): the heatmap follows each selection, training never stops."""
    w = tied_window
    session = w.document.session
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.engine.steps_taken > 20, timeout=20_000)
    for path in ("0.weight", "4.bias", "2.weight", "6.weight"):
        before = session.engine.steps_taken
        w.document.select(path)
        qtbot.waitUntil(
            lambda p=path: w.heatmap_panel.data is not None and w.heatmap_panel.data.path == p,
            timeout=5000,
        )
        qtbot.waitUntil(lambda b=before: session.engine.steps_taken > b + 10, timeout=5000)
        assert session.training
    qtbot.mouseClick(w.controls.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not session.busy, timeout=10_000)


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.bad = BadLayer()

    def forward(self, x):
        return self.bad(self.first(x))


class BadLayer(nn.Module):
    def forward(self, x):
        raise ValueError("this layer is broken")


def test_a_forward_that_raises_leaves_the_window_usable(qtbot, dialogs):
    net = Exploding()
    w = netexplorer.show(net, select="first.weight", block=False).window
    qtbot.addWidget(w)
    before = net.first.weight.detach().clone()
    click(qtbot, w, "backward")
    status = w.controls.status.text()
    assert "this layer is broken" in status and "net.bad" in status
    assert w.heatmap_panel.data.grad is None  # nothing half-accumulated
    torch.testing.assert_close(net.first.weight.detach(), before)
    w.document.select("first.bias")  # still explorable
    assert w.heatmap_panel.data.path == "first.bias"
    assert w.controls.backward_button.isEnabled()


def test_a_wrong_input_shape_is_named(qtbot, tied_window):
    w = tied_window
    w.controls.shape.setText("2, 5")
    w.controls.shape.editingFinished.emit()
    click(qtbot, w, "backward")
    status = w.controls.status.text()
    assert "net[0]" in status and "4" in status
    w.controls.shape.setText("2, 4")
    w.controls.shape.editingFinished.emit()
    click(qtbot, w, "backward")
    assert w.heatmap_panel.data.grad is not None


def test_a_selected_module_shows_its_captured_activation(qtbot, tied_window):
    w = tied_window
    click(qtbot, w, "forward")
    w.document.select("2")
    panel = w.heatmap_panel
    captions = [u.caption.text() for u in panel.uses if u.isVisibleTo(panel)]
    assert captions == ["<b>output of net[2]</b>, call 0"]
    net, x = w.document.tree.module, w.document.tree.default_input.make(0)
    expected = net[2](net[1](net[0](x))).detach().numpy()
    np.testing.assert_allclose(panel.uses[0].view.image.image, expected, rtol=1e-5)


def test_a_checkpoint_without_code_has_no_passes(qtbot, window):
    w = window()
    state = nn.Linear(2, 2).state_dict()
    tree = tree_from_entries((k, TorchHandle(v, snapshot=False)) for k, v in state.items())
    w.set_tree(tree)
    assert w.controls.isHidden()
    assert w.document.session.engine is None
    assert "no forward pass" in w.document.session.unavailable_reason
    assert not w.heatmap_panel.grad.isVisibleTo(w.heatmap_panel)
