"""Benchmark (not a test): opening a GPT-2-medium-shaped checkpoint (355M fp32 parameters,
1.4 GB) as safetensors and as a torch zip file.

    .venv/bin/python bench/open.py [--runs N] [--keep DIR]

Makes the two files in a temporary folder (deleted afterwards; `--keep DIR` writes them there
and keeps them for reuse), then prints medians over N runs, each run in a fresh interpreter
(page cache warm, interpreter cold), of:

- time until the tree is ready in the core (`open_source`), counted from interpreter start
  (imports included), against the floor: `safe_open` plus every key's shape, and
  `torch.load(mmap=True, weights_only=True)` (whose `import torch` alone is about 1.4 s:
  netexplorer reads plain torch zip files without torch, core/sources/torch_zip.py); their
  ratio;
- resident memory growth until the tree is ready, before any tensor is shown;
- time to the heatmap data of the 50257x1024 embedding: `display_array(handle.array())`;
- the same in the window shown offscreen: what `netexplorer FILE` does until the tree view
  has painted the tree, counted from interpreter start (Qt and the window included; the
  plotting panels follow, their time is printed too); File > Open of the file in a window
  already up, from the request to the tree; and from `document.select(embedding)` until the
  heatmap panel has it and its view has painted.

Targets: within 1.5x of the floor, under 1 s to a usable tree, under 150 MB growth, under
150 ms to the heatmap (data, and drawn in the window). Each figure is one `measure_*`
function run in a child process (listed in MEASUREMENTS).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # first statement: child figures count from interpreter start

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
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

EMBEDDING = "wte.weight"
TARGET_RATIO = 1.5
TARGET_TREE_SECONDS = 1.0
TARGET_GROWTH_MB = 150.0
TARGET_HEATMAP_SECONDS = 0.150


# -- the checkpoint -------------------------------------------------------------------------


def gpt2_medium_shapes() -> dict[str, tuple[int, ...]]:
    """GPT-2 medium's parameters, with Hugging Face's names (354,823,168 in all)."""
    return common.gpt2_shapes(width=1024, vocab=50257, context=1024, blocks=24)


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Written tensor by tensor (the header first), never holding the whole model."""
    import numpy as np

    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = 4 * int(np.prod(shape))
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for shape in shapes.values():
            f.write((rng.standard_normal(shape, dtype=np.float32) * 0.02).tobytes())


def write_torch_zip(path: Path, safetensors_path: Path) -> None:
    """torch.save of tensors mapped from the safetensors file (copy-on-write: the source is
    never written), so the model is streamed through the page cache, not held in memory."""
    import torch

    from netexplorer.core.sources.safetensors import handles_of, read_header

    handles = handles_of(read_header(str(safetensors_path)))
    torch.save({name: h.torch_tensor() for name, h in handles.items()}, str(path))


def make_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"safetensors": folder / "gpt2-medium.safetensors", "torch": folder / "gpt2-medium.pt"}
    if not files["safetensors"].exists():
        print(f"writing {files['safetensors']} ...", flush=True)
        write_safetensors(files["safetensors"], gpt2_medium_shapes())
    if not files["torch"].exists():
        print(f"writing {files['torch']} ...", flush=True)
        write_torch_zip(files["torch"], files["safetensors"])
    return files


# -- measurements (each runs in a fresh child process) ----------------------------------------


def measure_core_open(path: str) -> dict[str, float]:
    """netexplorer's core: `open_source` until the tree is ready (imports included)."""
    before = rss_mb()
    from netexplorer.core.sources import open_source

    tree = open_source(path)
    seconds = time.perf_counter() - START
    assert EMBEDDING in tree.tensors
    return {
        "seconds": seconds,
        "growth_mb": rss_mb() - before,
        "torch_imported": float("torch" in sys.modules),
    }


def measure_floor_safetensors(path: str) -> dict[str, float]:
    """The floor for safetensors: `safe_open` and every key's shape (no torch)."""
    before = rss_mb()
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}  # noqa: SIM118
    seconds = time.perf_counter() - START
    assert EMBEDDING in shapes
    return {"seconds": seconds, "growth_mb": rss_mb() - before}


def measure_floor_torch(path: str) -> dict[str, float]:
    """The floor for torch files: `torch.load(mmap=True, weights_only=True)`."""
    before = rss_mb()
    import torch

    state = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    seconds = time.perf_counter() - START
    assert EMBEDDING in state
    return {"seconds": seconds, "growth_mb": rss_mb() - before}


def measure_import_torch(path: str) -> dict[str, float]:
    """How much of a torch file's figures is `import torch` alone."""
    before = rss_mb()
    import torch  # noqa: F401

    return {"seconds": time.perf_counter() - START, "growth_mb": rss_mb() - before}


def measure_heatmap(path: str) -> dict[str, float]:
    """Selecting the embedding: its values and display array (reduced to the display size)."""
    from netexplorer.core.display import display_array
    from netexplorer.core.sources import open_source

    handle = open_source(path).tensors[EMBEDDING].handle
    before = rss_mb()
    start = time.perf_counter()
    shown = display_array(handle.array())
    seconds = time.perf_counter() - start
    assert shown.data.shape[0] <= 1024
    return {"seconds": seconds, "growth_mb": rss_mb() - before}


def offscreen_window(show: bool = True):
    """A MainWindow on Qt's offscreen platform (shown unless `show` is False); recent files
    go to a temporary settings file, not the user's."""
    import os

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings

    from netexplorer.ui import opening
    from netexplorer.ui.app import make_app
    from netexplorer.ui.main_window import MainWindow

    folder = tempfile.mkdtemp(prefix="netexplorer-bench-")
    atexit.register(shutil.rmtree, folder, True)
    settings = os.path.join(folder, "settings.ini")
    opening.app_settings = lambda: QSettings(settings, QSettings.Format.IniFormat)
    app = make_app()
    window = MainWindow()
    window.resize(1640, 980)
    if show:
        window.show()
    return app, window


def process_events_until(done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run the event loop, as the app does (idle in Qt's dispatcher, not spinning on the
    GIL that the workers need), checking `done` every millisecond."""
    from netexplorer.ui.workers import run_until

    if not run_until(done, int(timeout * 1000), poll_ms=1):
        raise TimeoutError("the window did not get there in time")


def close_window(window) -> None:
    from netexplorer.ui.workers import wait_for_workers

    window.close()
    wait_for_workers()


def measure_window_open(path: str) -> dict[str, float]:
    """`netexplorer FILE` in the window, shown offscreen: what `run_app` does (the tree is
    opened, the window made and shown) until the tree view has painted the tree, counted
    from interpreter start; memory growth until then. Then, in that window once its panels
    are built, File > Open of the same file: from the request (a worker, as the menu does)
    until the document has the new tree."""
    from PySide6.QtCore import QEvent, QObject

    from netexplorer.core.sources import open_source

    before = rss_mb()
    _app, window = offscreen_window(show=False)
    window.set_tree(open_source(path))
    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj, event) -> bool:
            if event.type() == QEvent.Type.Paint and not painted:
                painted.append(time.perf_counter() - START)
            return False

    watch = PaintWatch()
    window.tree_panel.view.viewport().installEventFilter(watch)
    window.show()
    process_events_until(lambda: bool(painted))
    growth = rss_mb() - before  # before the first tensor's values arrive
    assert EMBEDDING in window.document.tree.tensors
    process_events_until(lambda: window.panels_built)
    panels = time.perf_counter() - START
    window.wait_idle(60_000)
    ready: list[float] = []
    window.document.tree_changed.connect(lambda _tree: ready.append(time.perf_counter()))
    start = time.perf_counter()
    window.open_source(path)
    process_events_until(lambda: bool(ready))
    close_window(window)
    return {
        "seconds": painted[0],
        "growth_mb": growth,
        "panels": panels,
        "file_open": ready[0] - start,
    }


def measure_window_heatmap(path: str) -> dict[str, float]:
    """The window, shown offscreen: from `document.select(embedding)` until the heatmap
    panel shows it and its view has painted since."""
    from PySide6.QtCore import QEvent, QObject

    _app, window = offscreen_window()
    window.open_source_now(path)
    window.document.select("ln_f.bias")  # away from the first tensor (the embedding)
    window.wait_idle(60_000)
    panel = window.heatmap_panel
    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                painted.append(time.perf_counter())
            return False

    watch = PaintWatch()
    panel.view.viewport().installEventFilter(watch)
    shown: list[float] = []  # when the panel had the embedding (it is connected first)
    window.document.tensor_data_changed.connect(
        lambda data: (
            shown.append(time.perf_counter())
            if data is not None and data.path == EMBEDDING
            else None
        )
    )
    start = time.perf_counter()
    window.document.select(EMBEDDING)

    def drawn() -> bool:
        data = panel.loaded
        return (
            bool(shown)
            and data is not None
            and panel.view.display is data.display
            and any(t >= shown[0] for t in painted)
        )

    process_events_until(drawn)  # returns once that paint has finished
    seconds = time.perf_counter() - start
    assert panel.view.image.image.shape[0] <= 1024
    close_window(window)
    return {"seconds": seconds, "growth_mb": 0.0}


MEASUREMENTS: dict[str, Callable[[str], dict[str, float]]] = {
    "core_open": measure_core_open,
    "floor_safetensors": measure_floor_safetensors,
    "floor_torch": measure_floor_torch,
    "import_torch": measure_import_torch,
    "heatmap": measure_heatmap,
    "window_open": measure_window_open,
    "window_heatmap": measure_window_heatmap,
}


def run_child(measurement: str, path: Path) -> dict[str, float]:
    return common.run_child(__file__, measurement, str(path))


def median_figures(jobs: list[tuple[str, Path]], runs: int) -> dict[tuple[str, Path], dict]:
    """Medians over `runs` rounds; each round runs every job once, interleaved, so drift of a
    shared machine hits all figures alike. A first round warms the page cache."""
    results: dict[tuple[str, Path], list[dict[str, float]]] = {job: [] for job in jobs}
    for round_ in range(runs + 1):
        for job in jobs:
            figures = run_child(*job)
            if round_:
                results[job].append(figures)
    return {
        job: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for job, rs in results.items()
    }


# -- report ---------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"


def report(files: dict[str, Path], runs: int) -> None:
    floors = {"safetensors": "floor_safetensors", "torch": "floor_torch"}
    jobs = [("import_torch", files["torch"])]
    for kind, path in files.items():
        jobs += [("core_open", path), (floors[kind], path), ("heatmap", path)]
        jobs += [("window_open", path), ("window_heatmap", path)]
    figures = median_figures(jobs, runs)
    print(f"\nmedians of {runs} runs, each in a fresh interpreter (page cache warm)")
    torch_import = figures[("import_torch", files["torch"])]
    print(
        f"  import torch alone: {torch_import['seconds']:.3f} s, "
        f"{torch_import['growth_mb']:.0f} MB (part of every torch-file figure)"
    )
    for kind, path in files.items():
        core = figures[("core_open", path)]
        floor = figures[(floors[kind], path)]
        heat = figures[("heatmap", path)]
        ratio = core["seconds"] / floor["seconds"]
        print(f"\n{kind} ({path.name}, {path.stat().st_size / 1e9:.2f} GB)")
        print(
            f"  tree ready (core)        {core['seconds']:.3f} s   target < "
            f"{TARGET_TREE_SECONDS} s: {verdict(core['seconds'], TARGET_TREE_SECONDS)}   "
            f"(torch imported: {'yes' if core['torch_imported'] else 'no'})"
        )
        print(f"  floor ({floors[kind]}) {floor['seconds']:.3f} s")
        print(
            f"  ratio core / floor       {ratio:.2f}x    target < {TARGET_RATIO}x: "
            f"{verdict(ratio, TARGET_RATIO)}"
        )
        print(
            f"  memory growth (core)     {core['growth_mb']:.0f} MB (floor "
            f"{floor['growth_mb']:.0f} MB)   target < {TARGET_GROWTH_MB:.0f} MB: "
            f"{verdict(core['growth_mb'], TARGET_GROWTH_MB)}"
        )
        print(
            f"  heatmap data {EMBEDDING}  {heat['seconds'] * 1000:.0f} ms (memory "
            f"+{heat['growth_mb']:.0f} MB)   target < {TARGET_HEATMAP_SECONDS * 1000:.0f} ms: "
            f"{verdict(heat['seconds'], TARGET_HEATMAP_SECONDS)}"
        )
        window = figures[("window_open", path)]
        drawn = figures[("window_heatmap", path)]
        print(
            f"  tree painted (window)    {window['seconds']:.3f} s   target < "
            f"{TARGET_TREE_SECONDS} s: {verdict(window['seconds'], TARGET_TREE_SECONDS)}   "
            f"(`netexplorer FILE`; {window['seconds'] / floor['seconds']:.2f}x the floor; "
            f"memory +{window['growth_mb']:.0f} MB with Qt; plotting panels ready at "
            f"{window['panels']:.3f} s)"
        )
        print(
            f"  File > Open (window)     {window['file_open']:.3f} s   "
            "(request -> tree, in a window already up)"
        )
        print(
            f"  heatmap drawn (window)   {drawn['seconds'] * 1000:.0f} ms    target < "
            f"{TARGET_HEATMAP_SECONDS * 1000:.0f} ms: "
            f"{verdict(drawn['seconds'], TARGET_HEATMAP_SECONDS)}   "
            f"(select -> the panel has it -> its view painted)"
        )
        what = f"GPT-2-medium {kind} (1.4 GB)"
        figure(
            "open",
            f"{what}: tree ready (core, from interpreter start)",
            core["seconds"],
            "s",
            floor_name=floors[kind],
            floor=floor["seconds"],
            target=f"< {TARGET_TREE_SECONDS} s, <= {TARGET_RATIO}x",
            ok=core["seconds"] < TARGET_TREE_SECONDS and ratio < TARGET_RATIO,
        )
        figure(
            "open",
            f"{what}: memory growth to the tree",
            core["growth_mb"],
            "MB",
            target=f"< {TARGET_GROWTH_MB:.0f} MB",
            ok=core["growth_mb"] < TARGET_GROWTH_MB,
        )
        figure(
            "open",
            f"{what}: heatmap drawn in the window ({EMBEDDING})",
            drawn["seconds"],
            "s",
            target=f"< {TARGET_HEATMAP_SECONDS * 1000:.0f} ms",
            ok=drawn["seconds"] < TARGET_HEATMAP_SECONDS,
        )
        figure(
            "open",
            f"{what}: `netexplorer FILE` to the tree painted (from interpreter start)",
            window["seconds"],
            "s",
            target=f"< {TARGET_TREE_SECONDS} s",
            ok=window["seconds"] < TARGET_TREE_SECONDS,
            note=f"plotting panels ready at {window['panels']:.3f} s",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", nargs=2, metavar=("MEASUREMENT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measurement, path = args.child
        print(json.dumps(MEASUREMENTS[measurement](path)))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="netexplorer-bench-"))
    try:
        report(make_files(folder), args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
