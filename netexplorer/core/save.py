"""Saving a live model's weights (after edits, initialisations or training) as a new
checkpoint: a PyTorch file (`torch.save` of the state dict: ties kept) or safetensors (each
tied tensor stored once, as the safetensors library's `save_model` does; the other names of
it are recorded in the file's metadata).

The file is written next to its destination under a temporary name and renamed into place,
so an interrupted save never leaves half a checkpoint and never half-overwrites an older
file. Whether an existing file may be replaced is the caller's question to ask."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import NetExplorerError

FORMATS = (".pt", ".pth", ".safetensors")


def save_weights(module: Any, path: str | Path) -> str:
    """Write `module`'s state dict to `path` (format by the extension); what was written,
    in a few words."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NetExplorerError(
            f"cannot save weights to {path.name}: use a .pt, .pth or .safetensors file name"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NetExplorerError(f"cannot save {path}: the folder {folder} does not exist")
    import torch

    state = module.state_dict()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        if suffix == ".safetensors":
            from safetensors.torch import save_model

            save_model(module, temporary, metadata={"saved_by": "netexplorer"})
            what = f"{len(state)} tensors (each tied tensor once)"
        else:
            torch.save(state, temporary)
            what = f"{len(state)} tensors (ties kept)"
        os.replace(temporary, path)
    except OSError as exc:
        raise NetExplorerError(f"cannot save {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return what
