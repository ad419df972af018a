"""What the user asked for when starting netexplorer, typed: the command line (cli.py) makes
a `LaunchRequest`; printing modes, heatmap export and the window all start from it, so none
of them depends on the argument parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import NetExplorerError

if TYPE_CHECKING:  # the readers load when something is opened, not when the window starts
    from .lesson import Lesson
    from .sources import OpenOptions
    from .tree import ModuleTree


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a start of netexplorer can ask for (DESIGN.md: the command line)."""

    source: str | None = None  # example:NAME, a checkpoint file or folder, pkg.mod:factory
    model: str | None = None  # pkg.module:factory, with `weights` loaded into it
    weights: str | None = None
    trust: bool = False  # allow full pickle loading, which runs code from the file
    seed: int = 0
    meta: bool = False  # build --model on the meta device (structure only)
    select: str | None = None
    backward: int = 0  # forward+backward passes to run first
    view: str | None = None  # tree | heatmap | graph
    compare: str | None = None  # a second checkpoint to compare with
    screenshot: str | None = None  # draw the window into this PNG and exit
    export_heatmap: str | None = None  # write the selected tensor's heatmap and exit
    present: bool = False  # open in presentation mode
    run: tuple[str, ...] = ()  # checkpoints of one training run (--run A B C), in any order
    timeline: bool = False  # SOURCE is a training run; with --json: its movement per step

    @property
    def opens_something(self) -> bool:
        return bool(self.source or self.model or self.run)

    def open_options(self) -> OpenOptions:
        from .sources import OpenOptions

        return OpenOptions(trust=self.trust, seed=self.seed, meta=self.meta)


class LaunchError(NetExplorerError):
    """A request that cannot be carried out as asked (one line, exit status 2)."""


def requested_lesson(request: LaunchRequest) -> Lesson | None:
    """The lesson when SOURCE is a lesson file (checked: LessonError says what is wrong)."""
    from .lesson import is_lesson_file, load_lesson

    if request.source and is_lesson_file(request.source):
        return load_lesson(request.source)
    return None


def open_requested(request: LaunchRequest) -> ModuleTree:
    """Open the source (or --model with --weights) as the request asks (a lesson: what it
    opens first); check --select and that --backward has a live model to run on."""
    from .sources import open_source
    from .sources.factory import build_with_weights

    lesson = requested_lesson(request)
    if request.model:
        tree = build_with_weights(request.model, request.weights, request.open_options())
    elif request.run or request.timeline:
        tree = open_requested_run(request)
    elif lesson is not None:
        tree = open_source(lesson.resolve(lesson.source) or "", request.open_options())
    elif request.source:
        tree = open_source(request.source, request.open_options())
    else:
        raise LaunchError("nothing to open: give a SOURCE or --model")
    if request.select:
        tree.node(request.select)  # raises UnknownPathError with suggestions
    if request.backward and not tree.is_live:
        raise LaunchError(
            "--backward needs a live model: an example, a pkg.module:factory, --model with "
            "--weights, or a TorchScript file; a checkpoint alone has no forward pass"
        )
    return tree


def open_requested_run(request: LaunchRequest) -> ModuleTree:
    """--run A B C, or SOURCE with --timeline: a training run, whatever its names say."""
    import os

    from .run import open_run, open_run_folder

    if request.run:
        return open_run(list(request.run), request.open_options(), source=" ".join(request.run))
    if not request.source or not os.path.isdir(request.source):
        raise LaunchError(
            f"--timeline needs a training run: a folder of checkpoints, or --run A B C "
            f"({request.source or 'no SOURCE'} is not a folder)"
        )
    return open_run_folder(request.source, request.open_options())


def open_compared(request: LaunchRequest) -> ModuleTree | None:
    """The second checkpoint of --compare, if asked for."""
    from .sources import open_source

    return open_source(request.compare, request.open_options()) if request.compare else None


def run_backward(tree: ModuleTree, request: LaunchRequest) -> Any:
    """--backward N without a window: N forward+backward passes on the seeded input,
    gradients accumulating; the engine (None when N is 0)."""
    if not request.backward:
        return None
    from .passes import PassEngine

    engine = PassEngine(tree, seed=request.seed)
    for _ in range(request.backward):
        engine.backward()
    return engine
