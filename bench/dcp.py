"""Benchmark (not a test): opening a PyTorch Distributed Checkpoint of several GB written by
4 processes.

    .venv/bin/python bench/dcp.py [--runs N] [--keep DIR]

Four processes in a gloo group (CPU) save a GPT-2-medium-shaped training checkpoint with
`torch.distributed.checkpoint.save`: the 355M fp32 parameters and Adam's `exp_avg` and
`exp_avg_sq`, each a DTensor sharded on dimension 0 over the 4 ranks as FSDP2 shards them
(4.3 GB in 4 shard files), plus Adam's step counts and param groups, nested as
`get_state_dict` nests them. The folder is written to a temporary folder and deleted
afterwards (`--keep DIR` writes it there, or reuses it, and keeps it).

Then medians over N runs, each in a fresh interpreter (page cache warm, interpreter cold):

- time until the tree is ready in the core (`open_source` of the folder), counted from
  interpreter start, imports included, against the floor: torch's own
  `FileSystemReader(folder).read_metadata()` in a fresh interpreter (its import of
  torch.distributed.checkpoint included); their ratio (target within 1.5x); and the part
  of each after the imports (netexplorer's restricted unpickler is pure Python, about ten
  times slower per byte than the C `pickle.load` torch uses, so a far larger `.metadata`
  would narrow the margin that torch's import gives);
- resident memory growth until the tree is ready, before any tensor is shown (target under
  50 MB), and the floor's;
- for scale, showing the first tensor: the 50257x1024 embedding assembled from its 4 chunks
  (`handle.array()`), against `dcp.load` of that one key into a preallocated tensor, in one
  process without a process group (both after their imports).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # first statement: child figures count from interpreter start

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
from common import rss_mb  # noqa: E402
from report import figure  # noqa: E402

WORLD = 4
EMBEDDING = "model.wte.weight"
TARGET_RATIO = 1.5
TARGET_GROWTH_MB = 50.0


# -- the checkpoint ---------------------------------------------------------------------------


def _local_rows(rows: int, rank: int) -> tuple[int, int]:
    """(first row, row count) of `rank`'s piece of a dimension of `rows` split as torch's
    Shard(0) splits it: pieces of ceil(rows / WORLD), the last ones shorter or empty."""
    piece = math.ceil(rows / WORLD)
    first = min(rows, rank * piece)
    return first, max(0, min(piece, rows - first))


def _write_rank(rank: int, init_file: str, folder: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    sys.path.insert(0, str(Path(__file__).parent))
    from open import gpt2_medium_shapes  # bench/open.py: one list of GPT-2 medium's shapes

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (WORLD,))
    generator = torch.Generator().manual_seed(rank)

    def sharded(shape: tuple[int, ...], scale: float) -> DTensor:
        _, rows = _local_rows(shape[0], rank)
        local = torch.randn((rows, *shape[1:]), generator=generator) * scale
        stride = tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))
        return DTensor.from_local(local, mesh, [Shard(0)], shape=torch.Size(shape), stride=stride)

    shapes = gpt2_medium_shapes()
    model = {name: sharded(shape, 0.02) for name, shape in shapes.items()}
    state = {
        name: {
            "step": torch.tensor(100.0),
            "exp_avg": sharded(shape, 1e-3),
            "exp_avg_sq": sharded(shape, 1e-6).abs(),
        }
        for name, shape in shapes.items()
    }
    groups = [{"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-8, "params": list(shapes)}]
    checkpoint = {"model": model, "optim": {"state": state, "param_groups": groups}, "step": 100}
    dcp.save(checkpoint, checkpoint_id=folder)
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)  # skip the interpreter's teardown of objects still holding the group


def write_checkpoint(folder: Path) -> None:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="dcp-bench-init-") as rendezvous:
        mp.spawn(_write_rank, args=(os.path.join(rendezvous, "file"), str(folder)), nprocs=WORLD)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


# -- measurements (each runs in a fresh child process) -----------------------------------------


def measure_core_open(folder: str) -> dict[str, float]:
    """netexplorer's core: `open_source` of the folder until the tree is ready."""
    before = rss_mb()
    from netexplorer.core.sources import open_source

    imported = time.perf_counter()
    tree = open_source(folder)
    seconds = time.perf_counter() - START
    assert EMBEDDING in tree.tensors and len(tree.optimizer_state) == len(tree.tensors)
    return {
        "seconds": seconds,
        "reading": START + seconds - imported,
        "growth_mb": rss_mb() - before,
        "tensors": float(len(tree.tensors)),
        "torch_imported": float("torch" in sys.modules),
    }


def measure_floor(folder: str) -> dict[str, float]:
    """The floor: torch's own reader of `.metadata` alone (a plain pickle.load of it)."""
    before = rss_mb()
    from torch.distributed.checkpoint import FileSystemReader

    imported = time.perf_counter()
    metadata = FileSystemReader(folder).read_metadata()
    seconds = time.perf_counter() - START
    assert EMBEDDING in metadata.state_dict_metadata
    return {
        "seconds": seconds,
        "reading": START + seconds - imported,
        "growth_mb": rss_mb() - before,
    }


def measure_core_assemble(folder: str) -> dict[str, float]:
    """The embedding assembled from its chunks when it is shown (imports and opening done)."""
    from netexplorer.core.sources import open_source

    handle = open_source(folder).tensors[EMBEDDING].handle
    import numpy as np  # noqa: F401  (imported before the clock starts, as in the app)

    before = rss_mb()
    start = time.perf_counter()
    values = handle.array()
    seconds = time.perf_counter() - start
    assert values.shape == (50257, 1024) and len(handle.chunks) == WORLD
    return {"seconds": seconds, "growth_mb": rss_mb() - before}


def measure_torch_assemble(folder: str) -> dict[str, float]:
    """torch's own: `dcp.load` of the one key into a preallocated tensor, in one process
    without a process group (imports done first)."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    target = {EMBEDDING: torch.empty(50257, 1024)}
    before = rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process"
        dcp.load(target, checkpoint_id=folder)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "growth_mb": rss_mb() - before}


MEASUREMENTS: dict[str, Callable[[str], dict[str, float]]] = {
    "core_open": measure_core_open,
    "floor": measure_floor,
    "core_assemble": measure_core_assemble,
    "torch_assemble": measure_torch_assemble,
}


def run_child(measurement: str, folder: Path) -> dict[str, float]:
    return common.run_child(__file__, measurement, str(folder))


def median_figures(folder: Path, runs: int) -> dict[str, dict[str, float]]:
    """Medians over `runs` rounds, each running every measurement once, interleaved so that
    drift of a shared machine hits them alike; a first round warms the page cache."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in MEASUREMENTS}
    for round_ in range(runs + 1):
        for name in MEASUREMENTS:
            figures = run_child(name, folder)
            if round_:
                results[name].append(figures)
    return {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in results.items()
    }


# -- report -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(folder: Path, runs: int) -> None:
    figures = median_figures(folder, runs)
    core, floor = figures["core_open"], figures["floor"]
    ratio = core["seconds"] / floor["seconds"]
    assemble, peer = figures["core_assemble"], figures["torch_assemble"]
    metadata = (folder / ".metadata").stat().st_size
    print(
        f"\n{folder.name}: {folder_bytes(folder) / 1e9:.2f} GB in {WORLD} shard files, "
        f".metadata {metadata / 1e3:.0f} kB, {core['tensors']:.0f} tensors in the tree "
        "(each with Adam's state beside it)"
    )
    print(f"medians of {runs} runs, each in a fresh interpreter (page cache warm)")
    print(
        f"  tree ready (core)            {core['seconds']:.3f} s   "
        f"(torch imported: {'yes' if core['torch_imported'] else 'no'})"
    )
    print(f"  floor (read_metadata)        {floor['seconds']:.3f} s")
    print(
        f"  of which after the imports   core {core['reading'] * 1000:.0f} ms (restricted "
        f"pure-Python unpickler, checks, tree), floor {floor['reading'] * 1000:.0f} ms "
        "(C pickle.load)"
    )
    print(
        f"  ratio core / floor           {ratio:.2f}x    target < {TARGET_RATIO}x: "
        f"{verdict(ratio <= TARGET_RATIO)}"
    )
    print(
        f"  memory growth to the tree    {core['growth_mb']:.1f} MB (floor "
        f"{floor['growth_mb']:.0f} MB)   target < {TARGET_GROWTH_MB:.0f} MB: "
        f"{verdict(core['growth_mb'] <= TARGET_GROWTH_MB)}"
    )
    print(
        f"  {EMBEDDING} shown: assembled from {WORLD} chunks in "
        f"{assemble['seconds'] * 1000:.0f} ms (+{assemble['growth_mb']:.0f} MB); dcp.load of "
        f"that key {peer['seconds'] * 1000:.0f} ms (+{peer['growth_mb']:.0f} MB)"
    )
    what = f"distributed checkpoint ({folder_bytes(folder) / 1e9:.1f} GB, {WORLD} ranks)"
    figure(
        "dcp",
        f"{what}: tree ready (from interpreter start)",
        core["seconds"],
        "s",
        floor_name="read_metadata",
        floor=floor["seconds"],
        target=f"<= {TARGET_RATIO}x floor",
        ok=ratio <= TARGET_RATIO,
    )
    figure(
        "dcp",
        f"{what}: memory growth before any tensor is shown",
        core["growth_mb"],
        "MB",
        target=f"< {TARGET_GROWTH_MB:.0f} MB",
        ok=core["growth_mb"] <= TARGET_GROWTH_MB,
    )
    figure(
        "dcp",
        f"{what}: {EMBEDDING} assembled from its chunks",
        assemble["seconds"],
        "s",
        floor_name="dcp.load of that key",
        floor=peer["seconds"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the checkpoint here (or reuse it)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, folder = args.child
        print(json.dumps(MEASUREMENTS[name](folder)))
        return
    parent = args.keep or Path(tempfile.mkdtemp(prefix="netexplorer-bench-dcp-"))
    folder = parent / "gpt2-medium-dcp"
    try:
        if not (folder / ".metadata").exists():
            print(f"writing {folder} with {WORLD} processes ...", flush=True)
            start = time.perf_counter()
            write_checkpoint(folder)
            print(f"  written in {time.perf_counter() - start:.0f} s", flush=True)
        report(folder, args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
