"""Where the files under `resources/` are: the checkout's folder (also used by an editable
install), or the installed data package `netexplorer._resources` (pyproject.toml maps it)."""

from __future__ import annotations

from pathlib import Path


def resource_path(*parts: str) -> Path:
    checkout = Path(__file__).resolve().parent.parent / "resources"
    if checkout.is_dir():
        return checkout.joinpath(*parts)
    from importlib.resources import files

    return Path(str(files("netexplorer._resources"))).joinpath(*parts)
