"""Fixtures of the reader tests; the builders are in checkpoint_builders.py."""

from __future__ import annotations

import io
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from checkpoint_builders import build_every_format


@pytest.fixture
def formats(tmp_path: Path) -> dict[str, Path]:
    return build_every_format(tmp_path / "formats")


# -- every pickle these tests read, read both ways --------------------------------------------


def _same(a: Any, b: Any, seen: set | None = None) -> bool:
    """Whether two unpickled objects are alike: the same types, values and sharing; stored
    tensors alike field by field (their storages are the reader's own, the same object)."""
    from netexplorer.core.sources.pickle_reader import Opaque
    from netexplorer.core.sources.stored import StoredTensor

    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, StoredTensor):
        fields = ("offset", "shape", "stride", "dtype", "requires_grad")
        return a.storage is b.storage and all(getattr(a, f) == getattr(b, f) for f in fields)
    if isinstance(a, Opaque):
        return a == b
    if isinstance(a, (dict, list, tuple, set, frozenset)):
        seen.add((id(a), id(b)))
        if len(a) != len(b):
            return False
        if isinstance(a, dict):
            if list(a) != list(b):
                return False
            if getattr(a, "__dict__", {}) != getattr(b, "__dict__", {}) and not _same(
                a.__dict__, b.__dict__, seen
            ):
                return False
            return all(_same(a[k], b[k], seen) for k in a)
        if isinstance(a, (set, frozenset)):
            return a == b
        return all(_same(x, y, seen) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _outcome(load: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", load()
    except Exception as exc:  # compared: the same kind and words, both ways
        return "error", exc


@pytest.fixture(autouse=True)
def both_unpicklers(monkeypatch):
    """Every pickle read by the reader tests is read twice: by the C unpickler after the
    pre-scan (when it proves the pickle) and by the restricted pure-Python unpickler, and
    the two must agree: the same object, or the same refusal in the same words."""
    from netexplorer.core.sources import pickle_reader, torch_legacy, torch_zip

    real = pickle_reader.load_restricted

    def pure(data: Any, **options: Any) -> Any:
        if isinstance(data, (bytes, bytearray)):
            options.setdefault("file_size", len(data))
            data = io.BytesIO(data)
        return pickle_reader.RestrictedUnpickler(data, **options).load_all()

    def both(data: Any, **options: Any) -> Any:
        start = data.tell() if isinstance(data, mmap.mmap) else 0
        kind, expected = _outcome(lambda: pure(data, **dict(options)))
        after = data.tell() if isinstance(data, mmap.mmap) else 0
        if isinstance(data, mmap.mmap):
            data.seek(start)
        got_kind, got = _outcome(lambda: real(data, **options))
        assert got_kind == kind, f"C path: {got!r}; pure: {expected!r}"
        if kind == "error":
            assert type(got) is type(expected) and str(got) == str(expected)
            raise got
        assert _same(got, expected), f"C path: {got!r}; pure: {expected!r}"
        if isinstance(data, mmap.mmap):
            assert data.tell() == after
        return got

    for module in (pickle_reader, torch_zip, torch_legacy):
        monkeypatch.setattr(module, "load_restricted", both)
