"""Where a checkpoint sits in its training run: its step and epoch, read from its name and
from what it says about itself, and the order of a run's checkpoints with a sentence saying
how it was found.

What training libraries write:
- Hugging Face Trainer: `checkpoint-500/` folders with a `trainer_state.json` holding
  `global_step` (500) and `epoch` (a float: 1.5 is half way through the second epoch);
- PyTorch Lightning: `epoch=3-step=1000.ckpt`, whose checkpoint dict holds `epoch` and
  `global_step` too (and `last.ckpt`, which only its contents place);
- hand-written loops: `epoch_3.pt`, `model_epoch3.pth`, `step_2000/` (a distributed
  checkpoint), often `torch.save({"model": ..., "optimizer": ..., "epoch": 3})`.

What a checkpoint says about itself wins over its name (a file can be renamed; its contents
came from the loop). This module reads no tensor data.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TRAINER_STATE = "trainer_state.json"
# keys of a checkpoint's metadata (its top-level dict) that hold a step or an epoch
STEP_KEYS = ("global_step", "step", "iteration", "iter")
EPOCH_KEYS = ("epoch",)

_ASSIGNED = re.compile(r"(?:^|[^a-z])(global_step|step|epoch|iter|iteration)=(\d+)", re.I)
_STEP_NAME = re.compile(
    r"(?:^|[^a-z])(?:global[_-]?step|step|checkpoint|ckpt|iter|iteration|it)[_-]?(\d+)(?!\d)",
    re.I,
)
_EPOCH_NAME = re.compile(r"(?:^|[^a-z])(?:epoch|ep)[_-]?(\d+)(?!\d)", re.I)
_NUMBER = re.compile(r"(\d+)")
_EXTENSIONS = (".safetensors", ".ckpt", ".pth", ".pt", ".bin", ".tar")


@dataclass
class StepInfo:
    """What is known of one checkpoint's place in the run, and where each part came from."""

    name: str  # the file or folder name
    step: int | None = None  # the optimizer step (global step)
    epoch: float | None = None
    number: int | None = None  # a bare number in the name (`model_7.pt`): order only
    sources: dict[str, str] = field(default_factory=dict)  # "step" -> "trainer_state.json"

    def how(self) -> str:
        """`global step 500 (trainer_state.json), epoch 1.5 (trainer_state.json)`."""
        parts = []
        if self.step is not None:
            parts.append(f"step {self.step} ({self.sources['step']})")
        if self.epoch is not None:
            parts.append(f"epoch {_number(self.epoch)} ({self.sources['epoch']})")
        if not parts and self.number is not None:
            parts.append(f"number {self.number} ({self.sources['number']})")
        return ", ".join(parts) or "no step, epoch or number in its name or contents"

    def label(self) -> str:
        """How the time slider names it: `step 500`, `epoch 3`, or the name."""
        if self.step is not None:
            return f"step {self.step}"
        if self.epoch is not None:
            return f"epoch {_number(self.epoch)}"
        return self.name


def strip_extension(name: str) -> str:
    for ext in _EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def info_from_name(name: str) -> StepInfo:
    """Step, epoch or a bare number as a checkpoint's name gives them: `epoch=3-step=1000`,
    `checkpoint-500`, `step_2000`, `global_step300`, `epoch_3`, `model_7`."""
    info = StepInfo(name)
    stem = strip_extension(name)
    for key, value in _ASSIGNED.findall(stem):
        if key.lower() == "epoch":
            _set(info, "epoch", int(value), "the name")
        else:
            _set(info, "step", int(value), "the name")
    if info.step is None and (match := _STEP_NAME.search(stem)):
        _set(info, "step", int(match.group(1)), "the name")
    if info.epoch is None and (match := _EPOCH_NAME.search(stem)):
        _set(info, "epoch", int(match.group(1)), "the name")
    if info.step is None and info.epoch is None:
        numbers = _NUMBER.findall(stem)
        if numbers:
            _set(info, "number", int(numbers[-1]), "the name")
    return info


def name_has_number(name: str) -> bool:
    """Whether a name could place a checkpoint in a run (any digit in it)."""
    return bool(_NUMBER.search(strip_extension(name)))


def add_metadata(info: StepInfo, metadata: Mapping[str, Any], where: str) -> None:
    """Take step and epoch from a checkpoint's own metadata (its top-level dict, a
    safetensors `__metadata__`, a trainer state), over what the name said."""
    for key in STEP_KEYS:
        value = _count(metadata.get(key))
        if value is not None:
            _set(info, "step", int(value), where)
            break
    for key in EPOCH_KEYS:
        value = _count(metadata.get(key))
        if value is not None:
            _set(info, "epoch", value, where)
            break


def add_trainer_state(info: StepInfo, folder: str) -> None:
    """A Hugging Face checkpoint folder's `trainer_state.json` (global_step, epoch)."""
    path = os.path.join(folder, TRAINER_STATE)
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return  # unreadable: the name still orders it
    if isinstance(state, dict):
        add_metadata(info, state, TRAINER_STATE)


def step_info(name: str, metadata: Mapping[str, Any], folder: str | None = None) -> StepInfo:
    """Everything known of a checkpoint's place: its name, then its metadata (a safetensors
    file's `__metadata__` included), then a Hugging Face folder's trainer state."""
    info = info_from_name(name)
    add_metadata(info, metadata, "the file")
    nested = metadata.get("safetensors")
    if isinstance(nested, Mapping):
        add_metadata(info, nested, "the safetensors metadata")
    if folder is not None:
        add_trainer_state(info, folder)
    return info


@dataclass
class Ordering:
    """A run's checkpoints in order (`order` holds indices into what was given), the key
    they were ordered by ("step", "epoch", "number" or "name") and the sentence saying how."""

    order: list[int]
    key: str
    note: str


def order_checkpoints(infos: Sequence[StepInfo]) -> Ordering:
    """Order checkpoints by the key most of them have: the step, else the epoch, else a
    number in the name; those without it come last, in name order, and the note says so.
    Equal keys are ordered by epoch, then by name."""
    counts = {key: sum(getattr(i, key) is not None for i in infos) for key in KEYS}
    key = max(KEYS, key=lambda k: counts[k])  # the first of KEYS among equals
    if counts[key] == 0:
        key = "name"
    indices = range(len(infos))
    keyed = [i for i in indices if key != "name" and getattr(infos[i], key) is not None]
    rest = [i for i in indices if i not in set(keyed)]
    keyed.sort(key=lambda i: (getattr(infos[i], key), _epoch_key(infos[i]), _natural(infos[i])))
    rest.sort(key=lambda i: _natural(infos[i]))
    return Ordering(keyed + rest, key, _note(infos, key, keyed, rest))


KEYS = ("step", "epoch", "number")
_KEY_WORDS = {"step": "global step", "epoch": "epoch", "number": "the number in the name"}


def _note(infos: Sequence[StepInfo], key: str, keyed: list[int], rest: list[int]) -> str:
    n = len(infos)
    if key == "name":
        return f"ordered by name: none of the {n} checkpoints gives a step, an epoch or a number"
    where: dict[str, int] = {}
    for i in keyed:
        source = infos[i].sources[key]
        where[source] = where.get(source, 0) + 1
    origin = " and ".join(f"{source} ({count})" for source, count in where.items())
    text = f"ordered by {_KEY_WORDS[key]}, read from {origin}"
    if rest:
        names = ", ".join(infos[i].name for i in rest[:3]) + (", ..." if len(rest) > 3 else "")
        verb = "has none and comes" if len(rest) == 1 else "have none and come"
        text += f"; {names} {verb} last"
    return text


def _set(info: StepInfo, key: str, value: float, source: str) -> None:
    setattr(info, key, value)
    info.sources[key] = source


def _count(value: Any) -> float | None:
    """A step or epoch from metadata: a non-negative number, or a string of one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return int(value) if float(value).is_integer() else float(value)
    return None


def _epoch_key(info: StepInfo) -> float:
    return -1.0 if info.epoch is None else float(info.epoch)


def _natural(info: StepInfo) -> tuple:
    parts = re.split(r"(\d+)", info.name)
    return tuple((0, int(p)) if i % 2 else (1, p) for i, p in enumerate(parts))


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
