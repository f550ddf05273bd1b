"""Section 1a: ``has_feature`` on an in-process hit, beside the floor."""

from __future__ import annotations

import asyncio
import statistics
import timeit
from collections.abc import Callable

from bench._timing import Row, alternated, ns_row, spread
from entitlegate import MemoryCache, Resolver, StaticSource

SECTION = "1 hit"
FEATURES = ["seats-feature", "analytics", "export", "sso", "audit-log"]
GOAL_FLOOR = 3.0  # a hit within 3x the floor
WHY = (
    "besides the floor's dict lookup and membership test, a hit reads the monotonic clock to check the "
    "entry is fresh and counts itself in the resolver's stats"
)


def run(*, quick: bool = False) -> list[Row]:
    """The floor (a dict lookup + frozenset membership), inline and in a function, beside hits.

    The hit and the floor it is held to are timed in alternating batches, and their ratio is
    taken batch by batch, so a busy machine slows both sides of each ratio alike.
    """
    number = 20_000 if quick else 200_000
    rounds = 3 if quick else 25
    table = {"cus_1": frozenset(FEATURES)}

    def floor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    async def afloor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    resolver = Resolver(StaticSource({"cus_1": FEATURES}), MemoryCache())
    resolver.features("cus_1")
    names = {"d": table, "floor": floor, "has": resolver.has_feature, "c": "cus_1", "k": "analytics"}

    def calls(stmt: str) -> Callable[[int], object]:
        return timeit.Timer(stmt, globals=names).timeit

    def awaited(check: Callable[[str, str], object]) -> Callable[[int], object]:
        async def loop(count: int) -> None:
            for _ in range(count):
                await check("cus_1", "analytics")  # type: ignore[misc]

        return lambda count: asyncio.run(loop(count))

    rows = [ns_row(SECTION, "floor: `k in d[c]` inline", "k in d[c]", globals_=names, number=number * 5)]
    inline = rows[0].median
    rows += _held_to_floor(
        "floor: the same in a function",
        "MemoryCache `has_feature`",
        "MemoryCache hit / floor in a function",
        alternated(calls("floor(c, k)"), calls("has(c, k)"), number=number, rounds=rounds),
        inline,
    )
    rows += _held_to_floor(
        "floor: the same in an awaited `async def`",
        "MemoryCache `ahas_feature` (awaited)",
        "awaited hit / awaited floor",
        alternated(awaited(afloor), awaited(resolver.ahas_feature), number=number // 2, rounds=rounds),
        None,
    )
    return rows


def _held_to_floor(
    floor_name: str, hit_name: str, ratio_name: str, timings: tuple[list[float], list[float]], inline: float | None
) -> list[Row]:
    floors, hits = ([t * 1e9 for t in side] for side in timings)
    ratios = [hit / low for low, hit in zip(floors, hits, strict=True)]
    ratio = statistics.median(ratios)
    hit = statistics.median(hits)
    note = f"{len(ratios)} alternated batches; ratio taken batch by batch"
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
            goal=f"<= {GOAL_FLOOR:g}x",
            met=ratio <= GOAL_FLOOR,
            why=WHY,
        ),
    ]
