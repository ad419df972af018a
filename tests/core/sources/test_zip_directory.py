"""A zip archive's central directory, read once (zip_directory.py): the members zipfile
reads, zip64 sizes, and archives laid out otherwise left to zipfile."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch
from checkpoint_builders import write_torch

from netexplorer.core.sources import open_source, zip_directory
from netexplorer.core.sources.torch_zip import read_plain_zip
from netexplorer.core.sources.zip_directory import Unusual, read_directory


def _members_by_zipfile(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {
            i.filename: (i.header_offset, i.compress_type, i.compress_size, i.file_size, i.CRC)
            for i in z.infolist()
        }


def _members(path) -> dict:
    with open(path, "rb") as f:
        found = read_directory(f, path.stat().st_size)
    return {m.filename: tuple(m)[1:] for m in found.values()}


def test_the_members_zipfile_reads(tmp_path):
    path = write_torch(tmp_path / "m.pt", {f"w{i}": torch.randn(3) for i in range(50)})
    assert _members(path) == _members_by_zipfile(path)


def test_zip64_sizes_and_an_archive_comment(tmp_path):
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in ("a", "b/c"):
            with z.open(name, "w", force_zip64=True) as f:
                f.write(b"x" * 1000)
        z.writestr("d", "small", compress_type=zipfile.ZIP_DEFLATED)
        z.comment = b"a comment"
    assert _members(path) == _members_by_zipfile(path)


def test_an_archive_after_other_data_is_left_to_zipfile(tmp_path):
    source = write_torch(tmp_path / "m.pt", {"w": torch.arange(4.0)})
    path = tmp_path / "prefixed.pt"
    with open(path, "wb") as out, open(source, "rb") as f:
        out.write(b"junk" * 10)
        shutil.copyfileobj(f, out)
    with pytest.raises(Unusual), open(path, "rb") as f:
        read_directory(f, path.stat().st_size)
    # zipfile reads it (its offsets shifted by what precedes the archive)
    obj = read_plain_zip(str(path), path.stat().st_size)
    np.testing.assert_array_equal(obj["w"].handle().array(), np.arange(4))


def test_the_directory_is_read_once_per_open(tmp_path, monkeypatch):
    path = write_torch(tmp_path / "m.pt", {"w": torch.ones(2)})
    reads = []
    real = zip_directory.read_directory
    monkeypatch.setattr(zip_directory, "read_directory", lambda *a: reads.append(1) or real(*a))
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", None)  # zipfile is not used
    assert list(open_source(str(path)).tensors) == ["w"]
    assert len(reads) == 1
    kept = [key for key in zip_directory._kept if key[0] == str(path.resolve())]
    assert not kept  # the reader took it: nothing of it is held after the open
