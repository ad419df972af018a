"""Hugging Face folders: single file and shards, safetensors and .bin, config.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from checkpoint_builders import example_net, hf_folder, write_safetensors

from netexplorer.core.errors import SourceError
from netexplorer.core.sources import open_source


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_folder_opens_with_config(tmp_path, fmt, sharded):
    folder = hf_folder(tmp_path / "hf", sharded=sharded, fmt=fmt)
    tree = open_source(str(folder))
    sd = example_net("mlp").state_dict()
    assert tree.reader == "huggingface"
    assert set(tree.tensors) == set(sd)
    for key, tensor in sd.items():
        np.testing.assert_array_equal(tree.tensors[key].handle.array(), tensor.numpy())
    assert tree.metadata["config"]["model_type"] == "mlp"
    if sharded:
        assert len(tree.metadata["shards"]) == 2
        assert tree.metadata["weights"].endswith(".index.json")


def test_safetensors_folder_needs_no_torch_import(tmp_path):
    import subprocess
    import sys

    folder = hf_folder(tmp_path / "hf", sharded=True)
    code = (
        "import sys\nfrom netexplorer.core.sources import open_source\n"
        f"open_source({str(folder)!r})\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_lone_differently_named_weights_file_is_found(tmp_path):
    folder = tmp_path / "unet"
    folder.mkdir()
    write_safetensors(
        folder / "diffusion_pytorch_model.safetensors", example_net("mlp").state_dict()
    )
    assert open_source(str(folder)).metadata["weights"] == "diffusion_pytorch_model.safetensors"


def test_missing_shard(tmp_path):
    folder = hf_folder(tmp_path / "hf", sharded=True)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SourceError, match=r"shard model-00002-of-00002.safetensors .* missing"):
        open_source(str(folder))


def test_index_naming_a_tensor_the_shard_lacks(tmp_path):
    folder = hf_folder(tmp_path / "hf", sharded=True)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(SourceError, match=r"'ghost.weight' is listed"):
        open_source(str(folder))


@pytest.mark.parametrize(
    "text", ["{not json", '{"weight_map": [1]}', '{"weight_map": {"a": "../x"}}']
)
def test_invalid_index(tmp_path, text):
    folder = hf_folder(tmp_path / "hf", sharded=True)
    (folder / "model.safetensors.index.json").write_text(text)
    with pytest.raises(SourceError) as info:
        open_source(str(folder))
    assert "index" in str(info.value)


def test_unreadable_config_is_metadata_not_a_failure(tmp_path):
    folder = hf_folder(tmp_path / "hf")
    (folder / "config.json").write_text("{oops")
    assert open_source(str(folder)).metadata["config"].startswith("unreadable config.json")


def test_folder_with_no_weights(tmp_path):
    folder = tmp_path / "empty_model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(SourceError, match="folder holds no weights") as info:
        open_source(str(folder))
    assert str(folder) in str(info.value)


def test_folder_with_several_weights_files_asks_to_pick_one(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        write_safetensors(folder / name, example_net("mlp").state_dict())
    with pytest.raises(
        SourceError, match=r"several weights files \(a.safetensors, b.safetensors\)"
    ):
        open_source(str(folder))


def test_cancel_stops_between_shards(tmp_path):
    from netexplorer.core.sources.base import OpeningCancelled, OpenOptions

    folder = hf_folder(tmp_path / "hf", sharded=True)
    seen = []

    def cancelled() -> bool:
        return len(seen) >= 1  # the user pressed Cancel once the first shard was reported

    options = OpenOptions(progress=lambda f, text: seen.append(text), cancelled=cancelled)
    with pytest.raises(OpeningCancelled, match="opening cancelled"):
        open_source(str(folder), options)
    assert len(seen) == 1
