"""Find identical tensors: byte-identical tensors of one tree, reported as probable ties.

safetensors cannot store aliases (a tied embedding is saved twice, or once with the other key
dropped), so sharing in such a file shows only as equal content. Every tensor is hashed
(BLAKE2b over the values `handle.array()` gives, in chunks; bfloat16 and float8 decode one to
one, so equal values mean equal stored bytes); tensors of the same dtype, shape and hash form
a group. A group of constant tensors (all zeros, all ones: fresh biases and norms) is
flagged, since equal content there says nothing about sharing.

The work is a generator yielding progress, so the UI can run it in a worker and cancel between
chunks (stop iterating); `find_identical_tensors` runs it to the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Hashable
from dataclasses import dataclass

import numpy as np

from .display import value_chunks
from .handles import stored_values
from .tasks import run_to_end
from .tree import ModuleTree, TensorNode

CHUNK_BYTES = 1 << 24  # bytes hashed per step: the points where progress is reported


@dataclass(frozen=True)
class IdenticalGroup:
    """Paths whose tensors hold the same values (same dtype and shape). Paths of a known tie
    group are listed together; a group always spans at least two stored tensors."""

    paths: tuple[str, ...]
    dtype: str
    shape: tuple[int, ...]
    constant: bool  # every element equal: identical content is then likely a coincidence

    @property
    def probable_tie(self) -> bool:
        return not self.constant

    def as_dict(self) -> dict:
        return {
            "paths": list(self.paths),
            "dtype": self.dtype,
            "shape": list(self.shape),
            "constant": self.constant,
            "probable_tie": self.probable_tie,
        }


def iter_identical_tensors(
    tree: ModuleTree, chunk_bytes: int = CHUNK_BYTES
) -> Generator[tuple[float, str], None, list[IdenticalGroup]]:
    """Hash every tensor of `tree` that has values; yields (fraction done, what is being
    hashed) between chunks and returns the groups of identical tensors, largest first.

    A tie group (one stored tensor at several paths) is hashed once."""
    # one representative per stored tensor: paths of a tie group share their bytes
    stored: dict[Hashable, list[TensorNode]] = {}
    for node in tree.tensors.values():
        if not node.handle.has_values:
            continue
        key = ("tie", node.tie) if node.tie is not None else ("path", node.path)
        stored.setdefault(key, []).append(node)
    total = sum(_nbytes(nodes[0]) for nodes in stored.values()) or 1
    done = 0
    by_content: dict[tuple, list[tuple[Hashable, list[TensorNode]]]] = {}
    constant: dict[tuple, bool] = {}
    for key, nodes in stored.items():
        node = nodes[0]
        hasher = hashlib.blake2b(digest_size=20)
        values = np.asarray(node.handle.array())
        # an axis of stride 0 repeats what is stored: hash that once, and say which axes
        # repeat (an expanded tensor of 10**12 elements is one value, not 4 TB to hash)
        stored = stored_values(values)
        repeated = tuple(
            i
            for i, (n, stride) in enumerate(zip(values.shape, values.strides, strict=True))
            if stride == 0 and n > 1 and stored is not values
        )
        is_constant = True
        first = stored.reshape(-1)[:1].copy() if stored.size else stored.reshape(-1)
        step = max(1, chunk_bytes // max(1, stored.itemsize))
        for piece in value_chunks(stored, step, order="C"):
            part = np.ascontiguousarray(piece)
            hasher.update(memoryview(part).cast("B"))
            if is_constant:
                is_constant = bool(np.array_equal(part, np.broadcast_to(first, part.shape)))
            done += part.nbytes * (values.size // max(1, stored.size))
            yield min(1.0, done / total), f"hashing {node.path}"
        if stored.size == 0:
            yield min(1.0, done / total), f"hashing {node.path}"
        content = (node.dtype, node.shape, repeated, hasher.hexdigest())
        by_content.setdefault(content, []).append((key, nodes))
        constant[content] = is_constant
    groups = []
    for content, members in by_content.items():
        if len(members) < 2:
            continue
        dtype, shape, _, _ = content
        paths = tuple(n.path for _, nodes in members for n in nodes)
        groups.append(IdenticalGroup(paths, dtype, shape, constant[content]))
    groups.sort(key=lambda g: (not g.probable_tie, -_numel(g.shape), g.paths))
    return groups


def find_identical_tensors(tree: ModuleTree) -> list[IdenticalGroup]:
    """All groups of identical tensors at once (see `iter_identical_tensors`)."""
    return run_to_end(iter_identical_tensors(tree))


def _nbytes(node: TensorNode) -> int:
    from .handles import raw_view_dtype

    view = raw_view_dtype(node.dtype)
    return node.numel * (view.itemsize if view is not None else 4)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
