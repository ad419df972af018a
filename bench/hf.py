"""Benchmark (not a test): a GPT-2-medium-shaped Hugging Face folder (config.json and
model.safetensors, 355M fp32 parameters, 1.42 GB; random init, save_pretrained).

    .venv/bin/python bench/hf.py [--runs N] [--keep DIR]

Makes the folder in a temporary directory (deleted afterwards; `--keep DIR` keeps it for
reuse), then prints medians over N runs, each in a fresh interpreter (page cache warm), of
three stages, each against its floor measured in the same run, counted from interpreter start:

- the tree from the headers (`open_source` of the folder) against `safe_open` of every header
  and every key's shape; neither torch nor transformers may be imported (target: within
  1.5x, and never waiting for transformers' import);
- the architecture from config.json (the header tree, then `refine_with_architecture`: the
  model class built on the meta device, the file's keys mapped onto it) against
  `AutoConfig.from_pretrained` + `AutoModelForCausalLM.from_config` on the meta device
  (target: within 1.2x);
- live (`hf_live.load_live`: from_pretrained, the loading report, the tree, the model's
  inputs) against `AutoModelForCausalLM.from_pretrained` (target: within 1.2x).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # first statement: child figures count from interpreter start

import argparse  # noqa: E402
import json  # noqa: E402
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
from report import figure  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET_HEADERS = 1.5
TARGET_ARCHITECTURE = 1.2
TARGET_LIVE = 1.2


def make_folder(folder: Path) -> Path:
    """GPT-2 medium's shape (1024 wide, 24 layers, 16 heads, 50257 tokens), random init."""
    target = folder / "gpt2-medium"
    if (target / "model.safetensors").exists():
        return target
    import torch
    import transformers

    print(f"writing {target} ...", flush=True)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=1024, n_layer=24, n_head=16)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.GPT2LMHeadModel(config).save_pretrained(target)
    return target


# -- measurements (each runs in a fresh child process) --------------------------------------


def measure_headers(folder: str) -> dict[str, float]:
    from netexplorer.core.sources import open_source

    tree = open_source(folder)
    seconds = time.perf_counter() - START
    assert "transformer.wte.weight" in tree.tensors
    return {
        "seconds": seconds,
        "torch_imported": float("torch" in sys.modules),
        "transformers_imported": float("transformers" in sys.modules),
    }


def measure_floor_headers(folder: str) -> dict[str, float]:
    from safetensors import safe_open

    with safe_open(os.path.join(folder, "model.safetensors"), framework="np") as f:
        shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}  # noqa: SIM118
    seconds = time.perf_counter() - START
    assert "transformer.wte.weight" in shapes
    return {"seconds": seconds}


def measure_architecture(folder: str) -> dict[str, float]:
    from netexplorer.core.sources import open_source
    from netexplorer.core.sources.hf_architecture import refine_with_architecture

    headers = open_source(folder)
    at_headers = time.perf_counter() - START
    tree = refine_with_architecture(headers)
    seconds = time.perf_counter() - START
    assert tree.structure is not None and tree.tie_group("lm_head.weight") is not None
    return {"seconds": seconds, "headers": at_headers}


def measure_floor_architecture(folder: str) -> dict[str, float]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    seconds = time.perf_counter() - START
    assert model.lm_head.weight is model.transformer.wte.weight
    return {"seconds": seconds}


def measure_live(folder: str) -> dict[str, float]:
    from netexplorer.core.hf_live import load_live

    tree = load_live(folder)
    seconds = time.perf_counter() - START
    assert tree.is_live and tree.metadata["weights_report"]["tied"]
    return {"seconds": seconds}


def measure_floor_live(folder: str) -> dict[str, float]:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(folder)
    seconds = time.perf_counter() - START
    assert model.lm_head.weight is model.transformer.wte.weight
    return {"seconds": seconds}


def measure_import_transformers(folder: str) -> dict[str, float]:
    import torch  # noqa: F401
    import transformers  # noqa: F401

    return {"seconds": time.perf_counter() - START}


MEASUREMENTS: dict[str, Callable[[str], dict[str, float]]] = {
    "headers": measure_headers,
    "floor_headers": measure_floor_headers,
    "architecture": measure_architecture,
    "floor_architecture": measure_floor_architecture,
    "live": measure_live,
    "floor_live": measure_floor_live,
    "import_transformers": measure_import_transformers,
}


def run_child(measurement: str, folder: Path) -> dict[str, float]:
    return common.run_child(__file__, measurement, str(folder))


def median_figures(folder: Path, runs: int) -> dict[str, dict[str, float]]:
    """Medians over `runs` rounds, every measurement once per round, interleaved (drift of a
    shared machine hits all alike); a first round warms the page cache."""
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


def report(folder: Path, runs: int) -> None:
    size = (folder / "model.safetensors").stat().st_size / 1e9
    figures = median_figures(folder, runs)
    print(f"\n{folder.name} ({size:.2f} GB); medians of {runs} fresh interpreters")
    print(f"  import torch + transformers alone: {figures['import_transformers']['seconds']:.3f} s")
    rows = (
        ("tree from the headers", "headers", "floor_headers", TARGET_HEADERS, "safe_open"),
        (
            "architecture from config",
            "architecture",
            "floor_architecture",
            TARGET_ARCHITECTURE,
            "from_config on meta",
        ),
        ("live", "live", "floor_live", TARGET_LIVE, "from_pretrained"),
    )
    for label, core, floor, target, floor_label in rows:
        ours, base = figures[core]["seconds"], figures[floor]["seconds"]
        figure(
            "hf",
            f"GPT-2-medium-shaped folder: {label}",
            ours,
            "s",
            floor_name=floor_label,
            floor=base,
            target=f"<= {target}x floor",
            ok=ours / base <= target,
        )
    headers = figures["headers"]
    print(
        f"  headers: torch imported {'yes' if headers['torch_imported'] else 'no'}, "
        f"transformers imported {'yes' if headers['transformers_imported'] else 'no'}; "
        f"in the architecture run the header tree was ready at "
        f"{figures['architecture']['headers']:.3f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--keep", type=Path, help="write the folder here and keep it")
    parser.add_argument(
        "--child", nargs=2, metavar=("MEASUREMENT", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        measurement, folder = args.child
        print(json.dumps(MEASUREMENTS[measurement](folder)))
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="netexplorer-bench-hf-"))
    try:
        report(make_folder(root), args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
