"""PyTorch Distributed Checkpoint folders: written at test time by three processes in a gloo
group (FSDP2 with Adam, DTensors) and by one process without a group (dcp_writers.py), then
opened from their metadata in this process, with no process group.

Each folder has `<name>_expected.pt` beside it: the full tensors that were saved, and each
rank's piece of the sharded ones, as the writers computed them from their DTensors.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    TensorProperties,
    TensorStorageMetadata,
)

from netexplorer.core.describe import describe
from netexplorer.core.errors import SourceError, UntrustedPickleError
from netexplorer.core.sources import OpenOptions, open_source, reader_for

WRITERS = Path(__file__).with_name("dcp_writers.py")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """The three folders and what was saved in them, written once for the module."""
    out = tmp_path_factory.mktemp("dcp")
    subprocess.run([sys.executable, str(WRITERS), str(out)], check=True, timeout=300)
    return out


def expected(written: Path, name: str) -> dict:
    return torch.load(written / f"{name}_expected.pt", weights_only=True)


def every_handle(tree) -> dict:
    """Tree tensors and matched optimizer state, by their key in the checkpoint."""
    handles = {path: node.handle for path, node in tree.tensors.items()}
    for state in tree.optimizer_state.values():
        handles.update({h.fqn: h for h in state.values()})
    return handles


def as_torch(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Handle values as a tensor comparable with `like` (bfloat16 comes back as float32)."""
    t = torch.from_numpy(np.array(values))
    return t.to(like.dtype) if like.dtype == torch.bfloat16 else t


def copy_of(written: Path, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(written / name, target)
    return target


# -- opening from the metadata ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["fsdp", "dtensor", "single"])
def test_the_folder_and_its_metadata_file_open_with_the_dcp_reader(written, name):
    assert reader_for(str(written / name)).name == "dcp"
    assert reader_for(str(written / name / ".metadata")).name == "dcp"


@pytest.mark.parametrize("name", ["fsdp", "dtensor", "single"])
def test_tree_shapes_and_dtypes_are_those_saved(written, name):
    saved = expected(written, name)["tensors"]
    tree = open_source(str(written / name))
    handles = every_handle(tree)
    assert set(handles) == set(saved)
    for key, tensor in saved.items():
        assert handles[key].shape == tuple(tensor.shape), key
        assert handles[key].dtype == str(tensor.dtype).removeprefix("torch."), key
    assert tree.metadata["format"] == "PyTorch Distributed Checkpoint"


@pytest.mark.parametrize("name", ["fsdp", "dtensor"])
def test_chunks_are_the_pieces_each_rank_saved(written, name):
    layout = expected(written, name)["layout"]
    assert layout  # the writers saw sharded tensors
    handles = every_handle(open_source(str(written / name)))
    for key, pieces in layout.items():
        chunks = sorted((c.rank, c.offsets, c.sizes) for c in handles[key].chunks)
        assert chunks == [(r, tuple(o), tuple(s)) for r, o, s in pieces], key
        assert {c.file for c in handles[key].chunks} == {f"__{r}_0.distcp" for r, *_ in pieces}


def test_an_empty_piece_is_a_chunk_of_no_elements(written):
    b = open_source(str(written / "dtensor")).tensors["b"].handle
    assert [c.sizes for c in b.chunks] == [(1, 3, 4), (1, 3, 4), (0, 3, 4)]


@pytest.mark.parametrize("name", ["fsdp", "dtensor", "single"])
def test_assembled_tensors_equal_those_saved(written, name):
    saved = expected(written, name)["tensors"]
    handles = every_handle(open_source(str(written / name)))
    for key, tensor in saved.items():
        assert torch.equal(as_torch(handles[key].array(), tensor), tensor), key


def test_opening_reads_neither_shards_nor_torch(written):
    # a fresh interpreter: the tree of a distributed checkpoint needs no torch and no numpy
    code = (
        "import sys; from netexplorer.core.sources import open_source; "
        f"t = open_source({str(written / 'fsdp')!r}); "
        "print(len(t.tensors), 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4", "False", "False"]


def test_optimizer_state_is_matched_to_parameters_by_name(written):
    tree = open_source(str(written / "fsdp"))
    assert set(tree.tensors) == {"model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"}
    state = tree.optimizer_state["model.0.weight"]
    assert set(state) == {"exp_avg", "exp_avg_sq", "step"}
    assert state["exp_avg"].shape == (10, 6) and state["step"].shape == ()
    saved = expected(written, "fsdp")["tensors"]
    assert torch.equal(
        torch.from_numpy(state["exp_avg"].array().copy()), saved[state["exp_avg"].fqn]
    )
    assert tree.metadata["optimizer_matching"][0]["matched"] is True
    assert tree.tensors["model.0.weight"].access == "ckpt['model']['0.weight']"


def test_objects_are_listed_but_not_loaded_without_trust(written):
    objects = open_source(str(written / "dtensor")).metadata["objects"]
    assert set(objects) == {"note", "n"}
    assert all("not loaded" in v and "--trust" in v for v in objects.values())
    fsdp = open_source(str(written / "fsdp")).metadata["objects"]
    assert "not loaded" in fsdp["epoch"] and "lr" in fsdp["optim"]["param_groups"]["0"]


def test_objects_are_loaded_with_trust(written):
    objects = open_source(str(written / "dtensor"), OpenOptions(trust=True)).metadata["objects"]
    assert objects == expected(written, "dtensor")["objects"]
    fsdp = open_source(str(written / "fsdp"), OpenOptions(trust=True)).metadata["objects"]
    assert fsdp["epoch"] == 3 and fsdp["optim"]["param_groups"]["0"]["lr"] == 1e-3


def test_the_shard_files_and_ranks_are_in_the_metadata(written):
    metadata = open_source(str(written / "fsdp")).metadata
    assert metadata["ranks"] == 3
    files = {f["file"]: f for f in metadata["shard_files"]}
    assert set(files) == {"__0_0.distcp", "__1_0.distcp", "__2_0.distcp"}
    assert files["__2_0.distcp"]["rank"] == 2
    assert files["__2_0.distcp"]["bytes"] == (written / "fsdp" / "__2_0.distcp").stat().st_size


def test_opening_and_showing_every_tensor_writes_nothing(written):
    folder = written / "fsdp"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    for handle in every_handle(open_source(str(folder))).values():
        handle.array()
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert after == before


# -- the command line ---------------------------------------------------------------------------


def test_summary_and_json_on_the_folder(written):
    folder = str(written / "dtensor")
    run = [sys.executable, "-m", "netexplorer", folder]
    summary = subprocess.run([*run, "--summary"], capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr
    assert "[7, 10]" in summary.stdout and "bfloat16" in summary.stdout
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    a = next(p for p in json.loads(out.stdout)["parameters"] if p["path"] == "a")
    assert [s["offsets"] for s in a["shards"]] == [[0, 0], [0, 4], [0, 8]]
    assert [s["file"] for s in a["shards"]] == [f"__{r}_0.distcp" for r in range(3)]
    assert a["stats"]["max"] == pytest.approx(
        float(expected(written, "dtensor")["tensors"]["a"].max())
    )


def test_json_of_other_sources_has_no_shards(formats):
    entry = describe(open_source(str(formats["safetensors"])), stats=False)["parameters"][0]
    assert "shards" not in entry


# -- damaged folders: the tree opens, the tensor says what is wrong when shown -----------------


def test_a_missing_shard_is_named_when_its_tensor_is_shown(written, tmp_path):
    folder = copy_of(written, "dtensor", tmp_path)
    (folder / "__1_0.distcp").unlink()
    tree = open_source(str(folder))  # opens: nothing is read yet
    with pytest.raises(SourceError) as info:
        tree.tensors["a"].handle.array()
    message = str(info.value)
    assert "__1_0.distcp" in message and "missing" in message and "\n" not in message
    assert tree.tensors["plain"].handle.array().tolist() == [5.0, 5.0]  # held by rank 2
    shard = next(f for f in tree.metadata["shard_files"] if f["file"] == "__1_0.distcp")
    assert shard["bytes"] == "missing"


def test_a_truncated_shard_is_named_when_its_tensor_is_shown(written, tmp_path):
    folder = copy_of(written, "dtensor", tmp_path)
    shard = folder / "__2_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])
    tree = open_source(str(folder))
    with pytest.raises(SourceError, match=r"__2_0\.distcp .*truncated"):
        tree.tensors["a"].handle.array()


def test_a_damaged_shard_is_named_when_its_tensor_is_shown(written, tmp_path):
    folder = copy_of(written, "single", tmp_path)
    shard = folder / "__0_0.distcp"
    shard.write_bytes(b"\0" * shard.stat().st_size)  # same size, no archive left
    tree = open_source(str(folder))
    with pytest.raises(SourceError) as info:
        tree.tensors["i"].handle.array()
    message = str(info.value)
    assert "__0_0.distcp" in message and "damaged" in message and "\n" not in message


# -- crafted metadata ---------------------------------------------------------------------------


class SystemCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_metadata_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "MARKER"
    with open(tmp_path / ".metadata", "wb") as f:
        pickle.dump(SystemCall(marker), f)
    with pytest.raises(UntrustedPickleError) as info:
        open_source(str(tmp_path))
    assert not marker.exists()
    assert info.value.globals_needed == (f"{os.system.__module__}.system",)
    assert "--trust" in str(info.value) and "\n" not in str(info.value)


def test_code_hidden_inside_real_metadata_is_refused(written, tmp_path):
    folder = copy_of(written, "single", tmp_path)
    marker = tmp_path / "MARKER"
    metadata = _real_metadata(written / "single")
    metadata.planner_data = {"t": SystemCall(marker)}
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    with pytest.raises(UntrustedPickleError):
        open_source(str(folder))
    assert not marker.exists()


def test_a_fifo_named_metadata_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / ".metadata")
    run = [sys.executable, "-m", "netexplorer", str(tmp_path), "--summary"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "not a regular file" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_metadata_of_another_kind_is_refused_with_one_line(tmp_path):
    with open(tmp_path / ".metadata", "wb") as f:
        pickle.dump({"state_dict_metadata": {}}, f)
    with pytest.raises(SourceError, match="not valid distributed checkpoint metadata"):
        open_source(str(tmp_path))


def test_a_huge_memo_index_allocates_nothing(tmp_path):
    # LONG_BINPUT 2**32-1: an array-backed memo would grow to it; a dict memo does not
    (tmp_path / ".metadata").write_bytes(b"\x80\x04N" + b"r\xff\xff\xff\xff" + b".")
    with pytest.raises(SourceError, match="not valid distributed checkpoint metadata"):
        open_source(str(tmp_path))


def test_a_shard_outside_the_folder_is_refused(written, tmp_path):
    folder = copy_of(written, "single", tmp_path)
    metadata = _real_metadata(written / "single")
    key = next(iter(metadata.storage_data))
    metadata.storage_data[key] = _StorageInfo("../elsewhere.distcp", 0, 10)
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    with pytest.raises(SourceError, match="outside the folder"):
        open_source(str(folder))


def test_overlapping_chunks_are_refused_when_shown(tmp_path):
    chunks = [ChunkStorageMetadata(torch.Size([0, 0]), torch.Size([2, 2]))] * 2
    entry = TensorStorageMetadata(TensorProperties(dtype=torch.float32), torch.Size([4, 2]), chunks)
    storage = {MetadataIndex("w", [0, 0], 0): _StorageInfo("__0_0.distcp", 0, 10)}
    with open(tmp_path / ".metadata", "wb") as f:
        pickle.dump(Metadata({"w": entry}, storage_data=storage), f)
    handle = open_source(str(tmp_path)).tensors["w"].handle
    with pytest.raises(SourceError, match=r"overlap|elements"):
        handle.array()


def _real_metadata(folder: Path) -> Metadata:
    with open(folder / ".metadata", "rb") as f:
        return pickle.load(f)  # written by this test run
