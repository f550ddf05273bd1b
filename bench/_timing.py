"""Timing helpers: medians and spread from repeated timeit runs, and a small table printer."""

from __future__ import annotations

import platform
import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One benchmark line: what was measured, its median and spread, and a note."""

    section: str
    name: str
    median: float
    spread: str
    unit: str
    note: str = ""


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
    note: str = "",
) -> Row:
    median, low, high = per_call_ns(stmt, globals_=globals_, number=number)
    return Row(section, name, median, f"{low:.0f}-{high:.0f}", "ns", note)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    import os

    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python} on {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of rows, grouped by section."""
    lines = ["| section | measurement | median | spread (min-max or p99) | note |", "|---|---|---:|---|---|"]
    for row in rows:
        value = f"{row.median:,.1f} {row.unit}" if row.median < 1000 else f"{row.median:,.0f} {row.unit}"
        lines.append(f"| {row.section} | {row.name} | {value} | {row.spread} | {row.note} |")
    return "\n".join(lines)


def batch_row(section: str, name: str, batch: Callable[[], Any], calls: int, *, repeat: int = 5, note: str = "") -> Row:
    """Time ``batch`` (which makes ``calls`` calls) ``repeat`` times; report ns per call."""
    runs = [t / calls * 1e9 for t in timeit.repeat(batch, number=1, repeat=repeat)]
    return Row(section, name, statistics.median(runs), f"{min(runs):.0f}-{max(runs):.0f}", "ns", note)
