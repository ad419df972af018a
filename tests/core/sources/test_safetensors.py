"""safetensors: header parsing without torch, lazy values, dtypes, ties, header validation."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import example_net, mixed_state_dict, write_safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from netexplorer.core.errors import SourceError
from netexplorer.core.sources import open_source
from netexplorer.core.sources.safetensors import SafetensorsHandle


def write_raw(path: Path, header: dict, data: bytes) -> Path:
    """A safetensors file from a hand-written header (no library checks)."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_keys_shapes_dtypes_and_values(tmp_path):
    sd = mixed_state_dict()
    tree = open_source(str(write_safetensors(tmp_path / "m.safetensors", sd, format="pt")))
    assert tree.reader == "safetensors"
    assert set(tree.tensors) == set(sd)
    for key, tensor in sd.items():
        node = tree.tensors[key]
        assert node.shape == tuple(tensor.shape)
        assert node.dtype == str(tensor.dtype).removeprefix("torch.")
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        np.testing.assert_array_equal(node.handle.array(), expected)
    assert tree.tensors["layers.0.weight"].dtype == "bfloat16"
    assert tree.tensors["layers.0.weight"].handle.array().dtype == np.float32
    assert tree.tensors["mask"].handle.array().dtype == np.bool_
    assert tree.tensors["norm.num_batches_tracked"].kind == "buffer"
    assert tree.metadata["safetensors"] == {"format": "pt"}


def test_float8_values_decode(tmp_path):
    values = torch.tensor([0.0, 1.0, -2.5, 448.0, 0.015625])
    sd = {"e4m3": values.to(torch.float8_e4m3fn), "e5m2": values.to(torch.float8_e5m2)}
    tree = open_source(str(write_safetensors(tmp_path / "f8.safetensors", sd)))
    for key, tensor in sd.items():
        assert tree.tensors[key].dtype == str(tensor.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(tree.tensors[key].handle.array(), tensor.float().numpy())


def test_natural_order_puts_layer_2_before_layer_10(tmp_path):
    sd = {f"h.{i}.weight": torch.zeros(1) for i in (10, 2, 1)}
    tree = open_source(str(write_safetensors(tmp_path / "o.safetensors", sd)))
    assert list(tree.tensors) == ["h.1.weight", "h.2.weight", "h.10.weight"]


def test_opening_reads_no_tensor_data(tmp_path, monkeypatch):
    path = write_safetensors(tmp_path / "m.safetensors", mixed_state_dict())

    def no_map(*args, **kwargs):
        raise AssertionError("tensor data was mapped while opening")

    monkeypatch.setattr(np, "memmap", no_map)
    tree = open_source(str(path))
    assert len(tree.tensors) == len(mixed_state_dict())


def test_summary_needs_neither_torch_nor_numpy(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", mixed_state_dict())
    code = (
        "import sys\n"
        "from netexplorer.core.sources import open_source\n"
        "from netexplorer.core.describe import summary_text\n"
        f"summary_text(open_source({str(path)!r}))\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_tied_example_is_two_identical_tensors(tmp_path):
    """safetensors cannot store aliases: a tied net's shared tensor is stored twice."""
    path = write_safetensors(tmp_path / "tied.safetensors", example_net("tied").state_dict())
    tree = open_source(str(path))
    assert tree.tie_groups == []
    np.testing.assert_array_equal(
        tree.tensors["2.weight"].handle.array(), tree.tensors["4.weight"].handle.array()
    )


def test_two_names_for_one_byte_range_are_a_tie(tmp_path):
    data = np.arange(6, dtype="<f4").tobytes()
    entry = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    path = write_raw(tmp_path / "alias.safetensors", {"a.weight": entry, "b.weight": entry}, data)
    tree = open_source(str(path))
    assert [g.paths for g in tree.tie_groups] == [("a.weight", "b.weight")]
    assert tree.total_tensor_elements == 6  # a file does not say parameter


def test_values_are_a_read_only_view_of_the_file(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(3, 3)})
    values = open_source(str(path)).tensors["w"].handle.array()
    assert not values.flags.writeable


def test_torch_tensor_is_writable_copy_on_write(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(2, 2).bfloat16()})
    before = path.read_bytes()
    handle = open_source(str(path)).tensors["w"].handle
    assert isinstance(handle, SafetensorsHandle)
    tensor = handle.torch_tensor()
    assert tensor.dtype == torch.bfloat16
    tensor.mul_(3)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("header", "data", "problem"),
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "truncated"),
        ({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "offsets"),
        ({"w": [1, 2]}, b"", "JSON object"),
        ({"__metadata__": [1], "w": {}}, b"", "__metadata__"),
    ],
)
def test_invalid_headers_are_named(tmp_path, header, data, problem):
    path = write_raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(SourceError, match=problem) as info:
        open_source(str(path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_header_claiming_more_bytes_than_the_file_has(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 10_000) + b'{"w": {}}')
    with pytest.raises(SourceError, match=r"header claims 10,000 bytes .* truncated"):
        open_source(str(path))


def test_invalid_header_json(tmp_path):
    path = tmp_path / "json.safetensors"
    raw = b'{"w": {"dtype": "F32",, }'
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(SourceError, match="not valid JSON"):
        open_source(str(path))


def test_file_shorter_than_the_length_field(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x05\x00")
    with pytest.raises(SourceError, match="fewer than the 8-byte header length"):
        open_source(str(path))


def test_file_that_shrinks_after_opening_is_an_error_not_a_crash(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(64, 64)})
    tree = open_source(str(path))
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(SourceError, match="changed size"):
        tree.tensors["w"].handle.array()


def test_a_shape_of_100000_huge_dimensions_is_refused_in_one_line(tmp_path):
    """Its elements are not multiplied in full (that took half a minute for 2 MB)."""
    header = {"x": {"dtype": "F32", "shape": [2**62] * 100_000, "data_offsets": [0, 4]}}
    path = write_raw(tmp_path / "dims.safetensors", header, bytes(4))
    with pytest.raises(SourceError, match="more than 2\\*\\*63 elements") as error:
        open_source(str(path))
    assert "\n" not in str(error.value)


# -- large headers, parsed a piece at a time ------------------------------------------------


def _header_bytes(path) -> bytes:
    raw = Path(path).read_bytes()
    return raw[8 : 8 + int.from_bytes(raw[:8], "little")]


def test_a_large_header_parsed_in_pieces_is_the_header(tmp_path, monkeypatch):
    """safetensors' own writer, 3,000 tensors (and metadata), pieces of 2 kB: the same
    header, entries and order as one `json.loads`."""
    import json

    import torch
    from safetensors.torch import save_file

    from netexplorer.core.sources import safetensors as st

    torch.manual_seed(0)
    tensors = {f"blocks.{i}.{n}": torch.randn(2, 3) for i in range(1000) for n in "abc"}
    path = tmp_path / "many.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "note": 'has "quotes" and },"'})
    raw = _header_bytes(path)
    whole = json.loads(raw.decode("utf-8"))
    monkeypatch.setattr(st, "PIECE_BYTES", 2048)
    pieces = st._parse_in_pieces(raw)
    assert pieces == whole and list(pieces) == list(whole)
    header = st.read_header(str(path))
    assert [e.name for e in header.entries] == [k for k in whole if k != "__metadata__"]
    assert header.metadata["note"] == 'has "quotes" and },"'


def test_pieces_cut_inside_a_nested_object_fall_back_to_one_parse(monkeypatch):
    import json

    from netexplorer.core.sources import safetensors as st

    monkeypatch.setattr(st, "PIECE_BYTES", 16)
    entry = '"t%d":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    nested = (
        '{"__metadata__":{"x":{"a":[1]},"b":{"c":[2]}},'
        + ",".join(entry % i for i in range(20))
        + "}"
    )
    raw = nested.encode()
    assert st._parse_in_pieces(raw) is None  # a cut inside "x" fails to parse: no guess
    repeated = "{" + ",".join(entry % (i % 5) for i in range(40)) + "}"  # keys met again
    assert st._parse_in_pieces(repeated.encode()) == json.loads(repeated)
    assert st._parse_in_pieces(b'{"a":1}') is None  # small: one call


@pytest.mark.parametrize("reader", ["_parse_in_pieces", "_read_as_written"])
def test_parsing_a_large_header_lets_other_threads_run(monkeypatch, tmp_path, reader):
    """A 24 MB header (200,000 entries): another thread is never kept waiting as long as
    one `json.loads` of it takes (it was one C call holding the GIL), whether it is read
    as JSON in pieces or as the library writes it."""
    import json
    import sys
    import threading
    import time

    from netexplorer.core.sources import safetensors as st

    monkeypatch.setattr(st, "PIECE_BYTES", 1 << 20)
    entry = '"layers.%d.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}'
    raw = ("{" + ",".join(entry % i for i in range(200_000)) + "}").encode()
    start = time.perf_counter()
    json.loads(raw.decode("utf-8"))
    one_call = time.perf_counter() - start
    done = threading.Event()
    longest = [0.0]

    def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            longest[0] = max(longest[0], now - last)
            last = now

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    thread = threading.Thread(target=ticker)
    thread.start()
    read = {
        "_parse_in_pieces": lambda: st._parse_in_pieces(raw),
        "_read_as_written": lambda: st._read_as_written(file, raw, 64)[0],
    }[reader]
    file = st.MappedFile(str(tmp_path / "not-read.safetensors"), 0, 0)
    try:
        header = read()
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(old)
    assert header is not None and len(header) == 200_000
    assert longest[0] < one_call * 0.6, (longest[0], one_call)


# -- headers as the library writes them, read without json ---------------------------------


def _json_only(monkeypatch, path):
    """What read_header makes of `path` when every header goes through json."""
    from netexplorer.core.sources import safetensors as st

    with monkeypatch.context() as m:
        m.setattr(st, "_read_as_written", lambda *args: None)
        return _outcome(path)


def _outcome(path):
    from netexplorer.core.sources import safetensors as st

    try:
        header = st.read_header(str(path))
    except SourceError as error:
        return "error", str(error)
    entries = [(e.name, e.dtype, e.shape, e.begin, e.end) for e in header.entries]
    return entries, header.metadata, header.data_start, header.may_share


def _library_file(tmp_path) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    tensors = {f"h.{i}.{n}": torch.randn(2, i + 1) for i in range(12) for n in ("w", "b")}
    tensors.update(
        scalar=torch.tensor(3.0),
        empty=torch.zeros(0, 5),
        half=torch.ones(3, dtype=torch.bfloat16),
        ids=torch.arange(4),
        mask=torch.tensor([True, False]),
        **{"name with spaces, commas},": torch.ones(1), "é": torch.ones(2), "}{": torch.ones(1)},
    )
    path = tmp_path / "library.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "note": 'has "quotes" and },"'})
    return path


def test_a_header_as_the_library_writes_it_is_read_without_json(tmp_path, monkeypatch):
    """save_file's header (metadata, every dtype kind, a scalar, an empty tensor, names with
    spaces, commas, braces and non-ASCII letters) takes the regular-expression path, in
    pieces too, and reads as json reads it: names, dtypes, shapes, offsets and metadata."""
    from netexplorer.core.sources import safetensors as st

    path = _library_file(tmp_path)
    raw = _header_bytes(path)
    file = st.MappedFile(str(path), 8 + len(raw), path.stat().st_size)
    data_size = path.stat().st_size - 8 - len(raw)
    read = st._read_as_written(file, raw, data_size)
    assert read is not None
    expected = _json_only(monkeypatch, path)
    assert _outcome(path) == expected
    assert [e.name for e in read[0]] == [name for name, *_ in expected[0]]
    assert "é" in [e.name for e in read[0]] and len(read[0]) == 32
    assert read[1] == expected[1] == {"format": "pt", "note": 'has "quotes" and },"'}
    monkeypatch.setattr(st, "WRITTEN_PIECE_CHARACTERS", 64)  # a piece or two per entry
    assert _outcome(path) == expected
    in_pieces = st._read_as_written(file, raw, data_size)
    assert in_pieces is not None
    assert [(e.name, e.shape) for e in in_pieces[0]] == [(n, s) for n, _, s, *_ in expected[0]]


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"a": ENTRY, "b": ENTRY}),  # spaces after separators
        '{"a":{"shape":[2],"dtype":"F32","data_offsets":[0,8]}}',  # fields in another order
        '{"a\\u00e9":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',  # an escape
        '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]},'  # the first "a" is wrong,
        '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',  # the last one json keeps
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        '"__metadata__":{"format":"pt"}}',  # metadata last
        '{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}',  # a dtype without values
        '{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}',  # not JSON: a leading 0
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[00,8]}}',
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,08]}}',
        '{"a":{"dtype":"F 32","shape":[2],"data_offsets":[0,8]}}',  # not a dtype code
        '{"a":{"dtype":"F32","shape":[2,"x"],"data_offsets":[0,8]}}',  # not counts
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}x,'  # not JSON: text between
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'  # not JSON: no comma
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}',  # not JSON: a last comma
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'  # not JSON: a brace between
        '{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        '{"a\u0001":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',  # a control char
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}',  # past the data
    ],
)
def test_a_header_not_as_written_is_read_as_json_reads_it(tmp_path, monkeypatch, text):
    """Anything the regular expression does not read exactly goes to json: the same
    entries, or the same error, as json alone gives."""
    from netexplorer.core.sources import safetensors as st

    text = text.replace("\\u0001", "\x01").replace("\u0001", "\x01")
    raw = text.encode()
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    file = st.MappedFile(str(path), 8 + len(raw), path.stat().st_size)
    assert st._read_as_written(file, raw, 8) is None
    assert _outcome(path) == _json_only(monkeypatch, path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data())
def test_damaged_library_headers_read_as_json_reads_them(tmp_path, monkeypatch, data):
    """Bytes of a library-written header flipped, cut or repeated: the regular expression
    path and json alone give the same entries, or both refuse the file."""
    import random

    base = tmp_path / "base.safetensors"
    if not base.exists():
        from safetensors.torch import save_file

        tensors = {f"b.{i}.{n}": torch.ones(i % 3 + 1, 2) for i in range(8) for n in "wb"}
        save_file(tensors, str(base), metadata={"format": "pt"})
    whole = base.read_bytes()
    length = int.from_bytes(whole[:8], "little")
    header = bytearray(whole[8 : 8 + length])
    rng = random.Random(data.draw(hs.integers(0, 2**32), label="seed"))
    for _ in range(data.draw(hs.integers(1, 4), label="changes")):
        at = rng.randrange(len(header))
        if rng.random() < 0.7:
            header[at] = rng.choice(b'{}[],:"0123456789.-e \\x' + bytes([header[at] ^ 1]))
        else:
            header[at:at] = header[at : at + rng.randrange(1, 20)]
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + bytes(header) + whole[8 + length :])
    assert _outcome(path) == _json_only(monkeypatch, path)


@pytest.mark.parametrize("note", ["é" * 10, "é" + "x" * 70_000 + "€"])
def test_metadata_of_any_length_and_letters_before_the_tensors(tmp_path, monkeypatch, note):
    """The metadata the library writes first is read by json (in its first 64 kB, or whole
    when longer), and the tensors after it by the regular expression, at the right byte."""
    from safetensors.torch import save_file

    from netexplorer.core.sources import safetensors as st

    path = tmp_path / "meta.safetensors"
    save_file({"a.weight": torch.ones(2, 3), "a.bias": torch.zeros(3)}, str(path), {"note": note})
    raw = _header_bytes(path)
    read = st._read_as_written(st.MappedFile(str(path), 8 + len(raw), 0), raw, 36)
    assert read is not None and read[1] == {"note": note}
    assert [(e.name, e.shape) for e in read[0]] == [("a.bias", (3,)), ("a.weight", (2, 3))]
    assert _outcome(path) == _json_only(monkeypatch, path)


@pytest.mark.parametrize(
    ("text", "shapes", "metadata"),
    [
        (  # a name met twice: json keeps the last one
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
            '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
            {"a": (2,), "b": (1,)},
            None,
        ),
        (  # the metadata's name after the tensors: it is the metadata
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            '"__metadata__":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
            {"a": (2,)},
            {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        ),
    ],
)
def test_names_the_tree_finds_repeated_are_read_as_json_reads_them(
    tmp_path, text, shapes, metadata
):
    """The window's reader leaves the check of repeated names to the tree (which holds a
    repeated name once): such a header, written compactly as the library writes, opens as
    json reads it."""
    raw = text.encode()
    path = tmp_path / "repeated.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    tree = open_source(str(path))
    assert {p: t.shape for p, t in tree.tensors.items()} == shapes
    assert sorted(t.path for t in tree.root.walk_tensors()) == sorted(shapes)  # one node each
    assert tree.metadata.get("safetensors") == metadata


def test_two_names_for_one_byte_range_written_compactly_are_a_tie(tmp_path):
    """Bytes that do not lie one after another, in a header read by the expression: the
    reader looks for shared byte ranges, and finds the tie."""
    raw = (
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        b'"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    )
    path = tmp_path / "alias.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    tree = open_source(str(path))
    assert [g.paths for g in tree.tie_groups] == [("a", "b")]
