"""A folder of checkpoints of one training run (core/run_folder.py says which folders are):
opened as one tree, the union of every checkpoint's keys, with `tree.run` for the time
slider. The checkpoints are read by their own format's readers (core/run.py)."""

from __future__ import annotations

from ..run import open_run_folder
from ..run_folder import is_run_folder
from ..tree import ModuleTree
from .base import OpenOptions


class TrainingRunReader:
    name = "run"
    title = "Training runs (folders of checkpoints)"
    file_patterns: tuple[str, ...] = ()  # a folder: opened with File ▸ Open folder

    def can_read(self, spec: str) -> bool:
        return is_run_folder(spec)

    def read(self, spec: str, options: OpenOptions) -> ModuleTree:
        return open_run_folder(spec, options)
