"""Section 3: a burst of concurrent checks for one uncached customer, with a slow Stripe.

The real path: ``StripeSource`` over the ``stripe`` SDK and HTTP to the fake Stripe, which waits
``LATENCY`` before each answer. Every run asks for a customer nobody has asked for yet, on a
fresh resolver whose source has already made a connection (a server's steady state), from
``CONCURRENCY`` threads released by one barrier, or ``CONCURRENCY`` tasks on one event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bench._timing import Row, percentile, spread
from entitlegate import MemoryCache, Resolver, StripeSource
from tests.fake_stripe import FakeStripe

SECTION = "3 cold miss"
LATENCY = 0.050
CONCURRENCY = 100
FEATURE = "seats-feature"
_customers = itertools.count(1)


def run(fake: FakeStripe, *, quick: bool = False) -> list[Row]:
    """Stripe calls made and p50/p99 latency of the burst, for threads and for asyncio."""
    concurrency = 10 if quick else CONCURRENCY
    runs = 2 if quick else 15
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_network_retries=0)
    fake.set_customer("cus_warm", [FEATURE])
    source.fetch("cus_warm")  # one connection made before timing, as on a server that has served
    fake.latency = LATENCY
    try:
        threads = [_threaded(fake, source, concurrency) for _ in range(runs)]
        tasks = asyncio.run(_asyncio_runs(fake, source, concurrency, runs))
    finally:
        fake.latency = 0.0
    return _rows(f"{concurrency} threads", threads) + _rows(f"{concurrency} asyncio tasks", tasks)


def _new_customer(fake: FakeStripe) -> str:
    customer = f"cus_cold_{next(_customers):06d}"
    fake.set_customer(customer, [FEATURE, "analytics", "export", "sso", "audit-log"])
    return customer


def _threaded(fake: FakeStripe, source: StripeSource, concurrency: int) -> tuple[int, list[float]]:
    """One burst from threads: the Stripe calls it made, and each check's latency in seconds."""
    customer = _new_customer(fake)
    resolver = Resolver(source, MemoryCache())
    barrier = threading.Barrier(concurrency)

    def ask() -> float:
        barrier.wait()
        started = time.perf_counter()
        if not resolver.has_feature(customer, FEATURE):
            raise RuntimeError(f"{customer} lacks {FEATURE}: the bench is broken")
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(lambda _: ask(), range(concurrency)))
    return fake.count_by_customer()[customer], latencies


async def _asyncio_runs(
    fake: FakeStripe, source: StripeSource, concurrency: int, runs: int
) -> list[tuple[int, list[float]]]:
    await source.afetch("cus_warm")  # this loop's HTTP client, connected before timing
    results = []
    for _ in range(runs):
        customer = _new_customer(fake)
        resolver = Resolver(source, MemoryCache())

        async def ask(resolver: Resolver = resolver, customer: str = customer) -> float:
            started = time.perf_counter()
            if not await resolver.ahas_feature(customer, FEATURE):
                raise RuntimeError(f"{customer} lacks {FEATURE}: the bench is broken")
            return time.perf_counter() - started

        latencies = await asyncio.gather(*(ask() for _ in range(concurrency)))
        results.append((fake.count_by_customer()[customer], list(latencies)))
    await source.aclose()
    return results


def _rows(label: str, runs: Sequence[tuple[int, list[float]]]) -> list[Row]:
    calls = [called for called, _ in runs]
    p50s = [percentile(latencies, 50) * 1e3 for _, latencies in runs]
    p99s = [percentile(latencies, 99) * 1e3 for _, latencies in runs]
    method = f"{len(runs)} bursts; Stripe answers after {LATENCY * 1e3:.0f} ms; spread: min-max of the bursts"
    ms: Callable[[Sequence[float]], str] = lambda values: spread(values, 1) + " ms"  # noqa: E731
    return [
        Row(
            SECTION,
            f"{label}, one cold customer: Stripe calls",
            statistics.median(calls),
            spread(calls),
            "calls",
            f"{len(runs)} bursts; the most any burst made: {max(calls)}",
            goal="1",
            met=max(calls) == 1,
            why="concurrent misses were not coalesced into one source call",
        ),
        Row(SECTION, f"{label}: p50 latency", statistics.median(p50s), ms(p50s), "ms", method),
        Row(SECTION, f"{label}: p99 latency", statistics.median(p99s), ms(p99s), "ms", method),
    ]
