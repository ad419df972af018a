"""`make bench`: run every benchmark under bench/ and print one table of their figures.

    .venv/bin/python bench/all.py [--quick] [--only NAME ...] [--markdown FILE]

Each benchmark runs in its own interpreter (offscreen Qt), its account printed as it goes;
the figures it reports through `report.figure` are gathered into one Markdown table at the
end: each figure, its floor or peer measured in the same run, the ratio, the target and
whether it was met. `--quick` passes each benchmark its own short settings (a smoke run, not
figures to quote). The table can be written to a file for the README (`--markdown`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import parse, table  # noqa: E402

# benchmark -> (arguments of a full run, arguments of a quick run); soak is `make soak`
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "open": ([], ["--runs", "1"]),
    "graph": ([], ["--repeats", "1", "--sizes", "200"]),
    "state": ([], ["--repeats", "1"]),
    "passes": ([], ["--rounds", "5"]),
    "dcp": ([], ["--runs", "1"]),
    "meta": ([], ["--runs", "1"]),
    "hf": ([], ["--runs", "1"]),
    "timeline": ([], ["--runs", "1"]),
    "headers": ([], ["--runs", "1", "--tensors", "20000", "--no-million"]),
    "huge_tensor": ([], ["--runs", "1", "--elements", "20000000"]),
    "tree": ([], ["--runs", "1", "--million-layers", "100"]),
}
SKIPPED = {"all", "common", "report", "soak"}  # not benchmarks, or run on their own (make soak)


def discover() -> list[str]:
    """Every benchmark script in bench/, the known ones first in their order."""
    found = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIPPED)
    return [n for n in BENCHMARKS if n in found] + [n for n in found if n not in BENCHMARKS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke runs")
    parser.add_argument("--only", nargs="*", default=None, help="these benchmarks only")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    figures = []
    failed = []
    for name in discover():
        if args.only is not None and name not in args.only:
            continue
        full, quick = BENCHMARKS.get(name, ([], []))
        command = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if not line.startswith("@figure "):
                print(line, end="", flush=True)
        if process.wait() != 0:
            failed.append(name)
            print(f"   {name} failed (exit {process.returncode})")
        figures += parse(lines)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = table(figures)
    print(f"\nAll figures (medians; {os.cpu_count()} CPUs, load average {load}):\n")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
