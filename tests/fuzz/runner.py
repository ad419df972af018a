"""Runs netexplorer on a crafted file in a child process, as a user would, and measures it:
exit status, seconds, peak memory (the child's own maximum resident set, from wait4), what
it printed. A child that outlives its timeout is killed with its process group."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from crafted import MiB, Outcome

MODES = {
    "summary": lambda out: ["--summary"],
    "json": lambda out: ["--json"],
    "screenshot": lambda out: ["--screenshot", str(out / "shot.png"), "--view", "heatmap"],
}
OUTPUT_LIMIT = 256 * MiB  # a child printing more is killed (SIGXFSZ): the 470 MB summary
POLL_SECONDS = 0.02


def run_netexplorer(
    args: Sequence[str],
    mode: str,
    *,
    timeout: float,
    cwd: Path,
    nofile: int | None = None,
    select: str | None = None,
) -> Outcome:
    """`python -m netexplorer ARGS --MODE` in a child process with its own limits; with
    --screenshot, the heatmap of `select` if given."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-run-", dir=cwd))
    command = [sys.executable, "-m", "netexplorer", *args, *MODES[mode](work)]
    if mode == "screenshot" and select is not None:
        command += ["--select", select]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(work / "config"))
    env.pop("PYTHONPATH", None)  # the child sees only what an installed netexplorer sees

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=work,
            env=env,
            preexec_fn=limits,
            start_new_session=True,
        )
        status, usage, timed_out = _wait(child, timeout)
        seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    stdout = (work / "stdout").read_bytes()
    return Outcome(
        code=code,
        seconds=seconds,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        stdout_bytes=len(stdout),
        stdout_head=stdout[:MiB],
        stderr=(work / "stderr").read_text(errors="replace")[-20_000:],
        mode=mode,
        timed_out=timed_out,
    )


def _wait(child: subprocess.Popen, timeout: float):
    """wait4 the child (its own resource usage), killing its process group on timeout."""
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            return status, usage, timed_out
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            os.killpg(child.pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)


def problems(outcome: Outcome, legit: bool) -> list[str]:
    """What is wrong with a run whatever the case: a crash, a hang, a traceback, an exit
    status other than 0 or 2, more than one line for a refusal, a refusal of a good file."""
    found = []
    if outcome.timed_out:
        found.append(f"did not finish in time ({outcome.seconds:.0f} s)")
    elif outcome.code not in (0, 2):
        found.append(f"exit status {outcome.code}")
    if "Traceback" in outcome.stderr:
        found.append("printed a traceback")
    if outcome.code == 2 and len(outcome.stderr.strip().splitlines()) != 1:
        found.append(f"refused in {len(outcome.stderr.strip().splitlines())} lines")
    if legit and outcome.code == 2:
        found.append(f"refused a legitimate file: {outcome.stderr.strip()}")
    return found
