"""Bad files: each is one clear SourceError line naming the file, never a hang, a crash or a
traceback. Hypothesis truncates and flips bytes of a small file of every format."""

from __future__ import annotations

import builtins
import itertools
import os
import shutil
from pathlib import Path

import pytest
from checkpoint_builders import build_every_format, example_net, write_safetensors, write_torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netexplorer.core.errors import SourceError
from netexplorer.core.sources import OpenOptions, open_source

FORMATS = ["safetensors", "torch-zip", "torch-legacy", "lightning", "torchscript", "hf-sharded"]
SHARD = "model-00001-of-00002.safetensors"  # the file damaged in the Hugging Face folder
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_case = itertools.count()


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    return build_every_format(tmp_path_factory.mktemp("originals"))


def damaged_copy(original: Path, folder: Path, change) -> tuple[Path, Path]:
    """A copy of `original` (a file, or a folder whose first shard is damaged) with its bytes
    passed through `change`; returns (what to open, the damaged file)."""
    case = folder / f"case{next(_case)}"
    if original.is_dir():
        shutil.copytree(original, case)
        damaged = case / SHARD
    else:
        case.mkdir()
        damaged = case / original.name
        shutil.copy(original, damaged)
    damaged.write_bytes(change(damaged.read_bytes()))
    return (case if original.is_dir() else damaged), damaged


def open_and_read_everything(path: Path) -> None:
    """Open (trusting, so TorchScript's loader meets the damage too) and read every tensor."""
    tree = open_source(str(path), OpenOptions(trust=True))
    for node in tree.tensors.values():
        if node.handle.has_values:
            node.handle.array()


def assert_one_clear_line(error: SourceError, *names: str) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message
    assert any(name in message for name in names), message


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_truncated_files_are_refused(originals, tmp_path, fmt, data):
    original = originals[fmt]
    size = (original / SHARD if original.is_dir() else original).stat().st_size
    cut = data.draw(st.integers(0, size - 1), label="keep bytes")
    path, damaged = damaged_copy(original, tmp_path, lambda b: b[:cut])
    with pytest.raises(SourceError) as info:
        open_and_read_everything(path)
    assert_one_clear_line(info.value, str(path), damaged.name)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.data())
def test_flipped_bytes_open_or_give_a_clear_error(originals, tmp_path, fmt, data):
    original = originals[fmt]
    size = (original / SHARD if original.is_dir() else original).stat().st_size
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1, max_size=4),
        label="flips",
    )

    def flip(raw: bytes) -> bytes:
        out = bytearray(raw)
        for at, mask in flips:
            out[at] ^= mask
        return bytes(out)

    path, damaged = damaged_copy(original, tmp_path, flip)
    try:
        open_and_read_everything(path)  # a flip inside tensor data just changes values
    except SourceError as error:
        assert_one_clear_line(error, str(path), damaged.name)


@pytest.mark.parametrize("name", ["m.safetensors", "m.pt", "m.pth", "m.bin", "m.ckpt", "m.xyz"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(SourceError, match="the file is empty") as info:
        open_source(str(path))
    assert_one_clear_line(info.value, str(path))


@pytest.mark.parametrize("name", ["gone.safetensors", "gone.pt", "gone", "gone/folder"])
def test_missing_file(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(SourceError, match="no such file") as info:
        open_source(str(path))
    assert_one_clear_line(info.value, str(path))


def test_wrong_extension_with_other_content(tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("these are not weights\n")
    with pytest.raises(SourceError, match="not a readable PyTorch file") as info:
        open_source(str(text))
    assert_one_clear_line(info.value, str(text))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with pytest.raises(SourceError, match="not a format netexplorer reads") as info:
        open_source(str(notes))
    assert_one_clear_line(info.value, str(notes))


def test_content_decides_over_a_misleading_extension(tmp_path):
    sd = example_net("mlp").state_dict()
    assert open_source(str(write_safetensors(tmp_path / "w.bin", sd))).reader == "safetensors"
    assert open_source(str(write_torch(tmp_path / "w.safetensors", sd))).reader == "torch"


def test_folder_where_a_file_is_expected(tmp_path, originals):
    folder = tmp_path / "hf"
    shutil.copytree(originals["hf-sharded"], folder)
    shard = folder / SHARD
    shard.unlink()
    shard.mkdir()
    with pytest.raises(SourceError, match="a folder where a file was expected") as info:
        open_source(str(folder))
    assert_one_clear_line(info.value, SHARD)
    named_like_a_file = tmp_path / "weights.safetensors"
    named_like_a_file.mkdir()
    with pytest.raises(SourceError, match="holds no weights"):
        open_source(str(named_like_a_file))


@pytest.mark.parametrize("fmt", ["safetensors", "torch-zip", "lightning"])
def test_unreadable_file(originals, monkeypatch, fmt):
    """Tests run as root, where chmod 000 does not stop reading: refuse `open` instead (the
    readers open files with os.open, the rest with open)."""
    path = originals[fmt]
    real_open, real_os_open = builtins.open, os.open

    def refuse(file) -> None:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))

    def refusing_open(file, *args, **kwargs):
        refuse(file)
        return real_open(file, *args, **kwargs)

    def refusing_os_open(file, *args, **kwargs):
        refuse(file)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.setattr(os, "open", refusing_os_open)
    with pytest.raises(SourceError, match="permission denied") as info:
        open_source(str(path))
    assert_one_clear_line(info.value, str(path))
