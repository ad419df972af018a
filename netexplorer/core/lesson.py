"""Lessons: a setup of the explorer, and steps through it, in a small JSON file.

A lesson file says what to open (an example or a checkpoint, paths relative to the lesson
file), with which seed, input, loss and optimizer, what to select and which view to show,
how the window should look (presentation mode, scale, theme), and optionally a list of
steps, each with a short text for the class and what it shows: another source, a selection,
a view, and an action to run when the step is entered (a pass, an initialisation, an edit).

    {"format": "netexplorer-lesson/1", "title": "...", "source": "example:tied",
     "seed": 0, "input": {"shape": [2, 4], "distribution": "uniform"},
     "loss": "mse", "optimizer": "sgd", "lr": 0.1,
     "select": "2.weight", "view": "heatmap",
     "look": {"present": true, "scale": 1.8, "theme": "dark"},
     "steps": [{"title": "...", "text": "...", "source": "example:mlp", "select": "2.bias",
                "view": "values", "action": "backward"}]}

Actions: forward, backward, zero_grad, step; `init:SCHEME` (core/passes/edits.py) on the
selection; `set:PATH[i, j]=VALUE` (the chapter's `net[2].weight.data[0, 0] = 100`).

`load_lesson` checks everything a file can get wrong and says what, in one line (not JSON,
a newer format, an unknown example, a missing file, a bad step); `save_lesson` writes a
temporary file and renames it into place. Nothing here imports Qt or torch."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import NetExplorerError
from .inputs import DISTRIBUTIONS, InputBatch, InputSpec

FORMAT = "netexplorer-lesson/1"
FORMAT_PREFIX = "netexplorer-lesson/"
MAX_LESSON_BYTES = 1 << 20  # a lesson is a few kB; anything this large is not one
VIEWS = ("tree", "heatmap", "graph", "values")
PASS_ACTIONS = ("forward", "backward", "zero_grad", "step")
SET_ACTION = re.compile(r"^set:(?P<path>[^\[]+)\[(?P<index>[\d,\s]*)\]\s*=\s*(?P<value>\S+)$")


class LessonError(NetExplorerError):
    """A lesson file that cannot be used as it is; the message says why and what to do."""


@dataclass
class LessonStep:
    title: str
    text: str = ""
    source: str | None = None  # open this first (an example, or a path beside the lesson)
    select: str | None = None
    view: str | None = None
    action: str | None = None


@dataclass
class Lesson:
    title: str
    source: str
    seed: int = 0
    input: InputSpec | InputBatch | None = None
    loss: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    select: str | None = None
    view: str | None = None
    look: dict[str, Any] = field(default_factory=dict)  # present, scale, theme
    steps: list[LessonStep] = field(default_factory=list)
    folder: str = ""  # where the file was: relative sources are resolved from here

    def resolve(self, source: str | None) -> str | None:
        """A step's or the lesson's source as a path or spec that can be opened."""
        if source is None or (":" in source and not os.path.exists(source)):
            return source  # example:NAME, pkg.module:factory
        if os.path.isabs(source) or not self.folder:
            return source
        return os.path.join(self.folder, source)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "title": self.title, "source": self.source}
        out["seed"] = self.seed
        if self.input is not None:
            out["input"] = self.input.as_dict()
        for name in ("loss", "optimizer", "lr", "select", "view"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.look:
            out["look"] = dict(self.look)
        if self.steps:
            out["steps"] = [
                {k: v for k, v in asdict(step).items() if v not in (None, "")}
                for step in self.steps
            ]
        return out


def is_lesson_file(path: str) -> bool:
    """Whether `path` is meant as a lesson: a JSON file other than a model folder's own
    (`config.json`, a `*.index.json` of sharded weights), or one that says it is a lesson
    whatever its name. A lesson that is not JSON is still told apart, so that it gets the
    lesson's message, not the checkpoint readers'."""
    if not os.path.isfile(path):
        return False
    name = os.path.basename(path).lower()
    if name.endswith(".json") and name != "config.json" and not name.endswith(".index.json"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return FORMAT_PREFIX.encode() in head


def load_lesson(path: str) -> Lesson:
    """The lesson in the file at `path`, checked; raises LessonError saying what is wrong."""
    from .sources.json_file import UnreadableJson, read_json

    name = os.path.basename(path)
    if not os.path.lexists(path):
        raise LessonError(f"cannot open lesson {path}: no such file; check the path")
    try:  # a regular file only (a FIFO is refused, not read forever), within its size
        data = read_json(path, MAX_LESSON_BYTES, "it", "")
    except UnreadableJson as exc:
        reason = exc.reason.replace("is not valid JSON", "is not JSON")
        raise LessonError(
            f"cannot open lesson {name}: {reason}; fix it in a text editor or save the lesson again"
        ) from None
    lesson = lesson_from_json(data, name)
    lesson.folder = os.path.dirname(os.path.abspath(path))
    for source in [lesson.source, *(s.source for s in lesson.steps)]:
        check_source(lesson.resolve(source), name)
    return lesson


def lesson_from_json(data: Any, name: str = "the lesson") -> Lesson:
    """A lesson from its parsed JSON; raises LessonError for anything it cannot use."""
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise LessonError(f"cannot open lesson {name}: it holds a JSON {kind}, not a lesson")
    fmt = data.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(FORMAT_PREFIX):
        raise LessonError(
            f'cannot open lesson {name}: it says no lesson format ("format": "{FORMAT}")'
        )
    if fmt != FORMAT:
        raise LessonError(
            f"cannot open lesson {name}: it was saved by a newer netexplorer (format {fmt}); "
            f"this one reads {FORMAT}: update netexplorer"
        )
    where = f"lesson {name}"
    source = _text(data, "source", where, required=True)
    lesson = Lesson(
        title=_text(data, "title", where) or name,
        source=source,
        seed=_integer(data.get("seed", 0), f"{where}: seed"),
        input=_input(data.get("input"), where),
        loss=_choice(data, "loss", ("sum", "mse", "cross_entropy"), where),
        optimizer=_choice(data, "optimizer", ("sgd", "adam"), where),
        lr=_number(data.get("lr"), f"{where}: lr") if data.get("lr") is not None else None,
        select=_text(data, "select", where),
        view=_choice(data, "view", VIEWS, where),
        look=_look(data.get("look", {}), where),
    )
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        raise LessonError(f'cannot open {where}: "steps" must be a list')
    for i, raw in enumerate(steps, start=1):
        at = f"{where}, step {i}"
        if not isinstance(raw, dict):
            raise LessonError(f"cannot open {at}: a step is an object with a title and a text")
        action = _text(raw, "action", at)
        if action is not None:
            check_action(action, at)
        lesson.steps.append(
            LessonStep(
                title=_text(raw, "title", at) or f"Step {i}",
                text=_text(raw, "text", at) or "",
                source=_text(raw, "source", at),
                select=_text(raw, "select", at),
                view=_choice(raw, "view", VIEWS, at),
                action=action,
            )
        )
    return lesson


def check_source(source: str | None, name: str) -> None:
    """A lesson's source must exist: a known example, or a file or folder that is there."""
    if source is None:
        return
    if source.startswith("example:"):
        from ..examples import EXAMPLES

        example = source.removeprefix("example:")
        if example not in EXAMPLES:
            raise LessonError(
                f"cannot open lesson {name}: it uses example {example!r}, which this netexplorer "
                f"does not have; the examples are {', '.join(EXAMPLES)}"
            )
        return
    if re.fullmatch(r"[\w.]+:[\w.]+", source) and not os.path.exists(source):
        return  # pkg.module:factory: checked when opened
    if not os.path.exists(source):
        raise LessonError(
            f"cannot open lesson {name}: it opens {source}, which is not there; put the file "
            "beside the lesson or correct its path in the lesson"
        )


def check_action(action: str, where: str) -> None:
    if action in PASS_ACTIONS or SET_ACTION.match(action):
        return
    if action.startswith("init:"):
        from .passes.edits import SCHEMES

        if action.removeprefix("init:") in SCHEMES:
            return
    raise LessonError(
        f"cannot open {where}: unknown action {action!r}; actions are "
        f"{', '.join(PASS_ACTIONS)}, init:SCHEME or set:PATH[i, j]=VALUE"
    )


def parse_set_action(action: str) -> tuple[str, tuple[int, ...], float]:
    """`set:2.weight[0, 0]=100` -> ("2.weight", (0, 0), 100.0)."""
    match = SET_ACTION.match(action)
    if match is None:
        raise LessonError(f"not a set action: {action!r}")
    index = tuple(int(i) for i in match["index"].split(",") if i.strip())
    return match["path"].strip(), index, float(match["value"])


def save_lesson(lesson: Lesson, path: str) -> None:
    """Write `lesson` to `path` through a temporary file renamed into place (a crash never
    leaves half a lesson; an existing file is replaced only whole)."""
    text = json.dumps(lesson.as_json(), indent=2, ensure_ascii=False) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".lesson-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- checking values ------------------------------------------------------------------------


def _text(data: dict, key: str, where: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise LessonError(f'cannot open {where}: it needs a "{key}"')
        return None
    if not isinstance(value, str):
        kind = type(value).__name__
        raise LessonError(f'cannot open {where}: "{key}" must be text, not {kind}')
    return value


def _choice(data: dict, key: str, choices: tuple[str, ...], where: str) -> str | None:
    value = _text(data, key, where)
    if value is not None and value not in choices:
        known = ", ".join(choices)
        raise LessonError(f'cannot open {where}: "{key}" is {value!r}; choose {known}')
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise LessonError(f"cannot open {where}: a whole number from 0 to 2**31 - 1 is needed")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise LessonError(f"cannot open {where}: a positive number is needed")
    return float(value)


def _input(value: Any, where: str) -> InputSpec | InputBatch | None:
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("spec"), str) and "shape" not in value:
        from .input_parse import InputSyntaxError, parse_input

        try:  # several arguments, as --input writes them
            return parse_input(value["spec"])
        except InputSyntaxError as exc:
            raise LessonError(f"cannot open {where}: a bad input ({exc})") from None
    if not isinstance(value, dict) or not isinstance(value.get("shape"), list):
        raise LessonError(f'cannot open {where}: "input" is {{"shape": [2, 4], ...}}')
    try:
        shape = tuple(_integer(s, f"{where}: input shape") for s in value["shape"])
        if not 1 <= len(shape) <= 8 or any(s == 0 or s > 100_000 for s in shape):
            raise ValueError("1 to 8 dimensions of 1 to 100,000")
        distribution = value.get("distribution", "uniform")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution is one of {', '.join(DISTRIBUTIONS)}")
        high = value.get("high")
        return InputSpec(shape, distribution, None if high is None else _integer(high, where))
    except ValueError as exc:
        raise LessonError(f"cannot open {where}: a bad input ({exc})") from None


def _look(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LessonError(f'cannot open {where}: "look" is {{"present": true, ...}}')
    look: dict[str, Any] = {}
    if "present" in value:
        look["present"] = bool(value["present"])
    if "scale" in value:
        scale = value["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.6 <= scale <= 4:
            raise LessonError(f"cannot open {where}: look.scale is a number from 0.6 to 4")
        look["scale"] = float(scale)
    if "theme" in value:
        if value["theme"] not in ("light", "dark"):
            raise LessonError(f"cannot open {where}: look.theme is light or dark")
        look["theme"] = value["theme"]
    return look
