"""`make fuzz`: every crafted case at full size through --summary, --json and --screenshot,
each in a child process with a timeout; prints one row per run and a table of the figures
(files tried, exit statuses, slowest, peak memory). Exits 1 if any run went wrong.

    python tests/fuzz/run_fuzz.py [--small] [--only SUBSTRING] [--timeout S] [--jobs N]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crafted import CASES, Case, Outcome
from runner import problems, run_netexplorer


def run_case(case: Case, root: Path, small: bool, timeout: float, modes: list[str]):
    folder = root / case.name
    folder.mkdir()
    started = time.monotonic()
    args = case.build(folder, small)
    built = time.monotonic() - started
    rows = []
    for mode in modes:
        if mode not in case.modes or (mode == "screenshot" and case.no_window):
            continue
        outcome = run_netexplorer(
            args, mode, timeout=timeout, cwd=folder, nofile=case.nofile, select=case.select
        )
        found = problems(outcome, case.legit)
        if case.check is not None and not outcome.timed_out:
            extra = case.check(outcome, folder)
            if extra is not None:
                found.append(extra)
        rows.append((case.name, mode, outcome, found))
    shutil.rmtree(folder, ignore_errors=True)
    return built, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small versions (make test's)")
    parser.add_argument("--only", default="", help="cases whose name holds this")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--modes", default="summary,json,screenshot")
    options = parser.parse_args()
    modes = options.modes.split(",")
    cases = [
        c for c in CASES.values() if options.only in c.name and (c.small_too or not options.small)
    ]
    root = Path(tempfile.mkdtemp(prefix="netexplorer-fuzz-"))
    rows = []
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(options.jobs) as pool:
            jobs = [
                pool.submit(run_case, c, root, options.small, options.timeout, modes) for c in cases
            ]
            for job in jobs:
                _, case_rows = job.result()
                for name, mode, outcome, found in case_rows:
                    print(_row(name, mode, outcome, found), flush=True)
                rows += case_rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for case in cases:
        if case.no_window and "screenshot" in modes:
            print(f"{case.name}: --screenshot not run: {case.no_window}")
    print()
    print(_table(rows, len(cases), time.monotonic() - started))
    return 1 if any(found for *_, found in rows) else 0


def _row(name: str, mode: str, outcome: Outcome, found: list[str]) -> str:
    code = "timeout" if outcome.timed_out else str(outcome.code)
    verdict = "ok" if not found else "FAIL: " + "; ".join(found)
    message = outcome.stderr.strip().splitlines()[-1][:110] if outcome.stderr.strip() else ""
    return (
        f"{name:<44} {mode:<10} exit {code:>7} {outcome.seconds:6.1f} s "
        f"{outcome.peak_rss_mb:6.0f} MB  {verdict}" + (f"\n{'':>46}{message}" if message else "")
    )


def _table(rows, files: int, seconds: float) -> str:
    codes = collections.Counter("timeout" if o.timed_out else str(o.code) for _, _, o, _ in rows)
    slowest = max(rows, key=lambda r: r[2].seconds)
    biggest = max(rows, key=lambda r: r[2].peak_rss_mb)
    failed = sum(1 for *_, found in rows if found)
    lines = [
        "| | |",
        "|---|---|",
        f"| files tried | {files} ({len(rows)} runs: --summary, --json, --screenshot) |",
        "| exit statuses | " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) + " |",
        f"| slowest run | {slowest[2].seconds:.1f} s ({slowest[0]}, --{slowest[1]}) |",
        f"| peak memory | {biggest[2].peak_rss_mb:.0f} MB ({biggest[0]}, --{biggest[1]}) |",
        f"| runs that went wrong | {failed} |",
        f"| wall time | {seconds:.0f} s |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
