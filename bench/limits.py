"""Section 1 and 5 rows for limits: a limit check beside the ``has_feature`` hit, and its bytes.

A cached customer's limit is read from the catalog snapshot's memo of plan limits, keyed by the
customer's (interned) set of lookup_keys: the figure to hold it to is the hit it sits beside.
"""

from __future__ import annotations

import json
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Callable

from bench._timing import Row, alternated, spread
from entitlegate import MemoryCache, Resolver, StaticSource

HIT_SECTION = "1 hit"
MEMORY_SECTION = "5 memory"
GOAL_RATIO = 1.2  # a limit hit within 1.2x of a has_feature hit
GOAL_BYTES = 64.0  # at most 64 B per cached customer for its limits
PLANS = {
    "starter": {"seats": "3", "projects": "1"},
    "pro": {"seats": "25", "projects": "5"},
    "enterprise": {"seats": "unlimited", "projects": "100"},
    "projects-addon": {"projects": "10"},
}
PLAN_SETS = [["starter"], ["pro"], ["enterprise"], ["starter", "projects-addon"], ["pro", "projects-addon"]]


def hit(*, quick: bool = False) -> list[Row]:
    """``limit`` on a cached customer, timed in batches alternated with ``has_feature``."""
    number = 20_000 if quick else 200_000
    rounds = 3 if quick else 25
    resolver = Resolver(StaticSource({"cus_1": ["pro", "analytics", "export"]}, features=PLANS), MemoryCache())
    resolver.limit("cus_1", "seats")
    names = {"has": resolver.has_feature, "limit": resolver.limit}

    def calls(stmt: str) -> Callable[[int], object]:
        return timeit.Timer(stmt, globals=names).timeit

    firsts, seconds = alternated(
        calls("has('cus_1', 'analytics')"), calls("limit('cus_1', 'seats')"), number=number, rounds=rounds
    )
    hits, limits = ([t * 1e9 for t in side] for side in (firsts, seconds))
    ratios = [limit / has for has, limit in zip(hits, limits, strict=True)]
    ratio = statistics.median(ratios)
    return [
        Row(HIT_SECTION, "MemoryCache `limit` (a cached customer)", statistics.median(limits), spread(limits), "ns"),
        Row(
            HIT_SECTION,
            "limit hit / has_feature hit",
            ratio,
            spread(ratios, 2),
            "x",
            f"{len(ratios)} alternated batches; ratio taken batch by batch",
            goal=f"<= {GOAL_RATIO:g}x",
            met=ratio <= GOAL_RATIO,
            why="besides the hit's checks, a limit checks the catalog's freshness and reads the plan memo",
        ),
    ]


def memory(*, quick: bool = False) -> list[Row]:
    """Bytes a cached customer's limits add: tracemalloc over every cached customer's first limit."""
    customers = 500 if quick else 5_000
    repeat = 2 if quick else 3
    samples = [_bytes_per_customer(customers) for _ in range(repeat)]
    value = statistics.median(samples)
    return [
        Row(
            MEMORY_SECTION,
            "limits of a cached customer (MemoryCache)",
            value,
            spread(samples),
            "B",
            f"tracemalloc over {customers:,} customers on {len(PLAN_SETS)} plan sets, {repeat} runs; "
            "the catalog itself counted too",
            goal=f"<= {GOAL_BYTES:g} B",
            met=value <= GOAL_BYTES,
            why="the plan memo is per distinct set of lookup_keys; many distinct sets cost more",
        )
    ]


def _bytes_per_customer(customers: int) -> float:
    resolver = Resolver(StaticSource({}, features=PLANS), MemoryCache(maxsize=customers))
    created = int(time.time())
    encoded = [json.dumps(plan) for plan in PLAN_SETS]
    ids = [f"cus_{index:014d}" for index in range(customers)]
    for index, customer in enumerate(ids):
        resolver.apply_event(customer, json.loads(encoded[index % len(encoded)]), created)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for customer in ids:
            resolver.limit(customer, "seats")
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / customers
