"""Compare two checkpoints (or any two trees): keys only in one, shape and dtype changes, and
per common tensor the relative change ||B−A|| / ||A||; B−A of one tensor for the heatmap.

Keys are matched by path. When one side nests its model under a prefix (a Lightning
`state_dict.`, a DataParallel `module.`) and the other does not, the prefixes that make the
most keys match are stripped first, and the comparison says so.

`compare_keys` needs no tensor data; `iter_compare` reads every common tensor in chunks and
yields progress (the UI runs it in a worker, cancelling by ceasing to iterate);
`compare_trees` runs it to the end.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UnknownPathError
from .handles import stored_values
from .tasks import run_to_end
from .text import shape_text
from .tree import ModuleTree, TensorNode

CHUNK = 1 << 22  # elements per step: the points where progress is reported


@dataclass
class TensorComparison:
    """One key present in both trees. Norms are None until computed (or without values)."""

    path: str  # the key, prefixes stripped
    path_a: str
    path_b: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    norm_a: float | None = None
    norm_b: float | None = None
    norm_diff: float | None = None  # ||B − A||
    max_abs_diff: float | None = None
    # ||B−A|| / ||A|| from the scaled sums, when the norms themselves left the float64 range
    # (values near 1.7e308): the ratio of two infinities is still known
    ratio: float | None = None

    @property
    def same_shape(self) -> bool:
        return self.shape_a == self.shape_b

    @property
    def relative_change(self) -> float | None:
        """||B−A|| / ||A||: 0 for equal tensors, inf if A is zero and B is not, None when
        not computed, without values, or not finite (NaN in a tensor)."""
        if self.ratio is not None:
            return self.ratio
        if self.norm_a is None or self.norm_diff is None:
            return None
        if not (math.isfinite(self.norm_a) and math.isfinite(self.norm_diff)):
            return None
        if self.norm_a == 0:
            return 0.0 if self.norm_diff == 0 else math.inf
        return self.norm_diff / self.norm_a

    def as_dict(self) -> dict[str, Any]:
        rel = self.relative_change
        return {
            "path": self.path,
            "path_a": self.path_a,
            "path_b": self.path_b,
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "relative_change": rel if rel is None or math.isfinite(rel) else "inf",
            "norm_a": _finite(self.norm_a),
            "norm_b": _finite(self.norm_b),
            "norm_diff": _finite(self.norm_diff),
            "max_abs_diff": _finite(self.max_abs_diff),
        }


@dataclass
class Comparison:
    """The result of comparing tree A with tree B."""

    a: ModuleTree
    b: ModuleTree
    prefix_a: str = ""  # stripped from A's paths before matching ("state_dict." ...)
    prefix_b: str = ""
    only_in_a: list[str] = field(default_factory=list)  # paths of A
    only_in_b: list[str] = field(default_factory=list)  # paths of B
    common: dict[str, TensorComparison] = field(default_factory=dict)  # by stripped key
    computed: bool = False  # relative changes filled in (every common tensor read)

    @property
    def shape_changes(self) -> list[TensorComparison]:
        return [c for c in self.common.values() if not c.same_shape]

    @property
    def dtype_changes(self) -> list[TensorComparison]:
        return [c for c in self.common.values() if c.dtype_a != c.dtype_b]

    def by_relative_change(self, descending: bool = True) -> list[TensorComparison]:
        """Common tensors of equal shape sorted by relative change (unknown ones last)."""
        rows = [c for c in self.common.values() if c.same_shape]
        known = [c for c in rows if c.relative_change is not None]
        unknown = [c for c in rows if c.relative_change is None]
        known.sort(key=lambda c: c.relative_change, reverse=descending)  # type: ignore[arg-type,return-value]
        return known + unknown

    def entry(self, path: str) -> TensorComparison:
        """The comparison of a common tensor, by its key or by its path in A or B."""
        if path in self.common:
            return self.common[path]
        for c in self.common.values():
            if path in (c.path_a, c.path_b):
                return c
        raise UnknownPathError(f"{path!r} is not a tensor that both checkpoints hold")

    def difference(self, path: str) -> np.ndarray:
        """B − A of one common tensor (float32, float64 if either side is float64), for the
        heatmap. Raises UnknownPathError, or ValueError if the shapes differ."""
        c = self.entry(path)
        if not c.same_shape:
            raise ValueError(
                f"{c.path} has shape {list(c.shape_a)} in A but {list(c.shape_b)} in B: "
                "there is no difference to show"
            )
        a = np.asarray(self.a.tensors[c.path_a].handle.array())
        b = np.asarray(self.b.tensors[c.path_b].handle.array())
        shape = a.shape
        if _repeating(a) and _repeating(a) == _repeating(b):  # expanded alike: once, then
            a, b = stored_values(a), stored_values(b)  # broadcast again
        wide = np.float64 in (a.dtype, b.dtype) or np.iscomplexobj(a) or np.iscomplexobj(b)
        diff = _as_numbers(b) - _as_numbers(a)
        if np.iscomplexobj(diff):
            diff = np.abs(diff)
        return np.broadcast_to(diff.astype(np.float64 if wide else np.float32), shape)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: key lists, shape and dtype changes, per-tensor changes (sorted)."""
        return {
            "a": self.a.source,
            "b": self.b.source,
            "prefix_a": self.prefix_a,
            "prefix_b": self.prefix_b,
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
            "shape_changes": [
                {"path": c.path, "a": list(c.shape_a), "b": list(c.shape_b)}
                for c in self.shape_changes
            ],
            "dtype_changes": [
                {"path": c.path, "a": c.dtype_a, "b": c.dtype_b} for c in self.dtype_changes
            ],
            "computed": self.computed,
            "tensors": [c.as_dict() for c in self.by_relative_change()],
        }

    def text(self) -> str:
        """A readable report: counts, key differences, and the table of relative changes."""
        lines = [f"Comparison: A = {self.a.source}, B = {self.b.source}"]
        if self.prefix_a or self.prefix_b:
            lines.append(
                f"  keys matched after removing {self.prefix_a or '(nothing)'!s} from A and "
                f"{self.prefix_b or '(nothing)'!s} from B"
            )
        lines.append(
            f"  {len(self.common)} common tensors, {len(self.only_in_a)} only in A, "
            f"{len(self.only_in_b)} only in B, {len(self.shape_changes)} shape changes, "
            f"{len(self.dtype_changes)} dtype changes"
        )
        for title, paths, tree in (
            ("Only in A", self.only_in_a, self.a),
            ("Only in B", self.only_in_b, self.b),
        ):
            if paths:
                lines.append(f"{title}:")
                lines += _table([(p, *_shape_dtype(tree.tensors[p])) for p in paths])
        if self.shape_changes:
            lines.append("Shape changes (A -> B):")
            lines += _table(
                [
                    (c.path, f"{shape_text(c.shape_a)} -> {shape_text(c.shape_b)}")
                    for c in self.shape_changes
                ]
            )
        if self.dtype_changes:
            lines.append("Dtype changes (A -> B):")
            lines += _table([(c.path, f"{c.dtype_a} -> {c.dtype_b}") for c in self.dtype_changes])
        rows = self.by_relative_change()
        if rows and self.computed:
            lines.append("Relative change ||B-A|| / ||A||, largest first:")
            header = ("path", "shape", "||B-A||/||A||", "max |B-A|")
            lines += _table(
                [header]
                + [
                    (
                        c.path,
                        shape_text(c.shape_a),
                        _number(c.relative_change),
                        _number(c.max_abs_diff),
                    )
                    for c in rows
                ]
            )
        return "\n".join(lines)


def compare_keys(a: ModuleTree, b: ModuleTree) -> Comparison:
    """Match the keys of A and B (no tensor data read): only-in-A, only-in-B, common."""
    prefix_a, prefix_b = matching_prefixes(a, b)
    keys_a = _stripped(a.tensors, prefix_a)
    keys_b = _stripped(b.tensors, prefix_b)
    comparison = Comparison(a, b, prefix_a, prefix_b)
    # paths outside a stripped prefix (a checkpoint's other branches) are only in their side
    matched_a = {path for key, path in keys_a.items() if key in keys_b}
    matched_b = {path for key, path in keys_b.items() if key in keys_a}
    comparison.only_in_a = [path for path in a.tensors if path not in matched_a]
    comparison.only_in_b = [path for path in b.tensors if path not in matched_b]
    for key, path_a in keys_a.items():
        path_b = keys_b.get(key)
        if path_b is None:
            continue
        ta, tb = a.tensors[path_a], b.tensors[path_b]
        comparison.common[key] = TensorComparison(
            key, path_a, path_b, ta.shape, tb.shape, ta.dtype, tb.dtype
        )
    return comparison


def iter_compare(
    a: ModuleTree, b: ModuleTree, chunk: int = CHUNK
) -> Generator[tuple[float, str], None, Comparison]:
    """Compare A and B, reading every common tensor of equal shape in chunks; yields
    (fraction done, what is being read) and returns the Comparison."""
    comparison = compare_keys(a, b)
    rows = [c for c in comparison.common.values() if c.same_shape]
    total = sum(math.prod(c.shape_a) for c in rows) or 1
    done = 0
    for c in rows:
        ha, hb = a.tensors[c.path_a].handle, b.tensors[c.path_b].handle
        if not (ha.has_values and hb.has_values):
            continue
        va, vb = np.asarray(ha.array()), np.asarray(hb.array())
        repeat = 1
        if _repeating(va) and _repeating(va) == _repeating(vb):
            # both expanded the same way: compare what they store, each value weighted by
            # how often it is seen (10**12 elements of one value are one comparison)
            repeat = va.size // max(1, stored_values(va).size)
            va, vb = stored_values(va), stored_values(vb)
        sq_a, sq_b, sq_half_d = _Squares(), _Squares(), _Squares()
        max_half_d = 0.0
        for raw_a, raw_b in _paired_chunks(va, vb, chunk):
            pa, pb = _as_numbers(raw_a), _as_numbers(raw_b)
            half_d = pb / 2 - pa / 2  # halves: 1.7e308 - (-1.7e308) would overflow
            sq_a.add(pa, repeat)
            sq_b.add(pb, repeat)
            sq_half_d.add(half_d, repeat)
            if half_d.size:
                max_half_d = max(max_half_d, float(np.max(np.abs(half_d))))
            done += pa.size * repeat
            yield min(1.0, done / total), f"comparing {c.path}"
        if va.size == 0:
            yield min(1.0, done / total), f"comparing {c.path}"
        c.norm_a, c.norm_b = sq_a.norm(), sq_b.norm()
        c.norm_diff = 2 * sq_half_d.norm()  # inf when the true norm exceeds float64
        c.max_abs_diff = 2 * max_half_d if sq_half_d.finite else math.nan
        c.ratio = sq_half_d.ratio_to(sq_a, 2.0)
    comparison.computed = True
    return comparison


def compare_trees(a: ModuleTree, b: ModuleTree) -> Comparison:
    """The full comparison of A and B at once (see `iter_compare`)."""
    return run_to_end(iter_compare(a, b))


def matching_prefixes(a: ModuleTree, b: ModuleTree) -> tuple[str, str]:
    """The prefixes to strip from A's and B's paths so that most keys match; ("", "")
    unless stripping a wrapper branch (one holding most of a tree) matches more keys."""
    best = ("", "")
    best_count = _count_common(a.tensors, "", b.tensors, "")
    for pa in _wrapper_prefixes(a):
        for pb in _wrapper_prefixes(b):
            if (pa, pb) == ("", ""):
                continue
            count = _count_common(a.tensors, pa, b.tensors, pb)
            if count > best_count:
                best, best_count = (pa, pb), count
    return best


def _wrapper_prefixes(tree: ModuleTree) -> list[str]:
    """ "" and every module whose subtree holds at least half of the tree's tensors."""
    half = len(tree.tensors) / 2
    out = [""]
    for path, module in tree.modules.items():
        if path and sum(1 for _ in module.walk_tensors()) >= half:
            out.append(path + ".")
    return out


def _stripped(tensors: dict[str, TensorNode], prefix: str) -> dict[str, str]:
    return {p[len(prefix) :]: p for p in tensors if p.startswith(prefix)}


def _count_common(ta: Iterable[str], pa: str, tb: Iterable[str], pb: str) -> int:
    keys_b = {p[len(pb) :] for p in tb if p.startswith(pb)}
    return sum(1 for p in ta if p.startswith(pa) and p[len(pa) :] in keys_b)


def _repeating(values: np.ndarray) -> tuple[int, ...]:
    """The axes of `values` along which one stored value repeats (stride 0)."""
    return tuple(
        i
        for i, (n, stride) in enumerate(zip(values.shape, values.strides, strict=True))
        if stride == 0 and n > 1
    )


def _paired_chunks(a: np.ndarray, b: np.ndarray, chunk: int):
    """Aligned 1-D pieces of A and B in row-major order, one piece copied at a time (a
    strided view is never copied whole)."""
    if a.flags.c_contiguous and b.flags.c_contiguous:
        flat_a, flat_b = a.reshape(-1), b.reshape(-1)
        for start in range(0, flat_a.size, chunk):
            yield flat_a[start : start + chunk], flat_b[start : start + chunk]
        return
    if a.size == 0:
        return
    flags = ["external_loop", "buffered", "zerosize_ok"]
    for pa, pb in np.nditer([a, b], flags=flags, buffersize=chunk, order="C"):
        yield pa.copy(), pb.copy()  # the iterator reuses its buffers


def _as_numbers(x: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(x):
        return x.astype(np.complex128)
    return x.astype(np.float64)


class _Squares:
    """A sum of squares kept as scale**2 * ssq (the scaled sum of BLAS's nrm2), so norms of
    values near 1.7e308, or 1e-310, neither overflow nor underflow on the way."""

    def __init__(self) -> None:
        self.scale = 0.0
        self.ssq = 1.0
        self.finite = True  # no NaN or inf met

    def add(self, x: np.ndarray, repeat: int = 1) -> None:
        """Add the squares of `x`, each counted `repeat` times."""
        if not x.size:
            return
        magnitudes = np.abs(x)
        if not np.all(np.isfinite(magnitudes)):
            self.finite = False
            return
        largest = float(magnitudes.max())
        if largest == 0.0:
            return
        if largest > self.scale:
            self.ssq = self.ssq * (self.scale / largest) ** 2 if self.scale else 0.0
            self.scale = largest
        scaled = magnitudes / self.scale
        self.ssq += float(np.dot(scaled, scaled)) * repeat

    def norm(self) -> float:
        """sqrt of the sum: NaN after a non-finite value, inf past the float64 range."""
        if not self.finite:
            return math.nan
        with np.errstate(over="ignore"):
            return float(np.float64(self.scale) * np.sqrt(self.ssq)) if self.scale else 0.0

    def ratio_to(self, other: _Squares, factor: float) -> float | None:
        """factor * norm(self) / norm(other) from the scaled sums; None when either met a
        NaN or inf; only needed when a norm itself left the float64 range."""
        if not (self.finite and other.finite):
            return None
        if math.isfinite(factor * self.norm()) and math.isfinite(other.norm()):
            return None  # the plain ratio of the norms says it
        if other.scale == 0.0:
            return 0.0 if self.scale == 0.0 else math.inf
        return factor * (self.scale / other.scale) * math.sqrt(self.ssq / other.ssq)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _number(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _shape_dtype(node: TensorNode) -> tuple[str, str]:
    return shape_text(node.shape), node.dtype


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
