"""Every reader bounded: counts, depths, sizes and allocations a file names are checked
before the work they would cause, and the refusal says which limit. Limits are lowered here
where the real one would need a file of hundreds of MB (`make fuzz` runs those at full size)."""

from __future__ import annotations

import json
import resource
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import write_safetensors, write_torch

from netexplorer.core.describe import describe, summary_text
from netexplorer.core.errors import SourceError
from netexplorer.core.limits import MAX_TUPLE_NESTING
from netexplorer.core.sources import checkpoint as checkpoint_module
from netexplorer.core.sources import hf_folder, open_source, pickle_reader, safetensors
from netexplorer.core.sources.metadata import json_safe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
import crafted
import pickles as pk


def _header(path: Path, n: int) -> Path:
    header = {
        f"t.{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i in range(n)
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4 * n))
    return path


def test_a_safetensors_header_of_too_many_tensors_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors, "MAX_TENSORS", 100)
    assert len(open_source(str(_header(tmp_path / "ok.safetensors", 100))).tensors) == 100
    with pytest.raises(SourceError, match="lists 101 tensors, more than the 100"):
        open_source(str(_header(tmp_path / "many.safetensors", 101)))


def test_a_pickle_of_too_many_tensors_is_refused_while_read(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle_reader, "MAX_TENSORS", 100)
    path = pk.write_torch_zip(
        tmp_path / "views.pt", crafted.million_views_pickle(150), {"0": bytes(600)}
    )
    with pytest.raises(SourceError, match="more than 100 tensors"):
        open_source(str(path))


def test_an_index_of_too_many_tensors_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(hf_folder, "MAX_TENSORS", 10)
    folder = crafted.shard_named_many_ways(tmp_path, 11, 1)
    with pytest.raises(SourceError, match="lists 11 tensors, more than the 10"):
        open_source(str(folder))


def test_one_shard_named_many_ways_is_read_once(tmp_path, monkeypatch):
    folder = crafted.shard_named_many_ways(tmp_path, 2000, 100)
    reads = []
    real = hf_folder.read_header
    monkeypatch.setattr(hf_folder, "read_header", lambda p: reads.append(p) or real(p))
    tree = open_source(str(folder))
    assert len(tree.tensors) == 2000 and len(reads) == 1
    assert tree.metadata["shards"] == ["s.safetensors"]


def test_a_state_dict_placed_10000_times_is_refused_quickly(tmp_path):
    path = write_torch(tmp_path / "placed.pt", crafted.placed_many_times(10_000, 10))
    with pytest.raises(SourceError, match="would add over 10,000 entries"):
        open_source(str(path))


def test_a_state_dict_placed_twice_is_still_two_branches(tmp_path):
    sd = {f"l{i}.weight": torch.ones(2) for i in range(20_000)}
    tree = open_source(str(write_torch(tmp_path / "ema.pt", {"model": sd, "ema": sd})))
    assert len(tree.tensors) == 40_000 and len(tree.tie_groups) == 20_000


def test_a_shared_dag_prints_a_bounded_summary(tmp_path):
    x: object = {"w": torch.ones(3)}
    for _ in range(12):
        x = [x, x]
    tree = open_source(str(write_torch(tmp_path / "dag.pt", x)))
    assert len(tree.tie_groups) == 1 and len(tree.tie_groups[0].paths) == 4096
    text = summary_text(tree)
    assert "(4,096 paths)" in text and len(text) < 2_000_000  # was 470 MB


def test_a_list_that_contains_itself_is_walked_once(tmp_path):
    loop: list = [torch.ones(2)]
    loop += [loop, loop]
    tree = open_source(str(write_torch(tmp_path / "cycle.pt", {"w": torch.ones(3), "x": loop})))
    assert set(tree.tensors) == {"w", "x.0"}
    assert tree.metadata["x"][1] == "<this container again: it contains itself>"


@pytest.mark.parametrize("where", ["dict-key", "set", "frozenset"])
def test_tuples_nested_past_the_limit_are_refused_before_they_are_hashed(tmp_path, where):
    def file(depth: int) -> Path:
        body = pk.mapping(
            [
                (pk.text("w"), pk.tensor(pk.storage("0", 4), 0, (2, 2), (2, 1))),
                (pk.text("deep"), _deep(where, depth)),
            ]
        )
        return pk.write_torch_zip(tmp_path / f"{depth}.pt", pk.dumps(body), {"0": bytes(16)})

    assert set(open_source(str(file(MAX_TUPLE_NESTING - 1))).tensors) == {"w"}
    with pytest.raises(SourceError, match="nests tuples more than 100 deep"):
        open_source(str(file(MAX_TUPLE_NESTING + 1)))


def _deep(where: str, depth: int) -> bytes:
    deep = pk.nested_tuple(depth)
    if where == "dict-key":
        return pk.EMPTY_DICT + deep + pk.NONE + pk.SETITEM
    if where == "set":
        return pk.EMPTY_SET + pk.MARK + deep + pk.ADDITEMS
    return pk.call(pk.glob("builtins", "frozenset"), pk.EMPTY_LIST + pk.MARK + deep + pk.APPENDS)


@pytest.mark.parametrize(
    "call, words",
    [
        (pk.call(pk.glob("builtins", "bytearray"), pk.integer(3_000_000_000)), "3.0 GB"),
        (pk.call(pk.glob("torch", "FloatTensor"), pk.integer(750_000_000)), "3.0 GB"),
        (pk.call(pk.glob("torch", "LongTensor"), pk.integer(5000), pk.integer(5000)), "200.0 MB"),
    ],
    ids=["bytearray", "FloatTensor", "LongTensor-2d"],
)
def test_sizes_asked_for_instead_of_data_are_refused(tmp_path, call, words):
    storage = pk.storage("0", 4, legacy=True)
    body = pk.mapping([(pk.text("w"), pk.tensor(storage, 0, (4,), (1,))), (pk.text("x"), call)])
    path = pk.write_legacy(tmp_path / "alloc.pth", pk.dumps(body), [("0", 4, bytes(16))])
    with pytest.raises(SourceError, match=f"to allocate {words} it does not hold"):
        open_source(str(path))


def test_small_sizes_asked_for_go_to_torch(tmp_path):
    body = pk.mapping([(pk.text("w"), pk.call(pk.glob("torch", "FloatTensor"), pk.integer(3)))])
    tree = open_source(str(pk.write_legacy(tmp_path / "small.pth", pk.dumps(body), [])))
    assert tree.tensors["w"].shape == (3,)


@pytest.mark.parametrize(
    "count, data, problem",
    [
        (5, bytes(16), "holds 5 elements where its tensors name 4"),
        (4, bytes(12), "lies past the end of the file"),
    ],
    ids=["count", "truncated"],
)
def test_legacy_storages_are_checked_against_the_bytes_they_hold(tmp_path, count, data, problem):
    storage = pk.storage("0", 4, legacy=True)
    body = pk.mapping([(pk.text("w"), pk.tensor(storage, 0, (4,), (1,)))])
    path = pk.write_legacy(tmp_path / "bad.pth", pk.dumps(body), [("0", count, data)])
    with pytest.raises(SourceError, match=problem):
        open_source(str(path))


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    path = pk.write_deflated_zeros_pickle(tmp_path / "bomb.pt", 40_000_000)
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("archive/data.pkl").compress_size < 100_000
    with pytest.raises(SourceError, match=r"inflates from .* to 40\.0 MB, .* times"):
        open_source(str(path))


def test_a_deflated_data_pkl_within_bounds_opens(tmp_path):
    body = pk.mapping([(pk.text("w"), pk.tensor(pk.storage("0", 4), 0, (4,), (1,)))])
    data = np.arange(4, dtype="<f4").tobytes()
    path = pk.write_torch_zip(tmp_path / "z.pt", pk.dumps(body), {"0": data}, deflate_pickle=True)
    np.testing.assert_array_equal(open_source(str(path)).tensors["w"].handle.array(), range(4))


def test_a_data_pkl_past_the_size_limit_is_refused(tmp_path, monkeypatch):
    from netexplorer.core.sources import torch_zip

    monkeypatch.setattr(torch_zip, "MAX_PICKLE_BYTES", 100)
    path = write_torch(tmp_path / "big.pt", {f"w{i}": torch.ones(1) for i in range(20)})
    with pytest.raises(SourceError, match=r"data\.pkl is .* more than the 100 bytes"):
        open_source(str(path))


def test_a_checkpoint_of_too_many_tensors_loaded_by_torch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "MAX_TENSORS", 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, still saved
        q = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)  # torch.load reads it
    path = write_torch(tmp_path / "q.pt", {"q": q, **{f"w{i}": torch.ones(1) for i in range(5)}})
    with pytest.raises(SourceError, match="more than 5 tensors"):
        open_source(str(path))


def test_many_shards_read_within_the_open_files_limit(tmp_path):
    """Each mapped shard holds an open file: reading every tensor of a folder of more shards
    than the limit allows keeps only the recent maps open."""
    folder = tmp_path / "hf"
    folder.mkdir()
    weight_map = {}
    for i in range(300):
        name = f"model-{i + 1:05d}-of-00300.safetensors"
        write_safetensors(folder / name, {f"layers.{i}.w": torch.full((2,), float(i))})
        weight_map[f"layers.{i}.w"] = name
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    tree = open_source(str(folder))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    import os

    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 150, hard))
    try:
        out = describe(tree)  # reads every tensor's values
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    means = {p["path"]: p["stats"]["mean"] for p in out["parameters"]}
    assert means["layers.299.w"] == 299.0 and len(means) == 300


def test_metadata_never_prints_a_storage_or_an_integer_too_long_to_print():
    storage = torch.zeros(10_000_000).untyped_storage()
    assert json_safe(storage) == "<UntypedStorage of 40,000,000 bytes>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated
        typed = torch.zeros(3, dtype=torch.float16).storage()
    assert json_safe(typed) == "<TypedStorage of 6 bytes, float16>"
    assert json_safe(10**5000) == "<an integer of 16,610 bits>"
    assert json_safe(2**64) == 2**64
