"""A monkey at the keyboard: a seeded sequence of real user actions on the examples and a
checkpoint (select, filter, switch views, pass buttons, train and pause, edits, undo,
opening other sources, presentation mode, resizing), in a window on screen.

It fails on any exception that reaches Qt's event loop (pytest-qt turns those into test
failures), and every so often, once the window is idle, checks that what is shown is the
model's state: the heatmap shows the selected tensor's values and gradient, the tree's
gradient column its gradient's norm, the buttons the pass state. The checkpoint it opens is
hashed before and after: opened files are never written."""

from __future__ import annotations

import hashlib
import os
import random
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from netexplorer.core.printing import live_object
from netexplorer.resources import resource_path
from netexplorer.ui.appearance import appearance
from netexplorer.ui.pass_state import Phase
from netexplorer.ui.tree_view import GRAD

ACTIONS = 1500
SEED = 20261129
EXAMPLES = ("example:tied", "example:mlp", "example:nested", "example:rnn", "example:sharing")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Monkey:
    def __init__(self, qtbot, window, rng: random.Random, checkpoint: str) -> None:
        self.qtbot, self.w, self.rng = qtbot, window, rng
        self.sources = [*EXAMPLES, checkpoint]
        self.session = window.document.session
        self.checks = 0

    # -- the actions a person does ----------------------------------------------------------

    def select(self) -> None:
        tree = self.w.document.tree
        if tree is not None:
            paths = [*tree.tensors, *tree.modules]
            self.w.document.select(self.rng.choice(paths))

    def click_tree_row(self) -> None:
        panel = self.w.tree_panel
        rows = panel.proxy.rowCount(panel.view.rootIndex())
        if rows:
            index = panel.view.indexAt(
                QPoint(20, self.rng.randrange(0, max(1, panel.view.height())))
            )
            if index.isValid():
                rect = panel.view.visualRect(index)
                self.qtbot.mouseClick(
                    panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()
                )

    def filter(self) -> None:
        text = self.rng.choice(["weight", "bias", "0", "Linear", "zz", ""])
        self.w.tree_panel.filter_edit.setText(text)
        self.w.tree_panel._apply_filter()

    def clear_filter(self) -> None:
        self.w.tree_panel.clear_filter()

    def tab(self) -> None:
        self.w.show_panel(self.rng.choice(["heatmap_panel", "graph_panel", "values_panel"]))

    def press_pass(self) -> None:
        name = self.rng.choice(["forward", "backward", "backward", "zero_grad", "step"])
        button = getattr(self.w.controls, f"{name}_button")
        if button.isEnabled():
            self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    def train_a_moment(self) -> None:
        button = self.w.controls.train_button
        if button.isEnabled() and button.text() == "Train":
            self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            self.qtbot.wait(self.rng.randrange(5, 60))
            if button.isEnabled() and button.text() == "Pause":
                self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    def edit(self) -> None:
        tensor = self.w.document.shown_tensor()
        if (
            tensor is None
            or not self.session.engine
            or not tensor.shape
            or tensor.kind != "parameter"
        ):
            return
        index = tuple(self.rng.randrange(n) for n in tensor.shape)
        self.session.edit_value(tensor.path, index, self.rng.uniform(-2, 2))

    def init_or_undo(self) -> None:
        actions = self.w.edit_actions
        if self.rng.random() < 0.5 and actions.undo.isEnabled():
            actions.undo.trigger()
        else:
            scheme = self.rng.choice(["normal", "zeros", "xavier_uniform", "chapter"])
            if actions.inits[scheme].isEnabled():
                actions.inits[scheme].trigger()

    def walk(self) -> None:
        (self.w.next_tensor if self.rng.random() < 0.5 else self.w.previous_tensor).trigger()

    def open_source(self) -> None:
        self.w.checkpoint_actions.open(self.rng.choice(self.sources))

    def presentation(self) -> None:
        self.w.view_actions.toggle_presentation()

    def zoom(self) -> None:
        actions = self.w.view_actions
        self.rng.choice([actions.larger, actions.smaller, actions.reset]).trigger()

    def resize(self) -> None:
        self.w.resize(self.rng.randrange(900, 1700), self.rng.randrange(650, 1000))

    # -- what is shown is the state ---------------------------------------------------------

    def busy(self) -> list[str]:
        """What still works (empty when the window is idle)."""
        w, session = self.w, self.session
        settled = session.state.can_act or session.state.phase is Phase.UNAVAILABLE
        out = [] if settled else [f"phase {session.state.phase}"]
        out += ["the session's worker"] if session.busy else []
        out += ["opening"] if w.checkpoint_actions.opener.busy else []
        out += [f"{type(r.parent()).__name__}'s runner" for r in w.runners() if r.busy]
        return out

    def settle(self) -> None:
        try:
            self.qtbot.waitUntil(lambda: not self.busy(), timeout=20_000)
        except Exception as exc:
            raise AssertionError(f"the window never became idle: {self.busy()}") from exc

    def check(self) -> None:
        self.settle()
        self.checks += 1
        w, session = self.w, self.session
        document, panel = w.document, w.heatmap_panel
        for name, action in w.controls.actions.items():
            assert action.isEnabled() == session.state.can_act, name
        tensor = document.shown_tensor()
        if tensor is None or not tensor.handle.has_values:
            return
        self.qtbot.waitUntil(lambda: panel.data is not None and panel.data.path == tensor.path)
        tree = document.tree
        if tree.module is None:
            np.testing.assert_array_equal(panel.data.values, tensor.handle.array())
            return
        live = live_object(tree.module, tensor.path).detach().numpy()
        np.testing.assert_array_equal(panel.data.values, live)
        if tensor.kind != "parameter":
            return
        grad = live_object(tree.module, tensor.path).grad
        row = w.tree_panel.model.index_for_path(tensor.path)
        # a filter may hide its row (a module selected, its first tensor not matching)
        assert row.isValid() or w.tree_panel.filter_edit.text()
        column = row.siblingAtColumn(GRAD).data() if row.isValid() else None
        if grad is None:
            assert panel.data.grad is None and column in ("—", None)
        else:
            np.testing.assert_array_equal(panel.data.grad, grad.numpy())
            norm = float(np.linalg.norm(grad.numpy().astype(np.float64)))
            assert (
                column is None
                or column == f"{norm:.4g}"
                or (abs(float(column) - norm) <= 1e-4 * max(1.0, norm))
            )


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "tied.safetensors"
    shutil.copy(resource_path("examples", "tied.safetensors"), path)
    return path


def test_a_seeded_monkey_breaks_nothing(qtbot, window, checkpoint):
    look = appearance().look
    w = window("example:tied", select="2.weight")
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    before = sha256(checkpoint)
    rng = random.Random(SEED)
    monkey = Monkey(qtbot, w, rng, str(checkpoint))
    weighted = [
        (monkey.select, 20), (monkey.click_tree_row, 10), (monkey.filter, 4),
        (monkey.clear_filter, 3), (monkey.tab, 6), (monkey.press_pass, 20),
        (monkey.train_a_moment, 3), (monkey.edit, 5), (monkey.init_or_undo, 4),
        (monkey.walk, 10), (monkey.open_source, 2), (monkey.presentation, 1),
        (monkey.zoom, 2), (monkey.resize, 2),
    ]  # fmt: skip
    actions = [a for a, _ in weighted]
    weights = [k for _, k in weighted]
    try:
        for i in range(ACTIONS):
            action = rng.choices(actions, weights)[0]
            if os.environ.get("MONKEY_LOG"):  # which action, on what, before a failure
                print(i, action.__name__, w.document.selected, flush=True)
            action()
            qtbot.wait(0) if i % 4 else qtbot.wait(1)
            if i % 75 == 74:
                monkey.check()
        monkey.check()
    finally:
        appearance().set_look(look)
    assert monkey.checks >= 20
    assert sha256(checkpoint) == before  # opened, never written
