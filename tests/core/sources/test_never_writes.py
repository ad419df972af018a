"""Opening and exploring never writes to the opened files."""

from __future__ import annotations

import os

from checkpoint_builders import build_every_format, file_hashes

from netexplorer.core.compare import compare_trees
from netexplorer.core.display import display_array, tensor_stats
from netexplorer.core.identical import find_identical_tensors
from netexplorer.core.sources import OpenOptions, open_source


def test_files_are_unchanged_after_opening_and_reading_every_tensor(tmp_path):
    formats = build_every_format(tmp_path / "formats")
    before = file_hashes(tmp_path / "formats")
    times = {p: os.stat(p).st_mtime_ns for p in before}
    trees = []
    for path in formats.values():
        tree = open_source(str(path), OpenOptions(trust=True))  # trust: TorchScript too
        handles = [node.handle for node in tree.tensors.values()]
        handles += [h for state in tree.optimizer_state.values() for h in state.values()]
        for handle in handles:
            if handle.has_values:
                values = handle.array()
                display_array(values)
                tensor_stats(values)
        find_identical_tensors(tree)
        trees.append(tree)
    compare_trees(trees[0], trees[1])
    assert file_hashes(tmp_path / "formats") == before
    assert {p: os.stat(p).st_mtime_ns for p in before} == times
