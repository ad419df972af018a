"""The --input syntax: shapes and kinds of the tensors a forward pass is called with.

    2,3,32,32                       one positional tensor, torch.rand (uniform in [0, 1))
    normal:2,16                     torch.randn
    tokens:2,8<1000                 integers in [0, 1000), for embeddings
    tokens:2,8<1000 tokens:2,4<1000 two positional arguments
    input_ids=tokens:2,8<50 labels=@input_ids
                                    keyword arguments; @NAME is another argument's tensor

Arguments are separated by spaces or semicolons; `x` may stand for a comma in a shape
(2x3x32x32). The app's input field reads the same text.
"""

from __future__ import annotations

import re

from .errors import NetExplorerError
from .inputs import InputArgument, InputBatch, InputSpec

KINDS = {
    "uniform": "uniform",
    "rand": "uniform",
    "normal": "normal",
    "randn": "normal",
    "tokens": "tokens",
    "int": "tokens",
}
EXAMPLE = "2,3,32,32 or tokens:2,8<1000 (several for several arguments, name=SPEC for keywords)"
_NAME = re.compile(r"^[A-Za-z_]\w*$")


class InputSyntaxError(NetExplorerError):
    """An --input (or the app's input field) that cannot be read."""


def parse_input(text: str) -> InputBatch:
    """The batch `text` describes; InputSyntaxError (one line) when it cannot be read."""
    items = [item for item in re.split(r"[\s;]+", text.strip()) if item]
    if not items:
        raise InputSyntaxError(f"the input is empty: give shapes such as {EXAMPLE}")
    arguments = [_argument(item) for item in items]
    try:
        return InputBatch(tuple(arguments))
    except ValueError as exc:
        raise InputSyntaxError(f"cannot use input {text.strip()!r}: {exc}") from None


def _argument(item: str) -> InputArgument:
    name = None
    body = item
    head, eq, rest = item.partition("=")
    if eq:
        if not _NAME.match(head):
            raise InputSyntaxError(
                f"cannot read input {item!r}: {head!r} is not an argument name; write name=SPEC"
            )
        name, body = head, rest
    if body.startswith("@"):
        other = body[1:]
        if name is None or not _NAME.match(other):
            raise InputSyntaxError(
                f"cannot read input {item!r}: @NAME (another argument's tensor) needs a name: "
                "labels=@input_ids"
            )
        return InputArgument(name, same_as=other)
    return InputArgument(name, parse_spec(body, item))


def parse_spec(body: str, item: str | None = None) -> InputSpec:
    """One tensor: `[kind:]dims[<high]`."""
    shown = item or body
    kind_text, colon, dims_text = body.rpartition(":")
    if not colon:
        kind_text, dims_text = "uniform", body
    distribution = KINDS.get(kind_text.lower())
    if distribution is None:
        raise InputSyntaxError(
            f"cannot read input {shown!r}: unknown kind {kind_text!r}; use one of "
            f"{', '.join(sorted(set(KINDS)))}"
        )
    dims_text, lt, high_text = dims_text.partition("<")
    try:
        shape = tuple(int(s) for s in re.split(r"[,x]", dims_text.replace(" ", "")) if s)
        high = int(high_text) if lt else None
    except ValueError:
        raise InputSyntaxError(
            f"cannot read input {shown!r}: expected a shape such as {EXAMPLE}"
        ) from None
    if not shape:
        raise InputSyntaxError(f"cannot read input {shown!r}: no shape; expected {EXAMPLE}")
    if high is not None and distribution != "tokens":
        raise InputSyntaxError(
            f"cannot read input {shown!r}: an upper bound <N is for tokens: tokens:{dims_text}<N"
        )
    if distribution == "tokens" and high is None:
        raise InputSyntaxError(
            f"cannot read input {shown!r}: tokens need an upper bound (the vocabulary size): "
            f"tokens:{dims_text}<1000"
        )
    try:
        return InputSpec(shape, distribution, high)
    except ValueError as exc:
        raise InputSyntaxError(f"cannot read input {shown!r}: {exc}") from None


def format_spec(spec: InputSpec) -> str:
    """An InputSpec in the --input syntax (`tokens:2,8<1000`)."""
    dims = ",".join(str(s) for s in spec.shape)
    if spec.distribution == "tokens":
        return f"tokens:{dims}<{spec.high}"
    if spec.distribution == "normal":
        return f"normal:{dims}"
    return dims


def format_argument(argument: InputArgument) -> str:
    value = f"@{argument.same_as}" if argument.spec is None else format_spec(argument.spec)
    return value if argument.name is None else f"{argument.name}={value}"
