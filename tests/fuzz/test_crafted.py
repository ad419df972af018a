"""Issue 12's attack, small: every crafted file of crafted.py through the real command line
(--summary and --json; --screenshot of the heatmap for the strange tensors), each in a child
process. Each run exits 0 or 2 (2 with one line), without a traceback, a crash or a hang (the
timeout only stops a hang: the work is bounded by limits, not by a clock), and passes its
case's own check. `make fuzz` runs the full-size set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from crafted import CASES, Case
from runner import problems, run_netexplorer

SMALL = [case for case in CASES.values() if case.small_too]
# the heatmap and statistics of these are drawn by the window too (a few seconds each)
SCREENSHOTS = {
    "expand-stride-0",
    "strides-0-0",
    "values-1.7e308",
    "safetensors-65-dims",
    "zip-bytes-overflow",
    "zip-overlapping-strides",
    "sparse-coo-out-of-range",
    "bare-storage-40mb",
    "legacy-uninitialised-floattensor",
}
TIMEOUT = 180  # seconds; a run takes 0.2-3 s


@pytest.mark.parametrize("case", SMALL, ids=lambda c: c.name)
def test_crafted_file(tmp_path, case: Case):
    args = case.build(tmp_path, True)
    modes = ["summary", "json"] + (["screenshot"] if case.name in SCREENSHOTS else [])

    def run(mode: str):
        return run_netexplorer(
            args, mode, timeout=TIMEOUT, cwd=tmp_path, nofile=case.nofile, select=case.select
        )

    with ThreadPoolExecutor(2) as pool:
        outcomes = dict(zip(modes, pool.map(run, modes), strict=True))
    failures = []
    for mode, outcome in outcomes.items():
        found = problems(outcome, case.legit)
        if case.check is not None and not outcome.timed_out:
            extra = case.check(outcome, tmp_path)
            if extra is not None:
                found.append(extra)
        if found:
            failures.append(f"--{mode}: {'; '.join(found)}; stderr: {outcome.stderr[-500:]}")
    assert not failures, f"{case.what}\n" + "\n".join(failures)


def test_every_case_has_a_small_version_or_a_test_of_its_own():
    """The cases too big for `make test` have their own small test in tests/core/sources."""
    assert {c.name for c in CASES.values() if not c.small_too} == {
        "million-tensors-safetensors",  # test_limits: ..._refused_before_parsing
        "million-views-zip",  # test_limits: ..._refused_while_read
        "shard-named-100-ways",  # test_limits: ..._read_once
    }
