"""The command line (a contract, DESIGN.md): `netexplorer [SOURCE] [options]`.

Printing modes (`--summary`, `--json`) never import Qt; the window is imported only when it
is shown. A user's mistake exits with status 2 and one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .core.errors import NetExplorerError

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
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if (args.summary or args.json) and not args.source:
        raise UsageError("--summary and --json need a SOURCE (for example: example:tied)")
    if args.summary and args.json:
        raise UsageError("choose one of --summary and --json")
    return args


def open_tree(args: argparse.Namespace):  # -> ModuleTree
    """Open SOURCE as the options ask; check --select."""
    from .core.sources import OpenOptions, open_source

    tree = open_source(args.source, OpenOptions(seed=args.seed))
    if args.select:
        tree.node(args.select)  # raises UnknownPathError with suggestions
    return tree


def run_printing(args: argparse.Namespace) -> int:
    from .core.describe import describe, summary_text

    tree = open_tree(args)
    if args.summary:
        print(summary_text(tree))
    else:
        print(json.dumps(describe(tree), indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.summary or args.json:
            return run_printing(args)
        from .ui.app import run_app

        return run_app(args)
    except NetExplorerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `netexplorer ... --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
