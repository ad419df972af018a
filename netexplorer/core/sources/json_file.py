"""The JSON files of a model folder (`*.index.json`, `config.json`), read within bounds.

Each is checked by `stat` before it is opened (a FIFO, `/dev/zero` or `/dev/urandom` in its
place is refused, not read forever), read up to a size limit, and parsed with every failure
turned into one line: invalid JSON, nesting too deep, or a number of more digits than Python
converts (4,300).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import SourceError
from ..limits import size_text
from ..text import first_line
from .files import check_file, open_regular


class UnreadableJson(SourceError):
    """A JSON file that cannot be read; `reason` says why without the path."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_json(path: str, limit: int, what: str, advice: str) -> Any:
    """The parsed content of the JSON file at `path`, at most `limit` bytes. `what` names the
    file in the message ("the index"), `advice` says what to do ("download it again")."""
    try:
        size = check_file(path)
    except SourceError as error:
        raise UnreadableJson(str(error), str(error).split(": ", 1)[-1]) from None
    if size > limit:
        reason = (
            f"{what} is {size_text(size)}, more than the {size_text(limit)} netexplorer reads "
            "for such a file"
        )
        raise UnreadableJson(f"cannot open {path}: {reason}; {advice}", reason)
    with open_regular(path) as f:
        raw = f.read(limit + 1)  # the file may have grown since it was measured
    if len(raw) > limit:
        reason = f"{what} grew past {size_text(limit)} while it was read"
        raise UnreadableJson(f"cannot open {path}: {reason}; {advice}", reason)
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        reason = f"{what} is nested too deeply"
    except UnicodeDecodeError:
        reason = f"{what} is not UTF-8 text"
    except json.JSONDecodeError as exc:
        reason = f"{what} is not valid JSON ({first_line(exc)})"
    except ValueError:  # int() of more digits than Python converts (CVE-2020-10735)
        digits = sys.get_int_max_str_digits()
        reason = f"{what} holds a number of more than {digits:,} digits, which no model needs"
    raise UnreadableJson(f"cannot open {path}: {reason}; {advice}", reason)
