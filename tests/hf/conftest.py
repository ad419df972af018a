"""The tiny Hugging Face folders, saved once per test session (the test modules skip
themselves without transformers)."""

from __future__ import annotations

import pytest
from tiny_models import save


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory):
    """name -> folder of the tiny model, saved on first use."""
    root = tmp_path_factory.mktemp("hf")
    made: dict = {}

    def folder(name: str):
        if name not in made:
            made[name] = save(name, root)
        return made[name]

    return folder
