"""Find identical tensors: content hashes group byte-identical tensors as probable ties."""

from __future__ import annotations

import numpy as np

from netexplorer.core.handles import ArrayHandle
from netexplorer.core.identical import find_identical_tensors, iter_identical_tensors
from netexplorer.core.tree import tree_from_entries


class CountingHandle(ArrayHandle):
    """An ArrayHandle that counts how often its values are read."""

    def __init__(self, array: np.ndarray, storage_key=None, dtype: str | None = None) -> None:
        super().__init__(array.shape, dtype or str(array.dtype), self._read, storage_key)
        self._array = array
        self.reads = 0

    def _read(self) -> np.ndarray:
        self.reads += 1
        return self._array


def tree_of(**handles: ArrayHandle):
    return tree_from_entries([(k.replace("__", "."), h) for k, h in handles.items()])


def test_identical_tensors_group_and_others_do_not():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    t = tree_of(
        embed__weight=CountingHandle(emb),
        head__weight=CountingHandle(emb.copy()),
        other__weight=CountingHandle(emb + 1),
        as_int__weight=CountingHandle(emb.view(np.int32)),  # same bytes, other dtype
        reshaped__weight=CountingHandle(emb.reshape(4, 6).copy()),  # same bytes, other shape
    )
    groups = find_identical_tensors(t)
    assert [(g.paths, g.probable_tie) for g in groups] == [(("embed.weight", "head.weight"), True)]
    assert groups[0].as_dict() == {
        "paths": ["embed.weight", "head.weight"],
        "dtype": "float32",
        "shape": [6, 4],
        "constant": False,
        "probable_tie": True,
    }


def test_constant_tensors_are_flagged_not_probable_ties():
    t = tree_of(
        ln1__bias=CountingHandle(np.zeros(8, np.float32)),
        ln2__bias=CountingHandle(np.zeros(8, np.float32)),
        fc__weight=CountingHandle(np.arange(8, dtype=np.float32)),
    )
    (group,) = find_identical_tensors(t)
    assert group.paths == ("ln1.bias", "ln2.bias") and group.constant and not group.probable_tie


def test_a_known_tie_is_read_once_and_listed_whole():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3))
    shared = CountingHandle(w, storage_key="s")
    t = tree_of(
        a__weight=shared,
        b__weight=CountingHandle(w, storage_key="s"),  # a tie group: same storage
        c__weight=CountingHandle(w.copy()),  # equal content, stored apart
    )
    assert [g.paths for g in t.tie_groups] == [("a.weight", "b.weight")]
    (group,) = find_identical_tensors(t)
    assert group.paths == ("a.weight", "b.weight", "c.weight")
    assert shared.reads == 1 and t.tensors["b.weight"].handle.reads == 0


def test_progress_in_chunks_and_tensors_without_values_skipped():
    class MetaHandle(ArrayHandle):
        has_values = False

    w = np.arange(100, dtype=np.float64)
    t = tree_of(
        a=CountingHandle(w),
        b=CountingHandle(w.copy()),
        m=MetaHandle((100,), "float64", lambda: np.zeros(0)),
    )
    work = iter_identical_tensors(t, chunk_bytes=80)  # 10 values per chunk
    steps = []
    while True:
        try:
            steps.append(next(work))
        except StopIteration as done:
            groups = done.value
            break
    assert len(steps) == 20
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert steps[0][1] == "hashing a"
    assert [g.paths for g in groups] == [("a", "b")]


def test_bfloat16_values_compare_by_their_decoded_bits():
    raw = np.array([0x3F80, 0xBF80, 0x7FC0], dtype=np.uint16)  # 1, -1, NaN
    decoded = (raw.astype(np.uint32) << 16).view(np.float32)
    t = tree_of(
        a=CountingHandle(decoded, dtype="bfloat16"),
        b=CountingHandle(decoded.copy(), dtype="bfloat16"),
    )
    (group,) = find_identical_tensors(t)
    assert group.dtype == "bfloat16" and group.probable_tie


def test_expanded_tensors_are_hashed_by_what_they_store():
    """An axis of stride 0 of 10**12 elements is hashed as its stored values (it was copied
    whole: 4 TB); the axes that repeat are part of what must match."""
    row = np.arange(4, dtype=np.float32)
    big = np.broadcast_to(row, (2**38, 4))
    tree = tree_of(
        a=CountingHandle(big),
        b=CountingHandle(np.broadcast_to(row.copy(), (2**38, 4))),
        c=CountingHandle(np.broadcast_to(row[::-1].copy(), (2**38, 4))),
    )
    groups = find_identical_tensors(tree)
    assert [g.paths for g in groups] == [("a", "b")]
