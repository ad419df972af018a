"""What several benchmarks do alike: run one measurement in a fresh interpreter, read this
process's resident memory, and the parameter shapes of a GPT-2 of a given size."""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_compiled: list[bool] = []


def compile_sources() -> None:
    """Compile netexplorer's modules to bytecode once, as installing a package does. This
    machine sets PYTHONDONTWRITEBYTECODE=1, so a fresh interpreter otherwise compiled every
    module it imported from source (about 10 ms of a 0.2 s figure counted from interpreter
    start), while the peers measured against it (safetensors, torch) were compiled when
    they were installed. Compiled files go to __pycache__ (ignored by git)."""
    if not _compiled:
        compileall.compile_dir(str(ROOT / "netexplorer"), quiet=1)
        _compiled.append(True)


def run_child(script: str, measurement: str, argument: str, env: dict | None = None) -> dict:
    """`python script --child measurement argument` in a fresh interpreter: the figures it
    prints as JSON on its last line. A failing child's error output is shown, not only its
    exit status. netexplorer's modules are compiled first (`compile_sources`)."""
    compile_sources()
    out = subprocess.run(
        [sys.executable, script, "--child", measurement, argument],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        out.check_returncode()
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MB."""
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """The most resident memory this process has had (VmHWM), in MB. Not `ru_maxrss`: Linux
    keeps that across exec, so a child reports its parent's peak if that was higher."""
    return _status_mb("VmHWM:")


def gpt2_shapes(width: int, vocab: int, context: int, blocks: int) -> dict[str, tuple[int, ...]]:
    """The parameters of a GPT-2 with Hugging Face's names: `wte.weight` (vocab x width),
    `wpe.weight`, `blocks` blocks `h.N.*`, `ln_f`."""
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (vocab, width),
        "wpe.weight": (context, width),
    }
    for i in range(blocks):
        block = {
            "ln_1.weight": (width,),
            "ln_1.bias": (width,),
            "attn.c_attn.weight": (width, 3 * width),
            "attn.c_attn.bias": (3 * width,),
            "attn.c_proj.weight": (width, width),
            "attn.c_proj.bias": (width,),
            "ln_2.weight": (width,),
            "ln_2.bias": (width,),
            "mlp.c_fc.weight": (width, 4 * width),
            "mlp.c_fc.bias": (4 * width,),
            "mlp.c_proj.weight": (4 * width, width),
            "mlp.c_proj.bias": (width,),
        }
        shapes.update({f"h.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({"ln_f.weight": (width,), "ln_f.bias": (width,)})
    return shapes
