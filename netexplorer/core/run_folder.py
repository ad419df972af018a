"""Which entries of a folder are checkpoints of a training run, and whether a folder is a run.

A run folder holds checkpoints of one model saved along the way: files (`epoch_3.pt`,
`epoch=3-step=1000.ckpt`, `model_7.safetensors`) or folders (Hugging Face `checkpoint-500/`,
distributed-checkpoint `step_2000/`), mixed if need be. A Hugging Face output folder may also
hold the final model's own weights beside its `checkpoint-N/` folders: they are one more
checkpoint (the folder itself).

A folder is taken for a run when at least two of its entries are checkpoints whose names
carry a number; anything else that holds weights (a model folder, sharded weights, a folder
of unrelated files) keeps opening as it did. `--timeline` and `--run` open any folder or list
as a run. Only names and folder listings are read here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .run_steps import name_has_number, strip_extension

CHECKPOINT_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".tar")
# files a training loop saves beside the weights: not checkpoints of the model
_NOT_WEIGHTS = re.compile(
    r"^(optimizer|scheduler|scaler|training_args|rng_state.*|trainer_state|"
    r"lr_scheduler|ema_state|random_states.*)$",
    re.I,
)


@dataclass(frozen=True)
class RunEntry:
    """One checkpoint of a run folder: its path and the name it is shown by."""

    path: str
    name: str
    is_folder: bool


def _natural(name: str) -> tuple:
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def is_checkpoint_file(name: str) -> bool:
    """A weights file by its name: a checkpoint extension, not a shard (`-of-`), not an
    optimizer, scheduler, random state or training arguments file."""
    lower = name.lower()
    if not lower.endswith(CHECKPOINT_EXTENSIONS) or "-of-" in lower:
        return False
    return not _NOT_WEIGHTS.match(strip_extension(name))


def is_checkpoint_folder(path: str) -> bool:
    """A folder that opens as one checkpoint: a model folder (Hugging Face style) or a
    distributed checkpoint."""
    from .sources.dcp import is_checkpoint_folder as is_dcp
    from .sources.hf_folder import find_weights

    return os.path.isdir(path) and (is_dcp(path) or find_weights(path) is not None)


def run_entries(folder: str) -> list[RunEntry]:
    """The checkpoints of a run folder in name order (`h.2` before `h.10`): checkpoint files
    and checkpoint folders, then the folder's own weights if it has checkpoint folders too."""
    from .sources.hf_folder import find_weights

    try:
        names = sorted(os.listdir(folder), key=_natural)
    except OSError:
        return []
    entries: list[RunEntry] = []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            if is_checkpoint_folder(path):
                entries.append(RunEntry(path, name, True))
        elif is_checkpoint_file(name) and os.path.isfile(path):
            entries.append(RunEntry(path, name, False))
    if any(e.is_folder for e in entries):
        own = find_weights(folder)
        if own is not None:  # the final model a Trainer saves beside its checkpoints
            entries = [e for e in entries if e.is_folder or e.name != own]
            entries.append(RunEntry(folder, own, True))
    return entries


def is_run_folder(path: str) -> bool:
    """Whether `path` is a folder of checkpoints of a run (see the module doc); cheap: names
    and listings only."""
    from .sources.dcp import is_checkpoint_folder as is_dcp
    from .sources.hf_folder import find_weights

    if not os.path.isdir(path) or is_dcp(path):
        return False
    entries = [e for e in run_entries(path) if e.path != path]
    if len(entries) < 2:
        return False
    if not any(e.is_folder for e in entries) and find_weights(path) is not None:
        return False  # a model folder: its files are its weights, not a run
    return sum(name_has_number(e.name) for e in entries) >= 2
