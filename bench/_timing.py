"""Timing helpers: medians and spread from repeated runs, alternated A/B batches, and the table."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One benchmark line: what was measured, its median and spread, the goal it is held to, a note.

    ``met`` is None where the row carries no goal; ``why`` says what a missed goal costs, and is
    printed in the closing notes only when the goal is missed.
    """

    section: str
    name: str
    median: float
    spread: str
    unit: str
    note: str = ""
    goal: str = ""
    met: bool | None = None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON-able dict (a Django subprocess sends its rows back this way)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)


def per_call_ns(
    stmt: str | Callable[[], Any], *, globals_: dict[str, Any] | None = None, number: int = 200_000, repeat: int = 7
) -> tuple[float, float, float]:
    """Median, min and max nanoseconds per call over ``repeat`` runs of ``number`` calls."""
    runs = [t / number * 1e9 for t in timeit.repeat(stmt, globals=globals_, number=number, repeat=repeat)]
    return statistics.median(runs), min(runs), max(runs)


def ns_row(
    section: str,
    name: str,
    stmt: str | Callable[[], Any],
    *,
    globals_: dict[str, Any] | None = None,
    number: int = 200_000,
    repeat: int = 7,
    note: str = "",
) -> Row:
    """A row of nanoseconds per call: ``stmt`` run ``number`` times, ``repeat`` times over."""
    median, low, high = per_call_ns(stmt, globals_=globals_, number=number, repeat=repeat)
    return Row(section, name, median, f"{low:.0f}-{high:.0f}", "ns", note)


def batch_row(section: str, name: str, batch: Callable[[], Any], calls: int, *, repeat: int = 5, note: str = "") -> Row:
    """Time ``batch`` (which makes ``calls`` calls) ``repeat`` times; report ns per call."""
    runs = [t / calls * 1e9 for t in timeit.repeat(batch, number=1, repeat=repeat)]
    return Row(section, name, statistics.median(runs), f"{min(runs):.0f}-{max(runs):.0f}", "ns", note)


def alternated(
    first: Callable[[int], object], second: Callable[[int], object], *, number: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Seconds per call of two batch runners, measured in alternating batches.

    Each runner makes ``number`` calls when called with it. Round ``i`` times one batch of each,
    in the order A B, then B A in the next round (ABBA), so drift in the machine's speed (another
    process, a CPU clock change) lands on both sides alike; a paired comparison of round ``i``'s
    two figures then measures the difference, not the drift. The garbage collector is paused
    inside the batches (as ``timeit`` does); the young generation is collected between rounds.
    """
    timer = time.perf_counter
    firsts: list[float] = []
    seconds: list[float] = []
    first(number // 10 or 1)  # warm both paths: imports, caches, the first request's setup
    second(number // 10 or 1)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for index in range(rounds):
            order = [(first, firsts), (second, seconds)]
            if index % 2:
                order.reverse()
            for run, out in order:
                started = timer()
                run(number)
                out.append((timer() - started) / number)
            gc.collect(0)  # the young garbage of this round only: cheap, and outside the timing
    finally:
        if enabled:
            gc.enable()
    return firsts, seconds


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``min-max`` of ``values``, as the table shows a spread."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def machine() -> str:
    """A line about the machine: Python, CPU architecture and count, OS."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python} on {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"


def _value(row: Row) -> str:
    if row.unit == "x":
        return f"{row.median:,.2f}x"
    if row.unit == "%":
        return f"{row.median:+.1f} %"
    if row.unit in ("calls", "B") or row.median >= 1000:
        return f"{row.median:,.0f} {row.unit}"
    return f"{row.median:,.1f} {row.unit}"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of rows, in section order."""
    lines = [
        "| section | measurement | median | spread | goal | met? | note |",
        "|---|---|---:|---|---|---|---|",
    ]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.section} | {row.name} | {_value(row)} | {row.spread} | {row.goal} | {met} | {row.note} |")
    return "\n".join(lines)
