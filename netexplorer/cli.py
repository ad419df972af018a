"""The command line (a contract, DESIGN.md): `netexplorer [SOURCE] [options]`.

Printing modes (`--summary`, `--json`) never import Qt; the window is imported only when it
is shown. A user's mistake exits with status 2 and one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .core.errors import NetExplorerError
from .core.launch import LaunchRequest
from .core.text import printable

PROG = "netexplorer"
VIEWS = ("tree", "heatmap", "graph", "values")


class UsageError(NetExplorerError):
    """A mistake on the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage and two lines; we print one
        raise UsageError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Explore a PyTorch network or checkpoint: module tree, heatmaps of every "
        "tensor, tied parameters, live gradients. With no SOURCE the examples gallery opens.",
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="example:NAME | a checkpoint file | a folder | pkg.module:factory | a lesson (.json)",
    )
    p.add_argument("--summary", action="store_true", help="print the tree and exit")
    p.add_argument("--json", action="store_true", help="print the JSON description and exit")
    p.add_argument("--screenshot", metavar="FILE", help="draw the window into a PNG and exit")
    p.add_argument("--select", metavar="PATH", help="select a module or tensor by path")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed for init and inputs")
    p.add_argument("--view", choices=VIEWS, default=None, help="the view the window opens on")
    p.add_argument(
        "--backward",
        type=int,
        default=0,
        metavar="N",
        help="run N forward+backward passes (gradients accumulate) first",
    )
    p.add_argument("--model", metavar="SPEC", help="pkg.module:factory that builds the model")
    p.add_argument("--weights", metavar="FILE", help="checkpoint to load into --model")
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow full pickle loading, which runs code from the file",
    )
    p.add_argument("--meta", action="store_true", help="with --model: structure only, no memory")
    p.add_argument(
        "--input",
        action="append",
        metavar="SPEC",
        help="the input batch: shapes and kinds, e.g. 2,3,32,32 or tokens:2,8<1000; several "
        "for several arguments, name=SPEC for keyword arguments, name=@OTHER for another's "
        "tensor",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="load a Hugging Face folder (or a file with config.json) with transformers' "
        "own loader into a live model",
    )
    p.add_argument(
        "--eval",
        action="store_true",
        help="run passes in eval mode (dropout off, batch-norm statistics frozen)",
    )
    p.add_argument("--compare", metavar="FILE", help="compare SOURCE with a second checkpoint")
    p.add_argument(
        "--present",
        action="store_true",
        help="open in presentation mode (large text, full screen, for a projector)",
    )
    p.add_argument(
        "--run",
        nargs="+",
        metavar="CHECKPOINT",
        help="checkpoints of one training run (files or folders, any order): a time slider",
    )
    p.add_argument(
        "--timeline",
        action="store_true",
        help="SOURCE is a training run (a folder of checkpoints); with --json, every tensor's "
        "relative change and statistics per step",
    )
    p.add_argument(
        "--export-heatmap",
        metavar="FILE",
        help="write the selected tensor's heatmap as PNG or SVG and exit",
    )
    return p


def _is_factory(source: str | None) -> bool:
    """Whether SOURCE names a pkg.module:factory (not a file, folder or example)."""
    import os

    return bool(
        source
        and ":" in source
        and not source.startswith("example:")
        and not os.path.exists(source)
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.timeline and not (args.source or args.run):
        raise UsageError("--timeline needs a SOURCE folder of checkpoints (or --run A B C)")
    if (args.summary or args.json) and not (args.source or args.model or args.run):
        raise UsageError("--summary and --json need a SOURCE (for example: example:tied)")
    if args.run and (args.source or args.model):
        raise UsageError("give either SOURCE, --model or --run CHECKPOINT..., not two of them")
    if args.summary and args.json:
        raise UsageError("choose one of --summary and --json")
    if args.backward < 0:
        raise UsageError("--backward N needs N >= 0")
    if args.weights and not args.model:
        raise UsageError("--weights needs --model pkg.module:factory to build the model")
    if args.meta and not (args.model or _is_factory(args.source)):
        raise UsageError(
            "--meta needs a model to build (--model pkg.module:factory, or a pkg.module:factory "
            "SOURCE); a checkpoint file already reads nothing until a tensor is shown"
        )
    if args.model and args.source:
        raise UsageError("give either SOURCE or --model, not both")
    if args.export_heatmap and not args.select:
        raise UsageError("--export-heatmap needs --select PATH (the tensor to draw)")
    if args.compare and not (args.source or args.model):
        raise UsageError("--compare FILE needs a SOURCE to compare it with")
    if args.live and not args.source:
        raise UsageError(
            "--live needs a SOURCE: a Hugging Face folder, or a file beside config.json"
        )
    return args


def launch_request(args: argparse.Namespace) -> LaunchRequest:
    """The typed request the parsed arguments make."""
    batch = None
    if args.input:
        from .core.input_parse import InputSyntaxError, parse_input

        try:
            batch = parse_input(" ".join(args.input))
        except InputSyntaxError as exc:
            raise UsageError(f"--input: {exc}") from None
    return LaunchRequest(
        source=args.source,
        model=args.model,
        weights=args.weights,
        trust=args.trust,
        seed=args.seed,
        meta=args.meta,
        select=args.select,
        backward=args.backward,
        view=args.view,
        compare=args.compare,
        screenshot=args.screenshot,
        export_heatmap=args.export_heatmap,
        present=args.present,
        input=batch,
        live=args.live,
        eval_mode=args.eval,
        run=tuple(args.run or ()),
        timeline=args.timeline,
    )


def run_printing(request: LaunchRequest, summary: bool) -> int:
    from .core.describe import describe, summary_text, to_json
    from .core.launch import open_compared, open_requested, pass_metadata, run_backward
    from .core.text import printable_lines

    # --summary reads headers only (no torch, no transformers): it names the architecture
    # config.json holds; --json, which reads every tensor anyway, builds it
    tree = open_requested(request, architecture=not summary)
    if summary:
        from .core.sources.hf_architecture import note_unbuilt_architecture

        note_unbuilt_architecture(tree)
    engine = run_backward(tree, request)
    comparison = None
    compared = open_compared(request)
    if compared is not None:
        from .core.compare import compare_trees

        comparison = compare_trees(tree, compared)
    if summary:
        print(summary_text(tree))
        if tree.run is not None:
            print("\n".join(tree.run.summary_lines()))
        if comparison is not None:
            print(printable_lines(comparison.text()))
    else:
        from .core.graph import graph_for_tree

        description = describe(
            tree,
            contributions=engine.contributions if request.backward else None,
            graph=graph_for_tree(
                tree, seed=request.seed, input_spec=request.input or tree.default_input
            ).as_dict(),
        )
        description["metadata"].update(pass_metadata(tree, engine))
        if comparison is not None:
            description["comparison"] = comparison.as_dict()
        if request.timeline:
            from .core.movement import movement

            description["timeline"] = movement(tree.run).as_dict(tree.run)
        print(to_json(description))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        request = launch_request(args)
        if args.summary or args.json:
            return run_printing(request, summary=args.summary)
        if request.export_heatmap:
            from .ui.export import export_heatmap

            return export_heatmap(request)
        from .ui.app import run_app

        return run_app(request)
    except NetExplorerError as exc:
        # one line, and a name from a file (a shard, a tensor) cannot drive the terminal
        print(f"{PROG}: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `netexplorer ... --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
