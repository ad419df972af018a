"""What the user asked for when starting netexplorer, typed: the command line (cli.py) makes
a `LaunchRequest`; printing modes, heatmap export and the window all start from it, so none
of them depends on the argument parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import NetExplorerError

if TYPE_CHECKING:  # the readers load when something is opened, not when the window starts
    from .inputs import InputBatch
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
    input: InputBatch | None = None  # --input: what passes run on (None: the model's own)
    live: bool = False  # --live: a Hugging Face folder loaded by transformers into a live model
    eval_mode: bool = False  # --eval: passes in eval mode (dropout off)
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


def open_requested(request: LaunchRequest, architecture: bool = True) -> ModuleTree:
    """Open the source (or --model with --weights) as the request asks (a lesson: what it
    opens first); check --select and that --backward has a live model to run on.
    `architecture`: refine a checkpoint with a config.json by the architecture it names now
    (the command line); the window shows the header tree first and refines it in a worker."""
    from .sources import open_source
    from .sources.factory import build_with_weights

    lesson = requested_lesson(request)
    if request.model:
        tree = build_with_weights(request.model, request.weights, request.open_options())
    elif request.run or request.timeline:
        tree = open_requested_run(request)
    elif lesson is not None:
        tree = open_source(lesson.resolve(lesson.source) or "", request.open_options())
    elif request.source and request.live:
        from .hf_live import load_live

        tree = load_live(request.source, request.open_options())
    elif request.source:
        tree = open_source(request.source, request.open_options())
        if architecture:
            tree = with_architecture(tree)
    else:
        raise LaunchError("nothing to open: give a SOURCE or --model")
    if request.select and (architecture or not architecture_pending(tree)):
        tree.node(request.select)  # raises UnknownPathError with suggestions
    if request.backward and not tree.is_live:
        hint = " (or --live: this folder has a config.json)" if live_possible(tree) else ""
        raise LaunchError(
            "--backward needs a live model: an example, a pkg.module:factory, --model with "
            f"--weights, or a TorchScript file; a checkpoint alone has no forward pass{hint}"
        )
    return tree


def architecture_pending(tree: ModuleTree) -> bool:
    """Whether the tree is a checkpoint whose architecture may still refine it (its
    config.json names one, and transformers is installed): a --select path may be one the
    architecture brings (a tie the file dropped)."""
    from .hf_library import transformers_installed
    from .sources.hf_architecture import architecture_applies

    return architecture_applies(tree) and transformers_installed()


def with_architecture(tree: ModuleTree) -> ModuleTree:
    """A checkpoint with a config.json refined by the architecture it names, built on the
    meta device when transformers is installed (sources/hf_architecture.py); the tree as it
    was, with a note saying why, otherwise."""
    from .sources.hf_architecture import architecture_applies, refine_with_architecture

    if not architecture_applies(tree):
        return tree
    return refine_with_architecture(tree)


def live_possible(tree: ModuleTree) -> bool:
    """Whether --live (Make live) can load this checkpoint: it has a config.json."""
    from .sources.hf_architecture import config_folder

    return config_folder(tree) is not None


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
    """--backward N without a window: N forward+backward passes on the seeded input
    (--input, else the model's own), in eval mode with --eval, gradients accumulating; the
    engine (None for a checkpoint without code)."""
    if not tree.is_live:
        if request.input is not None:
            raise LaunchError("--input needs a live model; a checkpoint alone has no forward pass")
        return None
    from .passes import PassEngine

    engine = PassEngine(tree, input_spec=request.input, seed=request.seed)
    if request.eval_mode:
        engine.configure(eval_mode=True)
    for _ in range(request.backward):
        engine.backward()
    return engine


def pass_metadata(tree: ModuleTree, engine: Any) -> dict[str, Any]:
    """What passes run with, for the JSON's metadata: `input` (what the model is called
    with), `loss` and `training_mode` (dropout active or not); empty for a checkpoint
    without code."""
    if engine is None:
        return {}
    from .passes.truth import describe_passes

    return describe_passes(engine)
