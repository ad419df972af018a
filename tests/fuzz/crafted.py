"""Crafted, damaged and oversized files: one generator per case of issue 12's attack.

Each `Case` writes its file (or folder) into a fresh folder and returns the command-line
arguments that open it. `small=True` writes the version `make test` runs (seconds); the full
version is what `make fuzz` runs. Every reader inherits the set: a case names a file, not a
reader, and `netexplorer` picks the reader.

A case passes when every run exits 0 or 2 (2 with one line on stderr), within the runner's
timeout, and its own `check` finds nothing wrong in what was printed.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pickles as pk

MiB = 1 << 20


@dataclass(frozen=True)
class Outcome:
    """What one run of netexplorer did."""

    code: int  # exit status; -N when killed by signal N; None on timeout
    seconds: float
    peak_rss_mb: float
    stdout_bytes: int
    stdout_head: bytes  # the first MiB of stdout
    stderr: str
    mode: str = "summary"  # summary | json | screenshot
    timed_out: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # one line: the file and what it does to a reader
    build: Callable[[Path, bool], list[str]]  # (folder, small) -> SOURCE and options
    legit: bool = False  # a legitimate file: it must open (exit 0)
    small_too: bool = True  # False: only in `make fuzz` (its small form is a test elsewhere)
    nofile: int | None = None  # the child's limit of open files
    check: Callable[[Outcome, Path], str | None] | None = None  # a problem, or None
    modes: tuple[str, ...] = ("summary", "json", "screenshot")
    select: str | None = None  # the tensor --screenshot shows in the heatmap
    no_window: str = ""  # why --screenshot is not run (a known limit of the window)


CASES: dict[str, Case] = {}


def case(name: str, what: str, **kwargs) -> Callable:
    def register(build: Callable[[Path, bool], list[str]]) -> Callable:
        CASES[name] = Case(name, what, build, **kwargs)
        return build

    return register


# -- checks ---------------------------------------------------------------------------------


def no_marker(outcome: Outcome, folder: Path) -> str | None:
    return "the payload ran (MARKER exists)" if (folder / "MARKER").exists() else None


def says(*words: str, code: int = 2) -> Callable[[Outcome, Path], str | None]:
    """The run exits `code` and its message holds every word (case-insensitive)."""

    def check(outcome: Outcome, folder: Path) -> str | None:
        if outcome.code != code:
            return f"exit {outcome.code}, expected {code}"
        missing = [w for w in words if w.lower() not in outcome.stderr.lower()]
        return f"message lacks {missing}: {outcome.stderr.strip()}" if missing else None

    return check


def all_of(*checks: Callable[[Outcome, Path], str | None]) -> Callable:
    def check(outcome: Outcome, folder: Path) -> str | None:
        return next((p for c in checks if (p := c(outcome, folder)) is not None), None)

    return check


def memory_below(mb: float) -> Callable[[Outcome, Path], str | None]:
    def check(outcome: Outcome, folder: Path) -> str | None:
        rss = outcome.peak_rss_mb
        return f"peak memory {rss:.0f} MB, more than {mb:.0f} MB" if rss > mb else None

    return check


def output_below(mb: float) -> Callable[[Outcome, Path], str | None]:
    def check(outcome: Outcome, folder: Path) -> str | None:
        size = outcome.stdout_bytes / MiB
        return f"printed {size:.1f} MB, more than {mb:.0f} MB" if size > mb else None

    return check


def no_terminal_controls(outcome: Outcome, folder: Path) -> str | None:
    bad = [c for c in (b"\x1b", b"\x07", b"\x9b", b"\r") if c in outcome.stdout_head]
    return f"printed raw control characters {bad}" if bad else None


def no_python_internals(outcome: Outcome, folder: Path) -> str | None:
    words = ("IndexError", "pop from empty list", "KeyError", "Traceback")
    found = [w for w in words if w in outcome.stderr]
    return f"the message shows Python internals {found}" if found else None


# -- helpers --------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def _save(path: Path, obj: object, **kwargs) -> Path:
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage, quantized: deprecated, still saved
        torch.save(obj, str(path), **kwargs)
    return path


def _safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _raw_header(path: Path, header_text: str, data: bytes = b"") -> Path:
    raw = header_text.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _one_float(name: str = "w") -> dict:
    return {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}


FLOAT_ONE = struct.pack("<f", 1.0)


def _hf_folder(folder: Path) -> Path:
    hf = folder / "hf"
    hf.mkdir()
    return hf


def _sd_tensors() -> bytes:
    """Opcodes of {"w": a 2x2 float tensor over storage "0"} (zip layout)."""
    return pk.mapping([(pk.text("w"), pk.tensor(pk.storage("0", 4), 0, (2, 2), (2, 1)))])


FOUR_FLOATS = np.arange(4, dtype="<f4").tobytes()

# -- segfaults: a tuple nested a million deep, hashed -----------------------------------------

DEEP = 1_000_000


def _deep_container(where: str) -> bytes:
    deep = pk.nested_tuple(DEEP)
    if where == "dict-key":
        return pk.EMPTY_DICT + deep + pk.NONE + pk.SETITEM
    if where == "set":
        return pk.EMPTY_SET + pk.MARK + deep + pk.ADDITEMS
    # frozenset([deep]) through REDUCE, as protocol 2 writes a frozenset
    return pk.call(pk.glob("builtins", "frozenset"), pk.EMPTY_LIST + pk.MARK + deep + pk.APPENDS)


for _where in ("dict-key", "set", "frozenset"):

    def _zip(folder: Path, small: bool, where: str = _where) -> list[str]:
        body = pk.mapping(
            [
                (pk.text("w"), pk.tensor(pk.storage("0", 4), 0, (2, 2), (2, 1))),
                (pk.text("deep"), _deep_container(where)),
            ]
        )
        path = pk.write_torch_zip(folder / "deep.pt", pk.dumps(body), {"0": FOUR_FLOATS})
        return [str(path)]

    def _legacy(folder: Path, small: bool, where: str = _where) -> list[str]:
        storage = pk.storage("0", 4, legacy=True)
        body = pk.mapping(
            [
                (pk.text("w"), pk.tensor(storage, 0, (2, 2), (2, 1))),
                (pk.text("deep"), _deep_container(where)),
            ]
        )
        path = pk.write_legacy(folder / "deep.pth", pk.dumps(body), [("0", 4, FOUR_FLOATS)])
        return [str(path)]

    case(
        f"deep-tuple-{_where}-zip",
        f"a tuple nested {DEEP:,} deep as a {_where} in a torch zip data.pkl",
    )(_zip)
    case(
        f"deep-tuple-{_where}-legacy",
        f"a tuple nested {DEEP:,} deep as a {_where} in a legacy torch file",
    )(_legacy)


@case(
    "legacy-uninitialised-floattensor",
    "a legacy file of a few hundred bytes calling torch.FloatTensor(750_000_000)",
    check=all_of(says("3.0 GB"), memory_below(1500)),
    select="w",
)
def _float_tensor(folder: Path, small: bool) -> list[str]:
    body = pk.mapping(
        [(pk.text("w"), pk.call(pk.glob("torch", "FloatTensor"), pk.integer(750_000_000)))]
    )
    return [str(pk.write_legacy(folder / "uninit.pth", pk.dumps(body), []))]


@case(
    "legacy-bytearray-3gb",
    "a legacy file of a few hundred bytes calling builtins.bytearray(3_000_000_000)",
    check=memory_below(1500),
)
def _bytearray(folder: Path, small: bool) -> list[str]:
    storage = pk.storage("0", 4, legacy=True)
    body = pk.mapping(
        [
            (pk.text("w"), pk.tensor(storage, 0, (2, 2), (2, 1))),
            (pk.text("b"), pk.call(pk.glob("builtins", "bytearray"), pk.integer(3_000_000_000))),
        ]
    )
    path = pk.write_legacy(folder / "alloc.pth", pk.dumps(body), [("0", 4, FOUR_FLOATS)])
    return [str(path)]


@case(
    "zip-bomb-data-pkl",
    "a torch zip whose deflated data.pkl inflates a thousandfold (3 GB; 256 MB small)",
    check=all_of(says("inflate"), memory_below(1500)),
)
def _zip_bomb(folder: Path, small: bool) -> list[str]:
    size = 256 * MiB if small else 3 * 1024 * MiB
    return [str(pk.write_deflated_zeros_pickle(folder / "bomb.pt", size))]


# -- hangs: special files where JSON is expected ---------------------------------------------


def _index(weight_map: dict[str, str]) -> str:
    return json.dumps({"metadata": {"total_size": 4}, "weight_map": weight_map})


def _special(target: str, where: Path) -> None:
    if target == "fifo":
        os.mkfifo(where)
    else:
        os.symlink(target, where)


for _target, _label in (
    ("fifo", "a FIFO"),
    ("/dev/zero", "/dev/zero"),
    ("/dev/urandom", "/dev/urandom"),
):
    _slug = "fifo" if _target == "fifo" else _target.rsplit("/", 1)[1]

    def _st_index(folder: Path, small: bool, target: str = _target) -> list[str]:
        hf = _hf_folder(folder)
        _special(target, hf / "model.safetensors.index.json")
        return [str(hf)]

    def _beside_shard(folder: Path, small: bool, target: str = _target) -> list[str]:
        hf = _hf_folder(folder)
        _safetensors(hf / "model-00001-of-00001.safetensors", _one_float(), FLOAT_ONE)
        _special(target, hf / "model.safetensors.index.json")
        return [str(hf)]

    def _bin_index(folder: Path, small: bool, target: str = _target) -> list[str]:
        hf = _hf_folder(folder)
        _special(target, hf / "pytorch_model.bin.index.json")
        return [str(hf)]

    def _config(folder: Path, small: bool, target: str = _target) -> list[str]:
        hf = _hf_folder(folder)
        _safetensors(hf / "model.safetensors", _one_float(), FLOAT_ONE)
        _special(target, hf / "config.json")
        return [str(hf)]

    case(f"hf-safetensors-index-{_slug}", f"model.safetensors.index.json is {_label}")(_st_index)
    case(
        f"hf-safetensors-index-{_slug}-beside-shard",
        f"model.safetensors.index.json is {_label}, beside a real shard",
    )(_beside_shard)
    case(f"hf-bin-index-{_slug}", f"pytorch_model.bin.index.json is {_label}")(_bin_index)
    case(
        f"hf-config-{_slug}",
        f"config.json is {_label} beside a good model.safetensors",
        legit=True,
    )(_config)


@case("safetensors-fifo", "a FIFO named model.safetensors, opened directly")
def _fifo_file(folder: Path, small: bool) -> list[str]:
    os.mkfifo(folder / "model.safetensors")
    return [str(folder / "model.safetensors")]


# -- hangs: legitimate files whose sizes were taken at face value ---------------------------


@case("bare-storage-40mb", "torch.save of a bare 40 MB TypedStorage", select="storage")
def _bare_storage(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.zeros(10_000_000).storage()
    return [str(_save(folder / "storage.pt", storage))]


@case("untyped-storage", "torch.save(torch.UntypedStorage(10**8)) (10**7 small)", select="storage")
def _untyped_storage(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    return [str(_save(folder / "untyped.pt", torch.UntypedStorage(10**7 if small else 10**8)))]


@case(
    "expand-stride-0",
    "torch.zeros(1).expand(2**20, 2**20): 10**12 elements over one stored value",
    legit=True,
    select="x",
)
def _expand(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    return [str(_save(folder / "expand.pt", {"x": torch.zeros(1).expand(2**20, 2**20)}))]


@case(
    "strides-0-0",
    "a (65536, 32768) tensor with strides (0, 0)",
    legit=True,
    select="x",
)
def _strides00(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    x = torch.full((1,), 0.5).as_strided((65536, 32768), (0, 0))
    return [str(_save(folder / "strides.pt", {"x": x}))]


@case(
    "million-tensors-safetensors",
    "1,000,000 tensors in one safetensors header (60 MB)",
    small_too=False,
)
def _million_safetensors(folder: Path, small: bool) -> list[str]:
    n = 1_000_000
    parts = [
        f'"t.{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}'
        for i in range(n)
    ]
    path = _raw_header(folder / "million.safetensors", "{" + ",".join(parts) + "}", bytes(4 * n))
    return [str(path)]


def million_views_pickle(n: int) -> bytes:
    """data.pkl of n one-element views of one storage, memoised as torch.save writes it."""
    rebuild = pk.glob("torch._utils", "_rebuild_tensor_v2") + b"q\x00"
    ordered = pk.call(pk.glob("collections", "OrderedDict")) + b"q\x01"
    first_storage = pk.storage("0", n) + b"q\x02"
    body = [pk.EMPTY_DICT, pk.MARK]
    for i in range(n):
        func = rebuild if i == 0 else b"h\x00"
        store = first_storage if i == 0 else b"h\x02"
        od = ordered if i == 0 else b"h\x01"
        body.append(pk.text(f"t.{i}"))
        body.append(
            func + pk.tup(store, pk.integer(i), b"K\x01\x85", b"K\x01\x85", pk.NEWFALSE, od)
        )
        body.append(pk.REDUCE)
        if i % 1000 == 999:  # SETITEMS in batches, as the pickler writes them
            body += [pk.SETITEMS, pk.MARK]
    body.append(pk.SETITEMS)
    return pk.dumps(b"".join(body))


@case("million-views-zip", "a torch zip of 1,000,000 views of one storage", small_too=False)
def _million_views(folder: Path, small: bool) -> list[str]:
    n = 1_000_000
    path = pk.write_torch_zip(folder / "views.pt", million_views_pickle(n), {"0": bytes(4 * n)})
    return [str(path)]


def shard_named_many_ways(folder: Path, tensors: int, spellings: int) -> Path:
    """A Hugging Face folder: one safetensors shard of `tensors` tensors, its index naming
    the shard `spellings` ways (`s.safetensors`, `./s.safetensors`, `.//s.safetensors`...)."""
    hf = _hf_folder(folder)
    header = {
        f"t.{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i in range(tensors)
    }
    _safetensors(hf / "s.safetensors", header, bytes(4 * tensors))
    names = [("./" * k + "/" * (k % 3)) + "s.safetensors" for k in range(spellings)]
    weight_map = {f"t.{i}": names[i % spellings] for i in range(tensors)}
    (hf / "model.safetensors.index.json").write_text(_index(weight_map))
    return hf


@case(
    "shard-named-100-ways",
    "one 100,000-tensor shard named 100 ways in model.safetensors.index.json",
    small_too=False,
    # ui/tree_view.py sizes its columns over every row of an expanded module: over 120 s
    # for one module of 100,000 tensors (the tree itself is built in a second)
    no_window="the window sizes its tree's columns over 100,000 rows (minutes)",
)
def _shard_100_ways(folder: Path, small: bool) -> list[str]:
    return [str(shard_named_many_ways(folder, 100_000, 100))]


def placed_many_times(times: int, tensors: int) -> dict:
    torch = _torch()
    sd = {f"layer{i}.weight": torch.ones(2) for i in range(tensors)}
    return {"copies": [sd] * times}


@case("state-dict-10000-times", "one state dict placed 10,000 times in a list")
def _placed(folder: Path, small: bool) -> list[str]:
    return [str(_save(folder / "placed.pt", placed_many_times(10_000, 10 if small else 100)))]


@case(
    "shared-dag-12-deep",
    "a list of two references to the level below, 12 levels deep: 4,096 paths to a tensor",
    check=output_below(16),
)
def _dag(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    x: object = {"w": torch.ones(3)}
    for _ in range(12):
        x = [x, x]
    return [str(_save(folder / "dag.pt", x))]


# -- tracebacks: numbers of the file's own -------------------------------------------------


@case("safetensors-65-dims", "a safetensors tensor of 65 dimensions", select="w")
def _dims65(folder: Path, small: bool) -> list[str]:
    header = {"w": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}
    return [str(_safetensors(folder / "d65.safetensors", header, FLOAT_ONE))]


@case("safetensors-1000-dims", "a safetensors tensor of 1,000 dimensions", select="w")
def _dims1000(folder: Path, small: bool) -> list[str]:
    header = {"w": {"dtype": "F32", "shape": [1] * 1000, "data_offsets": [0, 4]}}
    return [str(_safetensors(folder / "d1000.safetensors", header, FLOAT_ONE))]


@case("safetensors-zero-beside-2**70", "a safetensors shape [0, 2**70]")
def _zero_2_70(folder: Path, small: bool) -> list[str]:
    header = {"w": {"dtype": "F32", "shape": [0, 2**70], "data_offsets": [0, 0]}}
    header.update(_one_float("v"))
    return [str(_safetensors(folder / "z.safetensors", header, FLOAT_ONE))]


BIG_INT = "9" * 5000


@case("safetensors-5000-digit-int", "a 5,000-digit integer in a safetensors header")
def _digits_header(folder: Path, small: bool) -> list[str]:
    text = '{"w":{"dtype":"F32","shape":[' + BIG_INT + '],"data_offsets":[0,4]}}'
    return [str(_raw_header(folder / "digits.safetensors", text, FLOAT_ONE))]


@case("hf-index-5000-digit-int", "a 5,000-digit integer in model.safetensors.index.json")
def _digits_index(folder: Path, small: bool) -> list[str]:
    hf = _hf_folder(folder)
    _safetensors(hf / "model-00001-of-00001.safetensors", _one_float(), FLOAT_ONE)
    weight_map = {"w": "model-00001-of-00001.safetensors"}
    text = '{"metadata":{"total_size":' + BIG_INT + '},"weight_map":' + json.dumps(weight_map) + "}"
    (hf / "model.safetensors.index.json").write_text(text)
    return [str(hf)]


@case(
    "hf-config-5000-digit-int",
    "a 5,000-digit integer in config.json beside good weights",
    legit=True,
)
def _digits_config(folder: Path, small: bool) -> list[str]:
    hf = _hf_folder(folder)
    _safetensors(hf / "model.safetensors", _one_float(), FLOAT_ONE)
    (hf / "config.json").write_text('{"hidden_size":' + BIG_INT + "}")
    return [str(hf)]


def huge_values(sign: float = 1.0) -> np.ndarray:
    return np.array([1.7e308, -1.7e308, 1.0, 0.0], dtype=np.float64) * sign


@case(
    "values-1.7e308",
    "float64 values of +-1.7e308 (the histogram's range overflows)",
    legit=True,
    select="w",
)
def _huge(folder: Path, small: bool) -> list[str]:
    header = {"w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}
    return [str(_safetensors(folder / "huge.safetensors", header, huge_values().tobytes()))]


@case(
    "values-1.7e308-compare",
    "--compare of two files of +-1.7e308 values (their difference overflows)",
    legit=True,
    modes=("summary", "json"),
)
def _huge_compare(folder: Path, small: bool) -> list[str]:
    header = {"w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}
    a = _safetensors(folder / "a.safetensors", header, huge_values().tobytes())
    b = _safetensors(folder / "b.safetensors", header, huge_values(-1.0).tobytes())
    return [str(a), "--compare", str(b)]


@case(
    "shards-1100-open-files-1024",
    "1,100 safetensors shards read with a limit of 1,024 open files",
    nofile=1024,
    legit=True,
)
def _shards_1100(folder: Path, small: bool) -> list[str]:
    hf = _hf_folder(folder)
    weight_map = {}
    for i in range(1100):
        name = f"model-{i + 1:05d}-of-01100.safetensors"
        _safetensors(hf / name, _one_float(f"layers.{i}.w"), FLOAT_ONE)
        weight_map[f"layers.{i}.w"] = name
    (hf / "model.safetensors.index.json").write_text(_index(weight_map))
    return [str(hf)]


def _sparse_compressed(kind: str):
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse CSR/BSR support is "in beta"
        if kind == "csr":
            return torch.sparse_csr_tensor(
                torch.tensor([0, 2, 4]), torch.tensor([0, 99, 0, 99]), torch.ones(4), (2, 3),
                check_invariants=False,
            )  # fmt: skip
        if kind == "bsr":
            return torch.sparse_bsr_tensor(
                torch.tensor([0, 1, 2]), torch.tensor([0, 50]), torch.ones(2, 2, 2), (4, 4),
                check_invariants=False,
            )  # fmt: skip
        return torch.sparse_coo_tensor(
            torch.tensor([[0, 100]]), torch.ones(2), (3,), check_invariants=False
        )


for _kind in ("csr", "bsr", "coo"):

    def _sparse(folder: Path, small: bool, kind: str = _kind) -> list[str]:
        torch = _torch()
        obj = {"w": torch.ones(2), "s": _sparse_compressed(kind)}
        return [str(_save(folder / f"{kind}.pt", obj))]

    case(
        f"sparse-{_kind}-out-of-range",
        f"a sparse {_kind.upper()} tensor whose indices lie outside its shape",
        select="s",
    )(_sparse)


def _build_items(legacy: bool) -> bytes:
    storage = pk.storage("0", 4, legacy=legacy)
    state = pk.mapping([(pk.text("items"), pk.integer(1)), (pk.text("keys"), pk.integer(2))])
    od = pk.call(pk.glob("collections", "OrderedDict"))
    od += pk.MARK + pk.text("w") + pk.tensor(storage, 0, (2, 2), (2, 1)) + pk.SETITEMS
    return pk.dumps(od + state + pk.BUILD)


@case("build-shadows-items-zip", "a state dict whose BUILD sets an attribute named items")
def _items_zip(folder: Path, small: bool) -> list[str]:
    path = pk.write_torch_zip(folder / "items.pt", _build_items(False), {"0": FOUR_FLOATS})
    return [str(path)]


@case("build-shadows-items-legacy", "the same in a legacy file")
def _items_legacy(folder: Path, small: bool) -> list[str]:
    path = pk.write_legacy(folder / "items.pth", _build_items(True), [("0", 4, FOUR_FLOATS)])
    return [str(path)]


@case(
    "build-shadows-detach",
    "a parameter rebuilt with a state that sets an attribute named detach",
)
def _detach(folder: Path, small: bool) -> list[str]:
    state = pk.mapping([(pk.text("detach"), pk.integer(1))])
    param = pk.call(
        pk.glob("torch._utils", "_rebuild_parameter_with_state"),
        pk.tensor(pk.storage("0", 4), 0, (2, 2), (2, 1)),
        pk.NEWFALSE,
        pk.call(pk.glob("collections", "OrderedDict")),
        state,
    )
    body = pk.mapping([(pk.text("p"), param)])
    torch = _torch()
    # through torch.save's own archive writer, so torch.load accepts the archive itself
    good = _save(folder / "good.pt", {"p": torch.arange(4.0).reshape(2, 2)})
    return [str(_replace_data_pkl(good, folder / "detach.pt", pk.dumps(body)))]


def _replace_data_pkl(source: Path, target: Path, data_pkl: bytes) -> Path:
    """A copy of torch.save's archive `source` with its data.pkl replaced."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            raw = data_pkl if info.filename.endswith("/data.pkl") else old.read(info)
            new.writestr(info, raw)
    return target


@case(
    "zip-overlapping-strides",
    "a torch zip view of shape (2**20, 2**20) and strides (1, 1) over 2**21 stored floats",
    select="w",
)
def _overlap(folder: Path, small: bool) -> list[str]:
    n = 2**20
    body = pk.mapping([(pk.text("w"), pk.tensor(pk.storage("0", 2 * n), 0, [n, n], [1, 1]))])
    return [str(pk.write_torch_zip(folder / "overlap.pt", pk.dumps(body), {"0": bytes(8 * n)}))]


@case("zip-65-dims", "a torch zip tensor of 65 dimensions", select="w")
def _zip65(folder: Path, small: bool) -> list[str]:
    body = pk.mapping([(pk.text("w"), pk.tensor(pk.storage("0", 1), 0, [1] * 65, [1] * 65))])
    return [str(pk.write_torch_zip(folder / "d65.pt", pk.dumps(body), {"0": FLOAT_ONE}))]


@case(
    "zip-bytes-overflow",
    "a torch zip tensor of 2**61 float64 elements (2**64 bytes)",
    select="w",
)
def _zip_overflow(folder: Path, small: bool) -> list[str]:
    ref = pk.storage("0", 1, kind="DoubleStorage")
    body = pk.mapping([(pk.text("w"), pk.tensor(ref, 0, [2**61], [0]))])
    raw = struct.pack("<d", 1.0)
    return [str(pk.write_torch_zip(folder / "overflow.pt", pk.dumps(body), {"0": raw}))]


# -- legitimate files refused ---------------------------------------------------------------


def _shows_encoder(outcome: Outcome, folder: Path) -> str | None:
    if outcome.mode == "screenshot" or b"encoder" in outcome.stdout_head:
        return None
    return "encoder not shown"


for _protocol in range(6):
    for _legacy_format in (False, True):

        def _protocol_file(
            folder: Path, small: bool, protocol: int = _protocol, legacy: bool = _legacy_format
        ) -> list[str]:
            torch = _torch()
            sd = {"encoder.weight": torch.arange(6.0).reshape(2, 3), "encoder.bias": torch.ones(2)}
            path = _save(
                folder / f"p{protocol}.pt",
                sd,
                pickle_protocol=protocol,
                _use_new_zipfile_serialization=not legacy,
            )
            return [str(path)]

        _fmt = "legacy" if _legacy_format else "zip"
        case(
            f"protocol-{_protocol}-{_fmt}",
            f"torch.save(state_dict, pickle_protocol={_protocol}) in the {_fmt} format",
            legit=True,
            check=_shows_encoder,
            select="encoder.weight",
        )(_protocol_file)


# -- wrong words ------------------------------------------------------------------------------


class SystemCall:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


for _protocol in (0, 2, 4, 5):

    def _plain(folder: Path, small: bool, protocol: int = _protocol) -> list[str]:
        path = folder / "evil.pkl"
        path.write_bytes(pickle.dumps({"x": SystemCall(folder / "MARKER")}, protocol=protocol))
        return [str(path)]

    case(
        f"plain-pickle-protocol-{_protocol}-runs-code",
        f"a plain Python pickle (protocol {_protocol}) that would call os.system",
        check=all_of(says("system", "--trust"), no_marker),
    )(_plain)


@case(
    "plain-pickle-INST",
    "a protocol-0 pickle whose INST opcode would call os.system",
    check=all_of(says("system", "--trust"), no_marker),
)
def _inst(folder: Path, small: bool) -> list[str]:
    path = folder / "inst.pt"
    path.write_bytes(f"(S'touch {folder / 'MARKER'}'\nios\nsystem\n.".encode())
    return [str(path)]


@case(
    "zip-STACK_GLOBAL-runs-code",
    "a torch zip whose protocol-4 data.pkl names os.system by STACK_GLOBAL",
    check=all_of(says("system", "--trust"), no_marker),
)
def _stack_global(folder: Path, small: bool) -> list[str]:
    payload = {"w": _torch().ones(2), "x": SystemCall(folder / "MARKER")}
    return [str(_save(folder / "evil.pt", payload, pickle_protocol=4))]


@case(
    "non-utf8-name-needs-torch",
    "a torch zip named with a non-UTF-8 byte, holding a quantized tensor (needs torch)",
    legit=True,
)
def _non_utf8(folder: Path, small: bool) -> list[str]:
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.randn(3, 3), 0.1, 0, torch.qint8)
    path = os.fsencode(folder) + b"/caf\xe9.pt"
    with open(path, "wb") as f:
        torch.save({"q": q, "w": torch.ones(2)}, f)
    return [os.fsdecode(path)]


@case(
    "bin-is-safetensors-in-folder",
    "a Hugging Face folder whose pytorch_model.bin is really a safetensors file",
    legit=True,
)
def _bin_safetensors(folder: Path, small: bool) -> list[str]:
    hf = _hf_folder(folder)
    _safetensors(hf / "pytorch_model.bin", _one_float(), FLOAT_ONE)
    (hf / "config.json").write_text('{"model_type": "mlp"}')
    return [str(hf)]


@case(
    "whole-model-class-not-importable",
    "a trusted whole-model pickle whose class's module is not on the path",
    check=says("fuzz_model_code", "PYTHONPATH", "--model"),
)
def _unimportable(folder: Path, small: bool) -> list[str]:
    import importlib
    import sys

    code = folder / "code"
    code.mkdir()
    (code / "fuzz_model_code.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(2, 2)\n"
    )
    sys.path.insert(0, str(code))
    try:
        module = importlib.import_module("fuzz_model_code")
        path = _save(folder / "model.pt", module.Net())
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("fuzz_model_code", None)
    (code / "fuzz_model_code.py").unlink()
    return [str(path), "--trust"]


@case(
    "garbage-pt",
    "a .pt file of text and random bytes",
    check=all_of(says("not"), no_python_internals),
)
def _garbage(folder: Path, small: bool) -> list[str]:
    path = folder / "garbage.pt"
    path.write_bytes(b"these are not weights\n" + np.random.default_rng(0).bytes(200))
    return [str(path)]


@case(
    "garbage-pickle-pt",
    "a .pt file that starts like a pickle and is not one",
    check=all_of(says("not"), no_python_internals),
)
def _garbage_pickle(folder: Path, small: bool) -> list[str]:
    path = folder / "garbage.pt"
    path.write_bytes(b"\x80\x02e" + np.random.default_rng(1).bytes(100))
    return [str(path)]


@case(
    "escapes-in-names",
    "tensor names holding terminal escapes (set the title, clear the screen)",
    check=no_terminal_controls,
    legit=True,
)
def _escapes(folder: Path, small: bool) -> list[str]:
    names = ["\x1b]0;pwned\x07w", "\x1b[2J\x1b[Hclear.bias", "csi\x9b31m.x", "cr\rname"]
    header = {}
    for i, name in enumerate(names):
        header[name] = {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
    return [str(_safetensors(folder / "escapes.safetensors", header, bytes(16)))]
