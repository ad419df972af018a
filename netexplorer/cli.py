"""The command line (a contract, DESIGN.md): `netexplorer [SOURCE] [options]`.

Printing modes (`--summary`, `--json`) never import Qt; the window is imported only when it
is shown. A user's mistake exits with status 2 and one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .core.errors import NetExplorerError
from .core.text import printable

PROG = "netexplorer"
VIEWS = ("tree", "heatmap", "graph")


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
        help="example:NAME | a checkpoint file | a folder | pkg.module:factory",
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
    p.add_argument("--compare", metavar="FILE", help="compare SOURCE with a second checkpoint")
    p.add_argument(
        "--export-heatmap",
        metavar="FILE",
        help="write the selected tensor's heatmap as PNG or SVG and exit",
    )
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if (args.summary or args.json) and not (args.source or args.model):
        raise UsageError("--summary and --json need a SOURCE (for example: example:tied)")
    if args.summary and args.json:
        raise UsageError("choose one of --summary and --json")
    if args.backward < 0:
        raise UsageError("--backward N needs N >= 0")
    if args.weights and not args.model:
        raise UsageError("--weights needs --model pkg.module:factory to build the model")
    if args.meta and not args.model:
        raise UsageError("--meta needs --model (a checkpoint file already reads nothing)")
    if args.model and args.source:
        raise UsageError("give either SOURCE or --model, not both")
    if args.export_heatmap and not args.select:
        raise UsageError("--export-heatmap needs --select PATH (the tensor to draw)")
    if args.compare and not (args.source or args.model):
        raise UsageError("--compare FILE needs a SOURCE to compare it with")
    return args


def open_options(args: argparse.Namespace):  # -> OpenOptions
    from .core.sources import OpenOptions

    return OpenOptions(trust=args.trust, seed=args.seed, meta=args.meta)


def open_tree(args: argparse.Namespace):  # -> ModuleTree
    """Open SOURCE (or --model with --weights) as the options ask; check --select."""
    from .core.sources import open_source

    if args.model:
        from .core.sources.factory import build_with_weights

        tree = build_with_weights(args.model, args.weights, open_options(args))
    else:
        tree = open_source(args.source, open_options(args))
    if args.select:
        tree.node(args.select)  # raises UnknownPathError with suggestions
    return tree


def run_backward(tree, args: argparse.Namespace):  # -> PassEngine | None
    """--backward N: N forward+backward passes on the seeded input, gradients accumulating."""
    if not args.backward:
        return None
    if not tree.is_live:
        raise UsageError(
            "--backward needs a live model: an example, a pkg.module:factory, --model with "
            "--weights, or a TorchScript file; a checkpoint alone has no forward pass"
        )
    from .core.passes import PassEngine

    engine = PassEngine(tree, seed=args.seed)
    for _ in range(args.backward):
        engine.backward()
    return engine


def run_printing(args: argparse.Namespace) -> int:
    from .core.describe import describe, summary_text, to_json
    from .core.text import printable_lines

    tree = open_tree(args)
    engine = run_backward(tree, args)
    comparison = None
    if args.compare:
        from .core.compare import compare_trees
        from .core.sources import open_source

        comparison = compare_trees(tree, open_source(args.compare, open_options(args)))
    if args.summary:
        print(summary_text(tree))
        if comparison is not None:
            print(printable_lines(comparison.text()))
    else:
        from .core.graph import graph_for_tree

        description = describe(
            tree,
            contributions=engine.contributions if engine is not None else None,
            graph=graph_for_tree(tree, seed=args.seed).as_dict(),
        )
        if comparison is not None:
            description["comparison"] = comparison.as_dict()
        print(to_json(description))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.summary or args.json:
            return run_printing(args)
        if args.export_heatmap:
            from .ui.export import export_heatmap

            return export_heatmap(args)
        from .ui.app import run_app

        return run_app(args)
    except NetExplorerError as exc:
        # one line, and a name from a file (a shard, a tensor) cannot drive the terminal
        print(f"{PROG}: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `netexplorer ... --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
