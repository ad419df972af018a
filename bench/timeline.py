"""Benchmark (not a test): a training run of 20 checkpoints of a 105 MB model (GPT-2-like,
26M fp32 parameters), saved as Hugging Face Trainer saves them (`checkpoint-N/` folders with
`model.safetensors` and `trainer_state.json`), 2.1 GB in all.

    .venv/bin/python bench/timeline.py [--runs N] [--keep DIR]

Writes the run in a temporary folder (deleted afterwards; `--keep DIR` writes it there and
keeps it for reuse), then prints medians over N rounds, each figure measured in a fresh
interpreter (page cache warm, interpreter cold), the rounds interleaved, of:

- opening the run (`open_source` of the folder: every checkpoint's header and trainer state,
  the union tree, the order), after the imports, against two floors: reading every header
  with the safetensors library (`safe_open` and every key's shape) and every
  `trainer_state.json`, and the least that lists the run (every header's JSON parsed); their
  ratios (target within 1.5x);
- the movement of every tensor (`iter_movement`: relative change and statistics per
  checkpoint), against two floors: every byte of every checkpoint read once with numpy
  (`np.fromfile` of each file), and the bare copy from the page cache (`readinto` one
  reused numpy buffer); their ratios (target within 1.5x);
- in the window (offscreen, already up, the run open and its movement measured): from a
  press of `[` (the previous checkpoint) until the heatmap of the 6000x768 embedding at that
  checkpoint has been painted: steady stepping (the neighbour read ahead while the last
  step was looked at) and cold jumps (End and Home on the slider with nothing read ahead);
  target under 150 ms;
- memory growth (resident set) from before opening to after the movement and stepping
  through all 20 checkpoints, and how much of it is private (anonymous) memory and how much
  file pages still mapped; target under 200 MB.
"""

from __future__ import annotations

import time

START = time.perf_counter()  # first statement: child figures count from interpreter start

import argparse  # noqa: E402
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
from report import figure  # noqa: E402

CHECKPOINTS = 20
STEPS_APART = 500
EMBEDDING = "wte.weight"
TARGET_RATIO = 1.5
TARGET_STEP_SECONDS = 0.150
TARGET_GROWTH_MB = 200.0


# -- the run ----------------------------------------------------------------------------------


def model_shapes() -> dict[str, tuple[int, ...]]:
    """A small GPT-2: width 768, a 6000-token vocabulary, 3 blocks (26,266,368 parameters)."""
    return common.gpt2_shapes(width=768, vocab=6000, context=512, blocks=3)


def write_run(folder: Path) -> None:
    """20 checkpoint folders; each step moves every tensor a little (less as training goes)."""
    import numpy as np

    shapes = model_shapes()
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
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(0)
    model = {
        name: rng.standard_normal(shape, dtype=np.float32) * 0.02 for name, shape in shapes.items()
    }
    for i in range(CHECKPOINTS):
        step = (i + 1) * STEPS_APART
        checkpoint = folder / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True, exist_ok=True)
        with open(checkpoint / "model.safetensors", "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            for values in model.values():
                values += rng.standard_normal(values.shape, dtype=np.float32) * (0.002 / (i + 1))
                f.write(values.tobytes())
        state = {"global_step": step, "epoch": float(i + 1), "log_history": []}
        (checkpoint / "trainer_state.json").write_text(json.dumps(state))


# -- measurements (each runs in a fresh child process) ----------------------------------------


def memory_mb() -> dict[str, float]:
    """Resident memory of this process: all, private (anonymous) and file pages (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def growth(before: dict[str, float]) -> dict[str, float]:
    after = memory_mb()
    return {
        "growth_mb": after["VmRSS"] - before["VmRSS"],
        "anon_mb": after["RssAnon"] - before["RssAnon"],
        "file_mb": after["RssFile"] - before["RssFile"],
    }


def checkpoint_files(folder: str) -> list[Path]:
    return sorted(Path(folder).glob("checkpoint-*/model.safetensors"))


def measure_core_open(folder: str) -> dict[str, float]:
    """`open_source` of the run folder, after the imports."""
    from netexplorer.core.sources import open_source

    before = memory_mb()
    start = time.perf_counter()
    tree = open_source(folder)
    seconds = time.perf_counter() - start
    assert len(tree.run) == CHECKPOINTS and EMBEDDING in tree.tensors
    return {"seconds": seconds, "from_start": time.perf_counter() - START, **growth(before)}


def measure_floor_headers(folder: str) -> dict[str, float]:
    """Every checkpoint's header with the safetensors library, and its trainer state."""
    from safetensors import safe_open

    start = time.perf_counter()
    shapes = []
    for path in checkpoint_files(folder):
        with safe_open(str(path), framework="np") as f:
            shapes.append({key: f.get_slice(key).get_shape() for key in f.keys()})  # noqa: SIM118
        with open(path.parent / "trainer_state.json") as f:
            json.load(f)
    seconds = time.perf_counter() - start
    assert len(shapes) == CHECKPOINTS
    return {"seconds": seconds, "from_start": time.perf_counter() - START}


def measure_floor_json_headers(folder: str) -> dict[str, float]:
    """The least that lists a run: every header's JSON parsed, every trainer state."""
    start = time.perf_counter()
    headers = []
    for path in checkpoint_files(folder):
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            headers.append(json.loads(f.read(length)))
        with open(path.parent / "trainer_state.json") as f:
            json.load(f)
    seconds = time.perf_counter() - start
    assert len(headers) == CHECKPOINTS
    return {"seconds": seconds}


def measure_core_movement(folder: str) -> dict[str, float]:
    """The movement of every tensor over the run (opened first, not timed)."""
    from netexplorer.core.movement import iter_movement
    from netexplorer.core.sources import open_source
    from netexplorer.core.tasks import run_to_end

    before = memory_mb()
    run = open_source(folder).run
    start = time.perf_counter()
    table = run_to_end(iter_movement(run))
    seconds = time.perf_counter() - start
    assert len(table.tensors) == len(run.paths)
    return {"seconds": seconds, **growth(before)}


def measure_floor_fromfile(folder: str) -> dict[str, float]:
    """Every byte of every checkpoint read once with numpy (`np.fromfile`)."""
    import numpy as np

    start = time.perf_counter()
    total = sum(np.fromfile(path, dtype=np.uint8).size for path in checkpoint_files(folder))
    seconds = time.perf_counter() - start
    assert total > CHECKPOINTS * 100e6
    return {"seconds": seconds}


def measure_floor_readinto(folder: str) -> dict[str, float]:
    """The bare copy: every checkpoint read into one reused 1 MB numpy buffer."""
    import numpy as np

    buffer = np.empty(1 << 20, dtype=np.uint8)
    start = time.perf_counter()
    total = 0
    for path in checkpoint_files(folder):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                total += n
    seconds = time.perf_counter() - start
    assert total > CHECKPOINTS * 100e6
    return {"seconds": seconds}


def measure_window_steps(folder: str) -> dict[str, float]:
    """In a window already up: `[` pressed until the embedding at that checkpoint is
    painted; steady (read ahead) and cold (End/Home with nothing read ahead)."""
    import os

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QEvent, QObject, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from netexplorer.ui.app import make_app
    from netexplorer.ui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.resize(1640, 980)
    window.show()
    window.wait_idle(60_000)
    before = memory_mb()
    window.open_source_now(folder)
    window.document.select(EMBEDDING)
    if not window.wait_idle(120_000):  # the movement measured, the heatmap drawn
        raise RuntimeError("the window did not settle")
    timeline = window.document.timeline
    assert timeline.movement is not None
    panel = window.heatmap_panel
    painted: list[float] = []

    class PaintWatch(QObject):
        def eventFilter(self, _obj, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                painted.append(time.perf_counter())
            return False

    watch = PaintWatch()
    panel.view.viewport().installEventFilter(watch)

    def step_time(press: Callable[[], None], step: int) -> float:
        painted.clear()
        start = time.perf_counter()
        press()
        expected = timeline.run.handle(EMBEDDING, step)

        def drawn() -> bool:
            data = panel.loaded
            return (
                data is not None
                and data.path == EMBEDDING
                and panel.view.display is data.display
                and data.values.base is not None
                and timeline.step == step
                and expected.array()[0, 0] == data.values[0, 0]
                and any(t >= start for t in painted)
            )

        deadline = time.perf_counter() + 30
        while not drawn():
            if time.perf_counter() > deadline:
                raise RuntimeError(f"step {step} was not drawn")
            app.processEvents()
            time.sleep(0.001)
        return time.perf_counter() - start

    def key(name: Qt.Key, target=None) -> Callable[[], None]:
        return lambda: QTest.keyClick(target or window.tree_panel.view, name)

    window.activateWindow()
    window.tree_panel.view.setFocus()
    steady, hits = [], 0
    for step in range(CHECKPOINTS - 2, -1, -1):
        window.wait_idle(30_000)  # the neighbour read ahead while this one is looked at
        before_hits = window.document.prefetch.hits
        steady.append(step_time(key(Qt.Key.Key_BracketLeft), step))
        hits += window.document.prefetch.hits - before_hits
    cold = []
    slider = window.timeline_panel.slider
    for target in (CHECKPOINTS - 1, 0) * 3:
        window.wait_idle(30_000)
        window.document.prefetch.clear()
        name = Qt.Key.Key_End if target else Qt.Key.Key_Home
        cold.append(step_time(key(name, slider), target))
    figures = {
        "steady_ms": statistics.median(steady) * 1000,
        "steady_max_ms": max(steady) * 1000,
        "read_ahead_hits": hits,
        "steady_steps": len(steady),
        "cold_ms": statistics.median(cold) * 1000,
        "cold_max_ms": max(cold) * 1000,
        **growth(before),
    }
    window.close()
    QApplication.processEvents()
    return figures


MEASUREMENTS: dict[str, Callable[[str], dict[str, float]]] = {
    "core_open": measure_core_open,
    "floor_headers": measure_floor_headers,
    "floor_json_headers": measure_floor_json_headers,
    "core_movement": measure_core_movement,
    "floor_fromfile": measure_floor_fromfile,
    "floor_readinto": measure_floor_readinto,
    "window_steps": measure_window_steps,
}


def run_child(measurement: str, folder: Path) -> dict[str, float]:
    return common.run_child(__file__, measurement, str(folder))


def median_figures(folder: Path, runs: int) -> dict[str, dict[str, float]]:
    """Medians over `runs` rounds, each running every measurement once, interleaved, so that
    drift of a shared machine hits all figures alike. A first round warms the page cache."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in MEASUREMENTS}
    for round_ in range(runs + 1):
        for name in MEASUREMENTS:
            figures = run_child(name, folder)
            if round_:
                results[name].append(figures)
        print(f"  round {round_} done", flush=True)
    return {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in results.items()
    }


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def line(label: str, value: str, target: str = "", ok: bool | None = None) -> None:
    check = "" if ok is None else f"   target {target}: {verdict(ok)}"
    print(f"  {label:<38}{value}{check}")


def report(folder: Path, runs: int) -> None:
    size = sum(p.stat().st_size for p in checkpoint_files(str(folder))) / 1e9
    print(f"run: {CHECKPOINTS} checkpoints of {size / CHECKPOINTS * 1000:.0f} MB ({size:.2f} GB)")
    f = median_figures(folder, runs)
    print(f"\nmedians of {runs} rounds, each figure in a fresh interpreter (page cache warm)")
    core, floor = f["core_open"], f["floor_headers"]
    ratio = core["seconds"] / floor["seconds"]
    print("\nopening the run (after the imports)")
    line("core: open_source(folder)", f"{core['seconds'] * 1000:.1f} ms")
    line("floor: every header and state", f"{floor['seconds'] * 1000:.1f} ms")
    line("ratio", f"{ratio:.2f}x", f"< {TARGET_RATIO}x", ratio <= TARGET_RATIO)
    bare = f["floor_json_headers"]
    ratio = core["seconds"] / bare["seconds"]
    line("floor: every header's JSON parsed", f"{bare['seconds'] * 1000:.1f} ms (the least)")
    line("ratio (to the least: no target)", f"{ratio:.2f}x")
    line(
        "from interpreter start",
        f"core {core['from_start']:.3f} s, floor {floor['from_start']:.3f} s",
    )
    move = f["core_movement"]
    fromfile, readinto = f["floor_fromfile"], f["floor_readinto"]
    r1, r2 = move["seconds"] / fromfile["seconds"], move["seconds"] / readinto["seconds"]
    print("\nthe movement of every tensor (every byte of the run read once)")
    line("core: iter_movement", f"{move['seconds']:.3f} s")
    line("floor: np.fromfile of every file", f"{fromfile['seconds']:.3f} s")
    line("ratio", f"{r1:.2f}x", f"< {TARGET_RATIO}x", r1 <= TARGET_RATIO)
    line("floor: readinto one buffer", f"{readinto['seconds']:.3f} s (the bare copy)")
    line("ratio (to the bare copy: no target)", f"{r2:.2f}x")
    line(
        "memory growth, open + movement",
        f"{move['growth_mb']:.1f} MB (private {move['anon_mb']:.1f}, file {move['file_mb']:.1f})",
    )
    figure(
        "timeline",
        f"run of {CHECKPOINTS} checkpoints: open",
        core["seconds"],
        "s",
        floor_name="every header and trainer state",
        floor=floor["seconds"],
        target=f"<= {TARGET_RATIO}x floor",
        ok=core["seconds"] <= TARGET_RATIO * floor["seconds"],
    )
    figure(
        "timeline",
        f"run of {CHECKPOINTS} checkpoints: movement of every tensor",
        move["seconds"],
        "s",
        floor_name="np.fromfile of every file",
        floor=fromfile["seconds"],
        target=f"<= {TARGET_RATIO}x floor",
        ok=move["seconds"] <= TARGET_RATIO * fromfile["seconds"],
    )
    w = f["window_steps"]
    target = TARGET_STEP_SECONDS * 1000
    figure(
        "timeline",
        "slider step to the 6000x768 embedding painted",
        w["steady_ms"],
        "ms",
        target=f"< {target:.0f} ms",
        ok=w["steady_ms"] <= target,
    )
    figure(
        "timeline",
        f"memory growth: open, movement, {CHECKPOINTS + 5} steps",
        w["growth_mb"],
        "MB",
        target=f"< {TARGET_GROWTH_MB:.0f} MB",
        ok=w["growth_mb"] <= TARGET_GROWTH_MB,
    )
    print("\nslider step -> the 6000x768 embedding painted (window already up)")
    line(
        "steady ([ pressed, read ahead)",
        f"{w['steady_ms']:.1f} ms (max {w['steady_max_ms']:.1f}; "
        f"{w['read_ahead_hits']:.0f} of {w['steady_steps']:.0f} read ahead)",
        f"< {target:.0f} ms",
        w["steady_ms"] <= target,
    )
    line(
        "cold (End/Home, nothing ahead)",
        f"{w['cold_ms']:.1f} ms (max {w['cold_max_ms']:.1f})",
        f"< {target:.0f} ms",
        w["cold_ms"] <= target,
    )
    line(
        f"memory, open + movement + {CHECKPOINTS + 5} steps",
        f"{w['growth_mb']:.1f} MB (private {w['anon_mb']:.1f}, file {w['file_mb']:.1f})",
        f"< {TARGET_GROWTH_MB:.0f} MB",
        w["growth_mb"] <= TARGET_GROWTH_MB,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="write the run here and keep it")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, folder = args.child
        print(json.dumps(MEASUREMENTS[name](folder)))
        return 0
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="netexplorer-run-"))
    try:
        if not checkpoint_files(str(folder)):
            print(f"writing the run to {folder} ...", flush=True)
            write_run(folder)
        report(folder, args.runs)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
