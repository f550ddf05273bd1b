"""Section 1a: ``has_feature`` on an in-process hit, beside the floor."""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from bench._timing import Row, alternated, spread
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate.cache import Entry

SECTION = "1 hit"
FEATURES = ["seats-feature", "analytics", "export", "sso", "audit-log"]
CUSTOMERS = 1_000  # checks spread over this many cached customers: one hot key flatters the floor
GOAL_FLOOR = 2.5  # a hit within 2.5x the floor in a function
GOAL_AWAITED = 2.0  # an awaited hit within 2x the awaited floor
WHY_ONE_KEY = (
    "besides the floor's dict lookup and membership test, a hit reads the monotonic clock to check the "
    "entry is fresh and counts itself in the resolver's stats"
)
WHY = WHY_ONE_KEY + ": the row 'floor + a clock read and a hit count' prices those two alone"


def run(*, quick: bool = False) -> list[Row]:
    """The floor (a dict lookup + frozenset membership), inline and in a function, beside hits.

    Every timed statement checks each of :data:`CUSTOMERS` cached customers once, so the dict
    lookups spread over a table as a server's do; figures are per check. The hit and the floor it
    is held to are timed in alternating batches, and their ratio is taken batch by batch, so a
    busy machine slows both sides of each ratio alike.
    """
    number = 20 if quick else 200  # batches of CUSTOMERS checks
    rounds = 3 if quick else 25
    customers = [f"cus_{index:014d}" for index in range(CUSTOMERS)]
    table = {customer: frozenset(FEATURES) for customer in customers}
    resolver = Resolver(StaticSource(dict.fromkeys(customers, FEATURES)), MemoryCache())
    entries = {customer: _cached(resolver, customer) for customer in customers}
    clock = time.monotonic
    stats = _Stats()

    def floor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    def priced(customer: str, lookup_key: str) -> bool:
        # The floor with what a hit adds for its guarantees: the ttl's clock read and the count.
        entry = entries[customer]
        if entry.expires > clock():
            stats.hits += 1
            return lookup_key in entry.features
        return False

    async def afloor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    names: dict[str, Any] = {"d": table, "cs": customers, "k": "analytics"}
    names.update(floor=floor, priced=priced, has=resolver.has_feature)

    def calls(call: str) -> Callable[[int], object]:
        return timeit.Timer(f"for c in cs: {call}", globals=names).timeit

    def awaited(check: Callable[[str, str], object]) -> Callable[[int], object]:
        async def loop(count: int) -> None:
            for _ in range(count):
                for customer in customers:
                    await check(customer, "analytics")  # type: ignore[misc]

        return lambda count: asyncio.run(loop(count))

    def per_check(timings: tuple[list[float], list[float]]) -> tuple[list[float], list[float]]:
        first, second = timings
        return [t / CUSTOMERS for t in first], [t / CUSTOMERS for t in second]

    inline_ns = [
        t / number / CUSTOMERS for t in timeit.repeat("for c in cs: k in d[c]", globals=names, number=number, repeat=7)
    ]
    inline = statistics.median(inline_ns) * 1e9
    spread_note = f"{CUSTOMERS:,} cached customers, each checked in turn"
    rows = [Row(SECTION, "floor: `k in d[c]` inline", inline, spread([t * 1e9 for t in inline_ns]), "ns", spread_note)]
    rows += _held_to_floor(
        "floor: the same in a function",
        "MemoryCache `has_feature`",
        "MemoryCache hit / floor in a function",
        per_check(alternated(calls("floor(c, k)"), calls("has(c, k)"), number=number, rounds=rounds)),
        inline,
        goal=GOAL_FLOOR,
    )
    rows += _held_to_floor(
        "floor: the same in a function (again, beside the next row)",
        "floor + a clock read and a hit count, in a function",
        "floor + clock read and count / floor in a function",
        per_check(alternated(calls("floor(c, k)"), calls("priced(c, k)"), number=number, rounds=rounds)),
        None,
        goal=None,
    )[1:]
    rows += _held_to_floor(
        "floor: the same in an awaited `async def`",
        "MemoryCache `ahas_feature` (awaited)",
        "awaited hit / awaited floor",
        per_check(
            alternated(awaited(afloor), awaited(resolver.ahas_feature), number=max(1, number // 2), rounds=rounds)
        ),
        None,
        goal=GOAL_AWAITED,
    )
    return rows


class _Stats:
    """A counter held as an instance attribute, as the resolver's hit count is."""

    def __init__(self) -> None:
        self.hits = 0


def _cached(resolver: Resolver, customer: str) -> Entry:
    resolver.features(customer)
    entry = resolver.cache.get(customer)
    assert entry is not None
    return entry


def _held_to_floor(
    floor_name: str,
    hit_name: str,
    ratio_name: str,
    timings: tuple[list[float], list[float]],
    inline: float | None,
    *,
    goal: float | None,
) -> list[Row]:
    floors, hits = ([t * 1e9 for t in side] for side in timings)
    ratios = [hit / low for low, hit in zip(floors, hits, strict=True)]
    ratio = statistics.median(ratios)
    hit = statistics.median(hits)
    note = f"{len(ratios)} alternated batches over {CUSTOMERS:,} customers; ratio taken batch by batch"
    if inline is not None:
        note += f"; {hit / inline:.1f}x the inline floor"
    return [
        Row(SECTION, floor_name, statistics.median(floors), spread(floors), "ns"),
        Row(SECTION, hit_name, hit, spread(hits), "ns"),
        Row(
            SECTION,
            ratio_name,
            ratio,
            spread(ratios, 2),
            "x",
            note,
            goal="" if goal is None else f"<= {goal:g}x",
            met=None if goal is None else ratio <= goal,
            why=WHY if goal is not None else "",
        ),
    ]
