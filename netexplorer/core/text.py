"""How netexplorer writes shapes and errors in one line of text, everywhere."""

from __future__ import annotations

from collections.abc import Sequence

SHAPE_SEPARATORS = {"plain": "x", "pretty": " × ", "compact": "×"}


def shape_text(shape: Sequence[int], style: str = "plain") -> str:
    """`8x4` (plain: the CLI and messages), `8 × 4` (pretty: the window's columns),
    `8×4` (compact: graph labels); `scalar` for a 0-d shape."""
    return SHAPE_SEPARATORS[style].join(str(s) for s in shape) if len(shape) else "scalar"


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first non-empty line of an exception's message (`ValueError: bad` with the type),
    or the type's name when the message is empty."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    if not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}" if with_type else line


def printable(text: str) -> str:
    """`text` with every character a terminal would act on (escape sequences, bells, carriage
    returns, line breaks, bidirectional overrides) written as a Python escape (`\\x1b`): a
    crafted tensor name must not set a terminal's title or clear its screen."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def printable_lines(text: str) -> str:
    """`printable` of each line of `text`, the line breaks kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
