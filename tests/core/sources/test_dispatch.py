"""Which reader opens what: content first, extension second; the file-dialog filters."""

from __future__ import annotations

import pytest
from checkpoint_builders import build_every_format

from netexplorer.core.sources import reader_for as chosen_reader
from netexplorer.core.sources.files import file_dialog_filters, sniff


def reader_for(spec: str) -> str:
    return chosen_reader(spec).name


@pytest.fixture(scope="module")
def every_format(tmp_path_factory):
    return build_every_format(tmp_path_factory.mktemp("every"))


@pytest.mark.parametrize(
    ("fmt", "reader", "sniffed"),
    [
        ("safetensors", "safetensors", "safetensors"),
        ("torch-zip", "torch", "torch-zip"),
        ("torch-legacy", "torch", "torch-legacy"),
        ("lightning", "torch", "torch-zip"),
        ("torchscript", "torchscript", "torchscript"),
        ("hf-sharded", "huggingface", None),
    ],
)
def test_each_format_finds_its_reader(every_format, fmt, reader, sniffed):
    path = str(every_format[fmt])
    assert sniff(path) == sniffed
    assert reader_for(path) == reader


def test_other_sources_find_their_readers(tmp_path):
    assert reader_for("example:tied") == "example"
    assert reader_for("mypkg.models:make_net") == "factory"
    assert reader_for(str(tmp_path / "missing.xyz")) == "unknown"
    assert reader_for(str(tmp_path)) == "unknown"  # a folder without weights


def test_file_dialog_filters():
    filters = file_dialog_filters()
    assert filters[0].startswith("Checkpoints (") and "*.safetensors" in filters[0]
    assert "*.ckpt" in filters[0] and "*.pth" in filters[0]
    assert "safetensors (*.safetensors)" in filters
    assert any(f.startswith("PyTorch files (") and "*.bin" in f for f in filters)
    assert filters[-1] == "All files (*)"


def test_every_reader_declares_the_whole_protocol():
    from netexplorer.core.sources import readers, register

    for reader in readers():
        assert reader.name and reader.title and isinstance(reader.file_patterns, tuple)

    class Incomplete:
        name = "half"

        def can_read(self, spec):
            return False

    with pytest.raises(TypeError, match="lacks title, file_patterns, read"):
        register(Incomplete())


def test_opening_a_safetensors_file_imports_no_other_reader(every_format):
    """Readers are imported when first asked: a safetensors file does not pay for the
    pickle readers, DCP's or the Hugging Face folder's (half of the imports of a 50,000-tensor
    file's open, bench/headers.py)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from netexplorer.core.sources import open_source\n"
        f"tree = open_source({str(every_format['safetensors'])!r})\n"
        "assert tree.tensors\n"
        "print(sorted(m for m in sys.modules if m.startswith('netexplorer.core.sources.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for other in ("pickle_reader", "dcp", "hf_folder", "torch_file", "checkpoint", "run"):
        assert f"'netexplorer.core.sources.{other}'" not in out, out
    assert "'netexplorer.core.sources.safetensors'" in out
