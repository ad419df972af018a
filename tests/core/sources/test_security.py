"""Pickles whose loading would run code are refused without trust, and run nothing.

Each payload (os.system, builtins.exec, builtins.eval) would create a marker file; it is put in
a state dict saved in the zip format, in the legacy format, and nested inside a Lightning
`.ckpt`. Opened without trust, through `open_source` and through the command line, no marker
may appear.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from checkpoint_builders import PAYLOADS, evil_file, example_net, write_torch

from netexplorer.core.errors import UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source

CONTAINERS = ["zip", "legacy", "ckpt"]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_refused_without_running_code(tmp_path, payload, container):
    marker = tmp_path / "MARKER"
    path = evil_file(tmp_path, payload, container, marker)
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(path))
    message = str(info.value)
    assert not marker.exists()
    assert str(path) in message and "\n" not in message
    assert "can run code from the file" in message and "--trust" in message
    wanted = {"os.system": "system", "exec": "exec", "eval": "eval"}[payload]
    assert f"needs code to load ({wanted}" in message or f".{wanted}" in message


def test_cli_refuses_with_exit_2_and_one_line(tmp_path):
    runs = {}
    for container in CONTAINERS:  # the three CLI runs in parallel: each imports torch
        folder = tmp_path / container
        folder.mkdir()
        path = evil_file(folder, "os.system", container, folder / "MARKER")
        command = [sys.executable, "-m", "netexplorer", str(path), "--summary"]
        runs[container] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for container, process in runs.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (container, stderr)
        assert stdout == ""
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert "can run code from the file" in lines[0] and "--trust" in lines[0]
        assert not (tmp_path / container / "MARKER").exists()


def test_whole_pickled_module_is_refused_without_trust(tmp_path):
    path = write_torch(tmp_path / "model.pt", example_net("mlp"))
    with pytest.raises(UntrustedPickleError, match=r"torch\.nn\.modules\.container\.Sequential"):
        open_source(str(path))


def test_the_marker_would_appear_with_trust(tmp_path):
    """The payloads are real: trusting the file runs them (so the tests above mean something)."""
    marker = tmp_path / "MARKER"
    path = evil_file(tmp_path, "exec", "zip", marker)
    with contextlib.suppress(Exception):
        open_source(str(path), OpenOptions(trust=True))
    assert marker.exists()


def test_old_pytorch_refuses_pickles_without_trust(tmp_path, monkeypatch):
    """Before 2.6, weights_only=True had a code-execution bypass (CVE-2025-32434). Plain zip
    and legacy files do not need torch's unpickler (netexplorer's own reads them); a file
    holding what only torch builds (a quantized tensor) does."""
    import warnings

    import torch

    plain = write_torch(tmp_path / "plain.pt", {"w": torch.ones(2)})
    legacy = write_torch(tmp_path / "legacy.pt", {"w": torch.ones(2)}, legacy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, still saved
        q = torch.quantize_per_tensor(torch.randn(2, 2), 0.1, 0, torch.qint8)
    quantized = write_torch(tmp_path / "q.pt", {"q": q}, legacy=True)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    assert open_source(str(plain)).tensors["w"].shape == (2,)
    assert open_source(str(legacy)).tensors["w"].shape == (2,)
    with pytest.raises(UntrustedPickleError, match=r"PyTorch 2\.5\.1 cannot load pickles safely"):
        open_source(str(quantized))
    assert open_source(str(quantized), OpenOptions(trust=True)).tensors["q"].shape == (2, 2)
