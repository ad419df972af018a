"""A long open reports its progress (the window's progress bar) and stops when cancelled:
reading a torch file's tensors, and building the tree of any file."""

from __future__ import annotations

import pytest
import torch
from checkpoint_builders import write_safetensors, write_torch

from netexplorer.core import tree
from netexplorer.core.sources import OpenOptions, open_source, pickle_reader
from netexplorer.core.sources.base import OpeningCancelled

TENSORS = 5_001  # reported every 1,000 here (every 10,000 and 50,000 in the app)


@pytest.fixture(autouse=True)
def both_unpicklers():
    """Read once here (conftest.py reads every pickle twice, which reports twice)."""


@pytest.fixture(autouse=True)
def report_often(monkeypatch):
    monkeypatch.setattr(pickle_reader, "REPORT_EVERY", 1000)
    monkeypatch.setattr(tree, "PROGRESS_EVERY", 1000)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("many")
    state = {f"layers.{i}.weight": torch.zeros(1) for i in range(TENSORS)}
    return {
        "torch": str(write_torch(folder / "many.pt", state)),
        "safetensors": str(write_safetensors(folder / "many.safetensors", state)),
    }


@pytest.mark.parametrize("kind", ["torch", "safetensors"])
def test_a_long_open_reports_its_progress(many, kind):
    reports: list[tuple[float, str]] = []
    tree = open_source(many[kind], OpenOptions(progress=lambda f, t: reports.append((f, t))))
    assert len(tree.tensors) == TENSORS
    fractions = [f for f, _ in reports]
    assert len(reports) >= 4 and fractions == sorted(fractions) and fractions[-1] <= 1.0
    assert any("tree" in text for _, text in reports)
    if kind == "torch":
        assert any("read 2,000 tensors" in text for _, text in reports)


@pytest.mark.parametrize("kind", ["torch", "safetensors"])
def test_a_long_open_stops_when_cancelled(many, kind):
    reports: list[float] = []
    options = OpenOptions(
        progress=lambda f, t: reports.append(f), cancelled=lambda: len(reports) >= 2
    )
    with pytest.raises(OpeningCancelled):
        open_source(many[kind], options)
