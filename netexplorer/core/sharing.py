"""Sharing: tie groups of tensor paths, and modules placed at several paths.

A tie group is a set of paths that reach the same tensor: the same Parameter object in a live
module, or the same storage with the same offset, shape and stride in a loaded state_dict.
The caller says what "the same" means by giving each path an identity key.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple


class TieGroup(NamedTuple):
    """Paths (in state_dict order) that reach one tensor. `tie_from` says where a tie that
    the file itself does not hold comes from: "config" when a model built from the folder's
    config.json ties tensors that safetensors had to store once ("" otherwise)."""

    id: int
    paths: tuple[str, ...]
    tie_from: str = ""


def find_tie_groups(ordered_paths: Sequence[str], identity: dict[str, Hashable]) -> list[TieGroup]:
    """Group paths whose identity keys are equal; groups of one are not ties. A path
    without an identity key (a tensor that shares storage with nothing) is in no group.

    Groups are numbered in the order their first path appears. (One pass that keeps only
    the first place of each key, and lists only for keys met again: a million tensors made a
    million lists; a million (place, path) tuples took 0.1 s to free, the GIL held.)"""
    first: dict[Hashable, int] = {}
    tied: dict[Hashable, list[str]] = {}
    for index, path in enumerate(ordered_paths):
        key = identity.get(path)
        if key is None:
            continue
        seen = first.setdefault(key, index)
        if seen != index:
            paths = tied.get(key)
            if paths is None:
                tied[key] = [ordered_paths[seen], path]
            else:
                paths.append(path)
    groups = sorted(tied.items(), key=lambda item: first[item[0]])
    return [TieGroup(i, tuple(paths)) for i, (_, paths) in enumerate(groups)]


def module_aliases(identity: dict[str, Hashable]) -> dict[str, list[str]]:
    """For every module path whose object also sits at other paths: those other paths."""
    by_identity: dict[Hashable, list[str]] = {}
    for path, key in identity.items():
        by_identity.setdefault(key, []).append(path)
    return {
        path: [other for other in paths if other != path]
        for paths in by_identity.values()
        if len(paths) > 1
        for path in paths
    }
