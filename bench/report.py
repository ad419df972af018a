"""One way for every benchmark to report its figures, and for `make bench` to gather them.

A benchmark prints its own account as it likes, and, for each figure, calls `figure(...)`,
which prints it readably and also as one machine line (`@figure {json}`). `bench/all.py`
runs every benchmark and turns those lines into one table: the figure, its floor or peer
measured in the same run, the ratio, and the target with a verdict. Ratios are figure /
floor: for times, lower is better; for rates (steps/s), higher is.

A floor is what the work cannot beat (reading every header of the file, the forward pass
without recording, an idle window's timer jitter); a peer is another tool doing the same
job (torchinfo, print(model)).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

MARK = "@figure "


@dataclass
class Figure:
    bench: str  # which benchmark
    name: str  # what was measured
    value: float
    unit: str  # "s", "ms", "MB", "steps/s"
    floor_name: str = ""  # the floor or peer measured in the same run ('' when none)
    floor: float | None = None  # in the same unit
    target: str = ""  # what it should be ("< 1 s", "<= 1.5x floor")
    ok: bool | None = None  # whether it met the target (None: no target)
    note: str = ""  # the model, the file, the load average

    @property
    def ratio(self) -> float | None:
        if self.floor is None or not self.floor or not math.isfinite(self.floor):
            return None
        return self.value / self.floor


def figure(
    bench: str,
    name: str,
    value: float,
    unit: str,
    *,
    floor_name: str = "",
    floor: float | None = None,
    target: str = "",
    ok: bool | None = None,
    note: str = "",
) -> Figure:
    """Print one figure, readably and as a machine line for `make bench`."""
    f = Figure(bench, name, value, unit, floor_name, floor, target, ok, note)
    line = f"  {name}: {format_value(value, unit)}"
    if floor is not None:
        line += f"   {floor_name or 'floor'}: {format_value(floor, unit)}"
        if f.ratio is not None:
            line += f" ({f.ratio:.2f}x)"
    if target:
        line += f"   target {target}: {verdict(ok)}"
    print(line)
    print(MARK + json.dumps(asdict(f)), flush=True)
    return f


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else "ok" if ok else "MISSED"


def format_value(value: float, unit: str) -> str:
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit in ("s", "ms"):
        return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def parse(lines: list[str]) -> list[Figure]:
    """The figures in a benchmark's output."""
    out = []
    for line in lines:
        if line.startswith(MARK):
            out.append(Figure(**json.loads(line[len(MARK) :])))
    return out


def table(figures: list[Figure]) -> str:
    """The figures as one Markdown table."""
    rows = [
        "| benchmark | figure | value | floor or peer (same run) | ratio | target |",
        "|---|---|---:|---|---:|---|",
    ]
    for f in figures:
        floor = f"{f.floor_name}: {format_value(f.floor, f.unit)}" if f.floor is not None else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        target = f"{f.target} {verdict(f.ok)}" if f.target else ""
        rows.append(
            f"| {f.bench} | {f.name} | {format_value(f.value, f.unit)} | {floor} | {ratio} "
            f"| {target} |"
        )
    return "\n".join(rows)
