"""Benchmark (not a test): statistics, histogram and display array of one huge tensor.

    .venv/bin/python bench/huge_tensor.py [--runs N] [--elements E] [--keep DIR]

Writes a safetensors file holding one float32 tensor of E elements (200,000,000 by default:
800 MB, 20,000 x 10,000) in a temporary folder, deleted afterwards, reads it once so its
pages are in the page cache, then runs each measurement N times, each in a fresh
interpreter, interleaved, and prints medians of:

- netexplorer: `tensor_stats` (min, max, mean, std, norm, sum, zeros, NaN/Inf counts and
  the 64-bin histogram) of the tensor as the window reads it (a view of the file's map),
  against its peer measured in the same run: numpy's `min`, `max`, `mean`, `std` and
  `np.histogram(bins=64)` over an `np.memmap` of the same bytes;
- the display array (reduced to 1,000 x 1,000 cells), for what selecting it costs;
- peak extra memory of each: the most anonymous memory (RssAnon: what the process itself
  allocates) above what it held before the computation, sampled every 2 ms by a thread of
  the child. The file's pages a computation reads count in RSS too (RssFile), for both
  alike: they are the page cache, shared and dropped by the system as it needs; printed
  apart.

Targets (issue 13.4): within 2x of numpy, peak extra memory under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from report import figure  # noqa: E402

TARGET_RATIO = 2.0
TARGET_EXTRA_MB = 300.0
BINS = 64


def write_file(path: Path, elements: int) -> None:
    """One F32 tensor "w" of `elements` values, written a slice at a time."""
    import numpy as np

    cols = 10_000 if elements % 10_000 == 0 else 1
    shape = [elements // cols, cols] if cols > 1 else [elements]
    header = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * elements]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        left = elements
        while left:
            n = min(left, 10_000_000)
            f.write((rng.standard_normal(n, dtype=np.float32) * 0.02).tobytes())
            left -= n


def read_through(path: Path) -> None:
    """Read the file once, so every measurement finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# -- measurements (each in a fresh child interpreter) ------------------------------------------


def _memory() -> dict[str, int]:
    """RssAnon and RssFile of this process, in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


class PeakMemory:
    """Samples this process's memory every 2 ms in a thread, from `start()` to `stop()`."""

    def __init__(self) -> None:
        self.before = _memory()
        self.peak = dict(self.before)
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self._running:
            now = _memory()
            for key, value in now.items():
                self.peak[key] = max(self.peak[key], value)
            time.sleep(0.002)

    def start(self) -> PeakMemory:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._running = False
        self._thread.join()
        now = _memory()
        for key, value in now.items():
            self.peak[key] = max(self.peak[key], value)
        return {
            "extra_anon_mb": (self.peak["RssAnon"] - self.before["RssAnon"]) / 1024,
            "extra_file_mb": (self.peak["RssFile"] - self.before["RssFile"]) / 1024,
        }


def child_ours(path: str) -> dict[str, float]:
    from netexplorer.core.display import tensor_stats
    from netexplorer.core.sources import open_source

    values = open_source(path).tensors["w"].handle.array()
    memory = PeakMemory().start()
    start = time.perf_counter()
    stats = tensor_stats(values, bins=BINS)
    seconds = time.perf_counter() - start
    out = memory.stop()
    assert stats.histogram is not None and stats.count == values.size
    return {"seconds": seconds, **out}


def child_numpy(path: str) -> dict[str, float]:
    import numpy as np

    from netexplorer.core.sources.safetensors import read_header

    header = read_header(path)
    entry = header.entries[0]
    values = np.memmap(
        path, dtype="<f4", mode="r", offset=header.data_start + entry.begin, shape=entry.shape
    )
    memory = PeakMemory().start()
    start = time.perf_counter()
    result = (values.min(), values.max(), values.mean(), values.std(), np.histogram(values, BINS))
    seconds = time.perf_counter() - start
    out = memory.stop()
    assert result[4][0].sum() == values.size
    return {"seconds": seconds, **out}


def child_display(path: str) -> dict[str, float]:
    from netexplorer.core.display import display_array
    from netexplorer.core.sources import open_source

    values = open_source(path).tensors["w"].handle.array()
    memory = PeakMemory().start()
    start = time.perf_counter()
    shown = display_array(values)
    seconds = time.perf_counter() - start
    out = memory.stop()
    assert max(shown.data.shape) <= 1024
    return {"seconds": seconds, **out}


CHILDREN = {"ours": child_ours, "numpy": child_numpy, "display": child_display}


def run_child(name: str, path: Path) -> dict[str, float]:
    return common.run_child(__file__, name, str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--elements", type=int, default=200_000_000)
    parser.add_argument("--keep", type=Path, help="write the file here and keep it")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](args.child[1])))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="netexplorer-huge-"))
    path = folder / f"huge-{args.elements}.safetensors"
    try:
        if not path.exists():
            print(f"writing {path} ({4 * args.elements / 1e6:,.0f} MB) ...", flush=True)
            write_file(path, args.elements)
        read_through(path)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in CHILDREN}
        for _ in range(args.runs):
            for name in CHILDREN:
                results[name].append(run_child(name, path))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    note = f"{args.elements:,} float32 values ({4 * args.elements / 1e6:,.0f} MB), page cache warm"
    print(f"\nmedians of {args.runs} runs, each in a fresh interpreter; {note}")
    ours, peer = median("ours", "seconds"), median("numpy", "seconds")
    figure(
        "huge_tensor",
        "statistics + 64-bin histogram",
        ours,
        "s",
        floor_name="numpy min/max/mean/std/histogram on np.memmap",
        floor=peer,
        target=f"<= {TARGET_RATIO:.0f}x numpy",
        ok=ours <= TARGET_RATIO * peer,
        note=note,
    )
    extra, extra_peer = median("ours", "extra_anon_mb"), median("numpy", "extra_anon_mb")
    figure(
        "huge_tensor",
        "statistics: peak extra memory (anonymous)",
        extra,
        "MB",
        floor_name="numpy's",
        floor=extra_peer,
        target=f"< {TARGET_EXTRA_MB:.0f} MB",
        ok=extra < TARGET_EXTRA_MB,
    )
    pages = median("ours", "extra_file_mb"), median("numpy", "extra_file_mb")
    print(
        f"  the file's pages read into RSS (page cache, both alike): ours {pages[0]:,.0f} MB, "
        f"numpy {pages[1]:,.0f} MB"
    )
    figure(
        "huge_tensor",
        "display array (1,000 x 1,000 block extremes)",
        median("display", "seconds"),
        "s",
        note=f"peak extra memory {median('display', 'extra_anon_mb'):,.0f} MB",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
