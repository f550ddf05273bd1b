"""Section 2's measure: a gated view against the same view ungated, in alternated batches."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from bench._timing import Row, alternated

SECTION = "2 view"
GOAL_PERCENT = 2.0  # gated-view overhead <= 2 % of the trivial request (Django and Flask)
CUSTOMER = "cus_bench"
FEATURES = ("seats-feature", "analytics", "export", "sso", "audit-log")
FEATURE = "seats-feature"
NO_FEATURES: frozenset[str] = frozenset()


class Memo:
    """What a hand-written per-request memo holds: the request's customer and their features.

    The floors that keep their answer for the request (Django's, the ASGI middleware's) keep one.
    """

    __slots__ = ("customer", "features")

    def __init__(self, customer: str | None, features: frozenset[str]) -> None:
        self.customer = customer
        self.features = features


def overhead_rows(
    label: str,
    ungated: Callable[[int], object],
    gated: Callable[[int], object],
    *,
    number: int,
    rounds: int,
    goal: bool,
    control: Callable[[int], object] | None = None,
    why: str = "",
) -> list[Row]:
    """µs per request ungated and gated, and the gated overhead in % of the ungated request.

    ``ungated`` and ``gated`` each make that many requests when called with a count. Each round
    times one small batch of each, alternated ABBA, and the overhead is the median of the rounds'
    paired differences, so a slower moment of the machine weighs on both sides of each pair.
    With ``control`` (the ungated view at a second URL), the same method also compares the
    ungated view with itself (an A/A run): what that shows is the method's own error here.
    """
    plain, checked = alternated(ungated, gated, number=number, rounds=rounds)
    plain_us = [t * 1e6 for t in plain]
    checked_us = [t * 1e6 for t in checked]
    method = f"{rounds} alternated rounds of {number} requests a side"
    percent, low, high = _paired_percent(plain_us, checked_us)
    delta = statistics.median(b - a for a, b in zip(plain_us, checked_us, strict=True))
    rows = [
        Row(SECTION, f"{label}: ungated", statistics.median(plain_us), _iqr(plain_us), "µs", method),
        Row(SECTION, f"{label}: gated", statistics.median(checked_us), _iqr(checked_us), "µs", method),
        Row(
            SECTION,
            f"{label}: gated overhead",
            percent,
            f"IQR {low:+.1f}..{high:+.1f} %",
            "%",
            f"{delta:+.2f} µs per request (median of paired differences)",
            goal=f"<= {GOAL_PERCENT:g} %" if goal else "",
            met=percent <= GOAL_PERCENT if goal else None,
            why=why,
        ),
    ]
    if control is not None:
        first, second = alternated(ungated, control, number=number, rounds=rounds)
        same, same_low, same_high = _paired_percent([t * 1e6 for t in first], [t * 1e6 for t in second])
        rows.append(
            Row(
                SECTION,
                f"{label}: A/A control (the ungated view at two URLs)",
                same,
                f"IQR {same_low:+.1f}..{same_high:+.1f} %",
                "%",
                "the method's own error: ideally 0",
            )
        )
    return rows


def _paired_percent(first: Sequence[float], second: Sequence[float]) -> tuple[float, float, float]:
    """Median and interquartile range of the rounds' ``(second - first) / first`` in %."""
    percents = [(b - a) / a * 100 for a, b in zip(first, second, strict=True)]
    low, _, high = statistics.quantiles(percents, n=4) if len(percents) > 1 else (percents[0],) * 3
    return statistics.median(percents), low, high


def _iqr(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}"
    low, _, high = statistics.quantiles(values, n=4)
    return f"IQR {low:.1f}..{high:.1f}"


def added_cost_rows(
    label: str,
    bare: Callable[[int], object],
    floors: Sequence[tuple[str, Callable[[int], object]]],
    gated: Callable[[int], object],
    *,
    number: int,
    rounds: int,
    goal_us: float | None,
    why: str = "",
) -> list[Row]:
    """µs the gate adds to one request, beside what stand-ins for it add there.

    ``bare`` serves the view as is, ``gated`` through entitlegate's gate, and each of ``floors``
    (named) through a stand-in that does the framework's part of the same shape of work and no
    more: an empty decorator, a pass-through middleware, a no-op dependency. Each is timed against
    ``bare`` in its own alternated ABBA rounds; a figure is the median of the rounds' paired
    differences, so the gate's figure less a floor's is what entitlegate itself costs there.
    """
    rows: list[Row] = []
    for name, runner in (*floors, ("entitlegate", gated)):
        plain, other = alternated(bare, runner, number=number, rounds=rounds)
        deltas = [(b - a) * 1e6 for a, b in zip(plain, other, strict=True)]
        added = statistics.median(deltas)
        held = name == "entitlegate" and goal_us is not None
        method = f"{rounds} alternated rounds of {number} requests a side"
        rows.append(
            Row(
                SECTION,
                f"{label}: added by {name}",
                added,
                _iqr_of(deltas),
                "µs",
                f"{method}; over {statistics.median(plain) * 1e6:.1f} µs bare",
                goal=f"<= {goal_us:g} µs" if held else "",
                met=added <= goal_us if held and goal_us is not None else None,
                why=why if held else "",
            )
        )
    return rows


def _iqr_of(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.2f}"
    low, _, high = statistics.quantiles(values, n=4)
    return f"IQR {low:+.2f}..{high:+.2f}"
