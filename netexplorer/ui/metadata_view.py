"""A source's metadata as readable rich-text rows for the details panel.

Checkpoint metadata nests: a Lightning `.ckpt` holds `hyper_parameters` (a dict) and
`optimizer_states` (a list of dicts), a Hugging Face folder its `config.json`, a `--weights`
load its `weights_report` (lists of keys). Printed as one JSON line each, they read as a
wall of braces; here a dict becomes indented `name: value` rows, a list of dicts one
numbered group per item, an empty list "none", and long values are cut with a count of what
was left out.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .appearance import MUTED

MAX_DEPTH = 3  # deeper containers are shown as one line of JSON
MAX_ROWS = 30  # rows of one container before "… N more"
MAX_TEXT = 160  # characters of one value
INDENT = "&nbsp;" * 4
KEY_STYLE = f"color:{MUTED}"


def metadata_rows(meta: dict[str, Any]) -> list[str]:
    """Rich-text rows (without <br>) for `meta`, nested containers indented."""
    rows: list[str] = []
    _add_mapping(rows, meta, 0)
    return rows


def _add_mapping(rows: list[str], mapping: dict[str, Any], depth: int) -> None:
    items = list(mapping.items())
    for key, value in items[:MAX_ROWS]:
        _add_value(rows, str(key), value, depth)
    if len(items) > MAX_ROWS:
        rows.append(f"{INDENT * depth}<i>… {len(items) - MAX_ROWS} more</i>")


def _add_value(rows: list[str], key: str, value: Any, depth: int) -> None:
    label = f"{INDENT * depth}<span style='{KEY_STYLE}'>{html.escape(key)}:</span>"
    if key == "weights_report" and isinstance(value, dict) and "loaded" in value:
        _add_weights_report(rows, label, value, depth)
    elif isinstance(value, dict) and value and depth < MAX_DEPTH:
        rows.append(label)
        _add_mapping(rows, value, depth + 1)
    elif _is_list_of_dicts(value) and depth < MAX_DEPTH:
        rows.append(label)
        for i, item in enumerate(value[:MAX_ROWS]):
            _add_value(rows, f"[{i}]", item, depth + 1)
        if len(value) > MAX_ROWS:
            rows.append(f"{INDENT * (depth + 1)}<i>… {len(value) - MAX_ROWS} more</i>")
    else:
        rows.append(f"{label} {html.escape(_short(value))}")


def _add_weights_report(rows: list[str], label: str, report: dict, depth: int) -> None:
    """What loading weights into a model did, one finding a row, as the CLI says it (a tied
    key: "lm_head.weight: tied to transformer.wte.weight, loaded through it")."""
    from ..core.describe import weights_report_lines

    lines = weights_report_lines(report, "")
    rows.append(f"{label} {html.escape(lines[0].split(': ', 1)[-1])}")
    for line in lines[1:MAX_ROWS]:
        rows.append(f"{INDENT * (depth + 1)}{html.escape(line.strip())}")
    if len(lines) > MAX_ROWS:
        rows.append(f"{INDENT * (depth + 1)}<i>… {len(lines) - MAX_ROWS} more</i>")


def _is_list_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _short(value: Any) -> str:
    """One line for a scalar, a string or a flat container, in Python's spelling (None,
    True, [2, 3]); lists of names without brackets."""
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple, dict)) and not value:
        return "none"
    if value == "":
        return "(empty)"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        numbers = not any(isinstance(v, str) for v in value)
        shown, width = [], 0
        for v in value:
            width += len(str(v)) + 2
            if width > MAX_TEXT:
                shown.append(f"… ({len(value)} in all)")
                break
            shown.append(str(v))
        text = ", ".join(shown)
        return f"[{text}]" if numbers else text
    if isinstance(value, dict):  # nested too deep for rows: name=value, like a call
        text = ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
