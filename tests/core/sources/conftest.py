"""Fixtures of the reader tests; the builders are in checkpoint_builders.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_builders import build_every_format


@pytest.fixture
def formats(tmp_path: Path) -> dict[str, Path]:
    return build_every_format(tmp_path / "formats")
