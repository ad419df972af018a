"""Files that are not regular files, files that cannot be read, and folders that hold their
weights in unexpected ways: each gets the right words, at once (a FIFO is refused by stat,
never opened: opening one waits for a writer forever)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from checkpoint_builders import hf_folder, write_safetensors, write_torch

from netexplorer.core.errors import SourceError
from netexplorer.core.sources import open_source
from netexplorer.core.sources.files import open_regular

SPECIALS = ["fifo", "/dev/zero", "/dev/urandom"]
KIND = {"fifo": "a FIFO", "/dev/zero": "a character device", "/dev/urandom": "a character device"}


def _special(target: str, where: Path) -> None:
    if target == "fifo":
        os.mkfifo(where)
    else:
        os.symlink(target, where)


def _one_tensor(path: Path) -> Path:
    raw = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + struct.pack("<f", 1.0))
    return path


@pytest.mark.parametrize("target", SPECIALS)
@pytest.mark.parametrize(
    "index", ["model.safetensors.index.json", "pytorch_model.bin.index.json"], ids=["st", "bin"]
)
@pytest.mark.parametrize("beside_a_shard", [False, True], ids=["alone", "beside-shard"])
def test_an_index_that_is_not_a_regular_file(tmp_path, target, index, beside_a_shard):
    folder = tmp_path / "hf"
    folder.mkdir()
    if beside_a_shard:
        _one_tensor(folder / "model-00001-of-00001.safetensors")
    _special(target, folder / index)
    with pytest.raises(SourceError) as info:
        open_source(str(folder))
    message = str(info.value)
    assert index in message and KIND[target] in message and "not a regular file" in message


@pytest.mark.parametrize("target", SPECIALS)
def test_a_config_that_is_not_a_regular_file_leaves_the_weights_readable(tmp_path, target):
    folder = tmp_path / "hf"
    folder.mkdir()
    _one_tensor(folder / "model.safetensors")
    _special(target, folder / "config.json")
    tree = open_source(str(folder))
    assert list(tree.tensors) == ["w"]
    assert tree.metadata["config"].startswith(f"unreadable config.json: it is {KIND[target]}")


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt", "model.bin"])
def test_a_weights_file_that_is_a_fifo(tmp_path, name):
    os.mkfifo(tmp_path / name)
    with pytest.raises(SourceError, match="it is a FIFO"):
        open_source(str(tmp_path / name))


def test_a_fifo_put_in_place_after_the_check_is_not_waited_for(tmp_path):
    os.mkfifo(tmp_path / "late.pt")
    with pytest.raises(SourceError, match="a FIFO"):
        open_regular(str(tmp_path / "late.pt"))


def test_a_folder_without_read_permission_is_not_a_folder_without_weights(tmp_path, monkeypatch):
    """Tests run as root, where chmod does not stop listing: refuse os.listdir instead."""
    folder = hf_folder(tmp_path / "hf", sharded=False)
    (folder / "model.safetensors").rename(folder / "weights.safetensors")
    real_listdir = os.listdir

    def refusing_listdir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", refusing_listdir)
    with pytest.raises(SourceError) as info:
        open_source(str(folder))
    message = str(info.value)
    assert "permission denied listing the folder" in message and f"chmod +r {folder}" in message
    assert "holds no weights" not in message


def test_a_file_in_a_folder_without_search_permission(tmp_path, monkeypatch):
    """Tests run as root: refuse stat on the file and search on its folder, as the kernel does
    for a user without x on the folder."""
    locked = tmp_path / "locked"
    locked.mkdir()
    path = write_torch(locked / "model.pt", {"w": torch.ones(2)})
    real_stat, real_access = os.stat, os.access

    def refusing_stat(p, *args, **kwargs):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refusing_stat)
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    message = str(info.value)
    assert f"the folder {locked} cannot be searched" in message
    assert f"chmod +x {locked}" in message and "chmod +r" not in message


def test_a_pytorch_model_bin_that_is_safetensors_opens_in_its_folder(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    write_safetensors(folder / "pytorch_model.bin", {"w": torch.arange(3.0)})
    (folder / "config.json").write_text('{"model_type": "x"}')
    tree = open_source(str(folder))
    assert tree.tensors["w"].handle.array().tolist() == [0.0, 1.0, 2.0]


def test_a_sharded_bin_keeps_its_state_dict_order(tmp_path):
    """The index (written with sorted keys, as transformers does) and the shards keep the
    model's order; only safetensors folders, whose files keep none, are sorted."""
    order = ["wte.weight", "h.10.attn.weight", "h.2.attn.weight", "ln_f.weight", "lm_head.bias"]
    sd = {name: torch.full((2,), float(i)) for i, name in enumerate(order)}
    folder = tmp_path / "hf"
    folder.mkdir()
    shards = {"pytorch_model-00001-of-00002.bin": order[:3]}
    shards["pytorch_model-00002-of-00002.bin"] = order[3:]
    weight_map = {}
    for shard, names in shards.items():
        write_torch(folder / shard, {n: sd[n] for n in names})
        weight_map.update(dict.fromkeys(names, shard))
    index = json.dumps({"weight_map": weight_map}, sort_keys=True)
    (folder / "pytorch_model.bin.index.json").write_text(index)
    assert [t.path for t in open_source(str(folder)).root.walk_tensors()] == order
