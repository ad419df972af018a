"""Large tensors in the window: their display array is made in a worker a piece at a time,
and selecting another tensor stops the older work between two pieces; tensors shown before
come back from the document's cache (with their statistics), which keeps within its bytes."""

from __future__ import annotations

import numpy as np

from netexplorer.core.handles import ArrayHandle
from netexplorer.core.tree import tree_from_entries
from netexplorer.ui import document as document_module
from netexplorer.ui.document import Document
from netexplorer.ui.workers import GUI_THREAD_ELEMENTS

SIDE = 1200  # 1,440,000 elements: read in a worker


def _tree(count: int, side: int = SIDE):
    rng = np.random.default_rng(0)
    arrays = {
        f"layer{i}.weight": rng.standard_normal((side, side)).astype(np.float32)
        for i in range(count)
    }
    entries = [(name, ArrayHandle(a.shape, "float32", lambda a=a: a)) for name, a in arrays.items()]
    return tree_from_entries(entries), arrays


def test_a_newer_selection_stops_the_older_reduction(qtbot, monkeypatch):
    runs: dict[str, dict] = {}
    real = document_module.iter_display_array

    def slow_pieces(values, slice_index=None):
        record = runs.setdefault(f"run{len(runs)}", {"pieces": 0, "finished": False})
        work = real(values, slice_index=slice_index, chunk_bytes=1 << 12)
        try:
            while True:
                try:
                    progress = next(work)
                except StopIteration as done:
                    record["finished"] = True
                    return done.value
                record["pieces"] += 1
                yield progress
        finally:
            work.close()

    monkeypatch.setattr(document_module, "iter_display_array", slow_pieces)
    tree, arrays = _tree(2)
    assert tree.tensors["layer0.weight"].numel > GUI_THREAD_ELEMENTS
    document = Document()
    document.set_tree(tree)
    document.select("layer0.weight")
    qtbot.waitUntil(lambda: runs.get("run0", {}).get("pieces", 0) >= 1, timeout=5000)
    document.select("layer1.weight")  # before the first is done
    qtbot.waitUntil(
        lambda: document.tensor_data is not None and document.tensor_data.path == "layer1.weight",
        timeout=10_000,
    )
    assert not runs["run0"]["finished"]  # stopped between two pieces
    assert runs["run1"]["finished"]
    np.testing.assert_array_equal(document.tensor_data.values, arrays["layer1.weight"])
    document.shutdown()


def test_tensors_shown_before_come_from_the_cache_within_its_bytes(qtbot, monkeypatch):
    reads: list[str] = []
    real = document_module.read_tensor

    def counted(path, handle, slice_index):
        reads.append(path)
        return (yield from real(path, handle, slice_index))

    monkeypatch.setattr(document_module, "read_tensor", counted)
    tree, arrays = _tree(6, side=500)  # 1 MB of values each (in memory: they count)
    document = Document()
    document.display_cache.max_bytes = 3 * 1_000_000 + 3 * 1_000_000  # about three tensors
    document.set_tree(tree)
    for name in arrays:
        document.select(name)
        qtbot.waitUntil(
            lambda n=name: document.tensor_data is not None and document.tensor_data.path == n,
            timeout=10_000,
        )
        assert document.display_cache.bytes <= document.display_cache.max_bytes
    assert len(document.display_cache) < len(arrays)  # the first ones were dropped
    last = list(arrays)[-1]
    document.tensor_data.stats = "computed"  # what the details panel keeps with the data
    document.select(list(arrays)[-2])
    document.select(last)  # shown before: no read, and its statistics come with it
    assert reads.count(last) == 1
    assert document.tensor_data.path == last and document.tensor_data.stats == "computed"
    first = next(iter(arrays))
    document.select(first)  # dropped from the cache: read again
    qtbot.waitUntil(lambda: document.tensor_data.path == first, timeout=10_000)
    assert reads.count(first) == 2
    document.set_tree(None)  # another tree: nothing kept of this one
    assert len(document.display_cache) == 0 and document.display_cache.bytes == 0
    document.shutdown()
