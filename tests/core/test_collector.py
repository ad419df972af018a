"""core/collector.py: trees built without the cycle collector, and the objects that live as
long as the process (pyqtgraph's modules and the panels, torch's optimizer stack) moved out
of its reach once each, so that a full collection does not walk them every few minutes
(106 ms while training, measured)."""

from __future__ import annotations

import os
import subprocess
import sys


def run(script: str) -> str:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_each_kind_of_long_lived_objects_is_frozen_once():
    out = run(
        """
import gc
from netexplorer.core.collector import freeze_once
first = [[i] for i in range(1000)]
freeze_once("panels")
frozen = gc.get_freeze_count()
later = [[i] for i in range(1000)]
freeze_once("panels")  # again: nothing more
same = gc.get_freeze_count() == frozen
freeze_once("torch")
print(frozen >= 1000, same, gc.get_freeze_count() >= frozen + 1000)
"""
    )
    assert out == "True True True"


def test_a_window_that_built_its_panels_and_trained_leaves_little_to_collect():
    out = run(
        """
import gc
from netexplorer.ui.app import make_app
from netexplorer.ui.main_window import MainWindow
from netexplorer.ui.workers import run_until
app = make_app()
window = MainWindow()
window.open_source_now("example:tied")
window.show()
window.build_panels()
session = window.document.session
run_until(lambda: not session._warm_runner.busy, 60_000)
window.wait_idle(60_000)
print(len(gc.get_objects()) < 40_000, gc.get_freeze_count() > 200_000)
"""
    )
    assert out == "True True"
