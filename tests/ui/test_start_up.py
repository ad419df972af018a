"""The window shows its tree before pyqtgraph is imported; the plotting panels, made a moment
later, show what the document already had open and selected."""

from __future__ import annotations

import os
import subprocess
import sys

from netexplorer.ui.main_window import MainWindow


def test_the_tree_shows_before_pyqtgraph_and_the_panels_follow():
    script = """
import sys, time
from PySide6.QtWidgets import QApplication
from netexplorer.ui.app import make_app
from netexplorer.ui.main_window import MainWindow

app = make_app()
window = MainWindow()
window.open_source_now("example:tied")
window.document.select("2.weight")
from PySide6.QtCore import QEvent, QObject

first_paint = []

class Watch(QObject):  # what had happened when the tree was first painted
    def eventFilter(self, _obj, event):
        if event.type() == QEvent.Type.Paint and not first_paint:
            first_paint.append(("pyqtgraph" in sys.modules, window.panels_built))
        return False

watch = Watch()
window.tree_panel.view.viewport().installEventFilter(watch)
window.show()
deadline = time.monotonic() + 30
while not first_paint and time.monotonic() < deadline:
    app.processEvents()
tree_rows = window.tree_panel.view.model().rowCount()
before = first_paint[0]
while not window.panels_built and time.monotonic() < deadline:
    app.processEvents()
heatmap, details = window.heatmap_panel, window.details
while (heatmap.loaded is None or details.stats is None) and time.monotonic() < deadline:
    app.processEvents()
print(tree_rows, *before, "pyqtgraph" in sys.modules, heatmap.loaded.path,
      details.stats is not None, window.controls.isVisibleTo(window),
      [window.centre.tabText(i) for i in range(window.centre.count())])
window.close()
from netexplorer.ui.workers import wait_for_workers
wait_for_workers()
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr
    rows, pg_before, built_before, pg_after, shown, stats, controls, *tabs = out.stdout.split()
    assert int(rows) > 0
    assert (pg_before, built_before) == ("False", "False")
    assert (pg_after, shown, stats, controls) == ("True", "2.weight", "True", "True")
    assert " ".join(tabs) == "['Heatmap', 'Graph', 'Values']"


def test_panels_made_late_catch_up_with_a_checkpoint_and_its_selection(qtbot, tmp_path):
    import torch

    path = tmp_path / "sd.pt"
    torch.save({"a.weight": torch.randn(3, 4), "b.weight": torch.randn(5)}, path)
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_source_now(str(path))
    window.document.select("b.weight")
    assert not window.panels_built
    heatmap = window.heatmap_panel  # asking for a panel makes them all
    assert window.panels_built
    assert heatmap.loaded.path == "b.weight"
    assert heatmap.view.image is not None
    assert "b.weight" in window.details.heading.text()
    assert not window.controls.isVisibleTo(window)  # a checkpoint has no passes
    assert [a.text() for a in window.pass_menu.actions() if not a.isSeparator()] == [
        *(a.text() for a in window.controls.actions.values()),
        "Make live",
    ]


def test_a_checkpoint_opens_in_the_window_without_importing_torch(tmp_path):
    """Opening a safetensors file needs neither torch nor its 1.5 s of import: not to paint
    the tree, not for the panels, the heatmap of the first tensor, or the menus (the Edit
    menu's initialisations are listed by name only)."""
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"0.weight": np.ones((3, 4), np.float32), "0.bias": np.zeros(3, np.float32)}, path)
    script = f"""
import sys, time
from netexplorer.ui.app import make_app
from netexplorer.ui.main_window import MainWindow

app = make_app()
window = MainWindow()
window.open_source_now({str(path)!r})
window.show()
window.build_panels()
window.wait_idle(30_000)
shown = window.heatmap_panel.data
print("torch" in sys.modules, shown is not None and shown.path, window.panels_built)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "0.weight", "True"]


def test_showing_a_checkpoint_opened_in_a_worker_imports_nothing_on_the_gui_thread(tmp_path):
    """File ▸ Open's worker makes the tree ready (opening.ready_for_window): the modules
    the window asks about a checkpoint (can it be made live, does a config name its
    architecture) are imported there, so that setting the tree (a million tensors' rows)
    does not stall the window on first-time imports."""
    import numpy as np
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"0.weight": np.ones((3, 4), np.float32), "0.bias": np.zeros(3, np.float32)}, path)
    script = f"""
import sys, threading
from netexplorer.core.sources import OpenOptions
from netexplorer.ui.app import make_app
from netexplorer.ui.main_window import MainWindow
from netexplorer.ui.opening import open_for_window

app = make_app()
window = MainWindow()
window.open_source_now("example:mlp")
window.show()
window.build_panels()
window.wait_idle(30_000)
opened = []
spec = {str(path)!r}
worker = threading.Thread(target=lambda: opened.append(open_for_window(spec, OpenOptions())))
worker.start()
worker.join()
before = set(sys.modules)
window.set_tree(opened[0])
window.wait_idle(30_000)
print(window.document.selected, sorted(set(sys.modules) - before))
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.weight", "[]"]
