"""One import of torch, whoever asks first: a file opened while another thread is still
importing torch (the window's workers do, in its first seconds) opens."""

from __future__ import annotations

import subprocess
import sys

import torch
from checkpoint_builders import write_torch

# A thread imports torch the plain way (as a UI worker or a user's script may); the main thread
# waits until the half-built module is in sys.modules, then opens files and reads values.
RACE = """
import sys, threading
from netexplorer.core.describe import describe
from netexplorer.core.sources import open_source
worker = threading.Thread(target=lambda: __import__("torch"))
worker.start()
while "torch" not in sys.modules:
    pass
half_built = getattr(sys.modules["torch"].__spec__, "_initializing", False)
trees = [open_source(path) for path in sys.argv[1:]]
for tree in trees:
    describe(tree, stats=True)
worker.join()
print(half_built, [len(tree.tensors) for tree in trees])
"""


def _run(script: str, *paths) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_a_file_opened_while_another_thread_imports_torch(tmp_path):
    sd = {f"layers.{i}.weight": torch.ones(2, 2) for i in range(2000)}
    zipped = write_torch(tmp_path / "sd.pt", sd)
    legacy = write_torch(tmp_path / "legacy.pt", {"w": torch.ones(3)}, legacy=True)
    half_built, counts = _run(RACE, zipped, legacy).split(" ", 1)
    assert half_built == "True"  # the open really met a half-imported torch
    assert counts == "[2000, 1]"
