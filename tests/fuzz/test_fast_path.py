"""Every crafted torch file and pickle of crafted.py (small versions) is refused, or read,
the same way with the fast path of the restricted unpickler (a pre-scan, then Python's C
unpickler under hooks: core/sources/pickle_scan.py) as without it (the pure-Python reader
alone): the same object, or the same refusal in the same words. In this process, not
through the command line (test_crafted.py runs them through it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from crafted import CASES, Case

from netexplorer.core.errors import SourceError
from netexplorer.core.sources import pickle_reader
from netexplorer.core.sources.files import sniff
from netexplorer.core.sources.torch_file import load_checkpoint_object

PICKLED = ("torch-zip", "torch-legacy", "pickle")


def _outcome(path: str) -> tuple[str, str]:
    try:
        obj, fmt = load_checkpoint_object(path, trust=False)
    except SourceError as error:
        return type(error).__name__, str(error)
    return "opened", f"{fmt}: {_shape_of(obj)}"


def _shape_of(obj, depth: int = 0) -> str:
    """What a loaded object holds, to compare two loads: containers, keys and types."""
    if depth > 6:
        return "..."
    if isinstance(obj, dict):
        items = ", ".join(f"{k!r}: {_shape_of(v, depth + 1)}" for k, v in list(obj.items())[:50])
        return f"{type(obj).__name__}({items})"
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(_shape_of(v, depth + 1) for v in obj[:50])}]"
    shape = getattr(obj, "shape", None)
    return f"{type(obj).__name__}{list(shape) if shape is not None else ''}"


@pytest.mark.parametrize("case", CASES.values(), ids=lambda c: c.name)
def test_a_crafted_file_is_refused_the_same_way_with_the_fast_path(
    tmp_path, monkeypatch, case: Case
):
    if not case.small_too:
        pytest.skip("its small version is a test of its own (test_limits)")
    sources = [a for a in case.build(tmp_path, True) if not a.startswith("-")]
    pickled = [s for s in sources if Path(s).is_file() and sniff(s) in PICKLED]
    if not pickled:
        pytest.skip("not a torch file or a pickle")
    fast = [_outcome(s) for s in pickled]
    monkeypatch.setattr(pickle_reader, "scan", lambda *args: None)  # the pure reader only
    pure = [_outcome(s) for s in pickled]
    assert fast == pure
