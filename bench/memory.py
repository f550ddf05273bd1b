"""Section 5, in process: the bytes a cached customer costs in a resolver's ``MemoryCache``.

Measured with ``tracemalloc`` over many customers, each written through the resolver's own path
(``apply_event``, what a webhook does). Every customer's lookup_keys are decoded from JSON, as the
SDK decodes Stripe's answers; the resolver interns them, so customers holding a feature share
one string. The figure counts the customer id, the entry, its frozenset and the cache's
bookkeeping (the interned strings are paid once, not per customer).
"""

from __future__ import annotations

import json
import statistics
import time
import tracemalloc

from bench._timing import Row, spread
from entitlegate import MemoryCache, Resolver, StaticSource

SECTION = "5 memory"


def lookup_keys(count: int) -> list[str]:
    """``count`` lookup_keys of a realistic length (Stripe's are the seller's own names)."""
    return [f"feature-{index:02d}-access" for index in range(count)]


def run(*, quick: bool = False) -> list[Row]:
    """Bytes per cached customer in process, for 5 and 50 features."""
    customers = 500 if quick else 5_000
    repeat = 2 if quick else 3
    rows = []
    for features in (5, 50):
        samples = [_bytes_per_customer(features, customers) for _ in range(repeat)]
        rows.append(
            Row(
                SECTION,
                f"in process (MemoryCache), {features} features",
                statistics.median(samples),
                spread(samples),
                "B",
                f"tracemalloc over {customers:,} customers, {repeat} runs; lookup_keys ~17 chars, interned",
            )
        )
    return rows


def _bytes_per_customer(features: int, customers: int) -> float:
    encoded = json.dumps(lookup_keys(features))
    resolver = Resolver(StaticSource({}), MemoryCache(maxsize=customers))
    created = int(time.time())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(customers):
            # A Stripe customer id is cus_ and 14 characters; the cache keeps the one it was given.
            resolver.apply_event(f"cus_{index:014d}", json.loads(encoded), created)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if len(resolver.cache) != customers:  # type: ignore[arg-type]
        raise RuntimeError("not every customer was cached: the bench is broken")
    return (after - before) / customers
