"""Section 8: usage meters. ``record_usage`` on the request path, and how fast the flusher sends.

``record_usage`` counts in the cache and queues the meter event; sending is the flusher thread's
work, so the request path is the count alone. With MemoryCache it is held to 5 µs; with
RedisCache to one Redis round trip, shown two ways: its time beside a bare redis-py GET, and the
commands Redis counted per call (``INFO commandstats``). The flush rows send recorded events to
the fake Stripe over HTTP through the real ``stripe`` SDK: one POST per event, as Stripe's
``/v1/billing/meter_events`` takes them.
"""

from __future__ import annotations

import statistics
import threading
import time
import timeit
import uuid
from collections.abc import Callable

import redis
import redis.connection

from bench._timing import Row, alternated, spread
from entitlegate import MemoryCache, RedisCache, Resolver, StaticSource, StripeSource
from tests.fake_stripe import FakeStripe

SECTION = "8 usage"
METER = "exports"
GOAL_MEMORY_US = 5.0
GOAL_COMMANDS = 1.0
# The flusher never wakes by itself while the request path is timed: only the count is measured.
QUIET = {"usage_interval": 3600.0, "usage_batch": 1_000_000_000}


def run(fake: FakeStripe, redis_url: str, *, quick: bool = False) -> list[Row]:
    """The usage rows: record_usage on MemoryCache and RedisCache, and the flush throughput."""
    return [*_memory(quick), *_redis(redis_url, quick), *_flush(fake, quick)]


def _customer() -> str:
    return f"cus_{uuid.uuid4().hex[:14]}"


def _recorder(resolver: Resolver, customer: str) -> timeit.Timer:
    return timeit.Timer("record(c, m)", globals={"record": resolver.record_usage, "c": customer, "m": METER})


def _memory(quick: bool) -> list[Row]:
    number = 2_000 if quick else 20_000
    rounds = 3 if quick else 15
    customer = _customer()
    resolver = Resolver(StaticSource({customer: ["exports-feature"]}), MemoryCache(), **QUIET)  # type: ignore[arg-type]
    has = timeit.Timer("has(c, 'exports-feature')", globals={"has": resolver.has_feature, "c": customer})
    try:
        resolver.usage(customer, METER)  # the period's counter, warm (seeded once from the source)
        records, hits = alternated(_recorder(resolver, customer).timeit, has.timeit, number=number, rounds=rounds)
    finally:
        resolver.close()
    micros = [seconds * 1e6 for seconds in records]
    value = statistics.median(micros)
    return [
        Row(
            SECTION,
            "MemoryCache `record_usage` (a warm counter)",
            value,
            spread(micros, 2),
            "µs",
            f"{rounds} alternated batches of {number:,} beside `has_feature` "
            f"({statistics.median(hits) * 1e9:.0f} ns); the count and the queued event, nothing sent",
            goal=f"<= {GOAL_MEMORY_US:g} µs",
            met=value <= GOAL_MEMORY_US,
            why="the call checks its arguments, reads the remembered period, makes the meter event "
            "(identifier and timestamp) and counts it under the store's lock",
        )
    ]


def _redis(redis_url: str, quick: bool) -> list[Row]:
    number = 200 if quick else 2_000
    rounds = 2 if quick else 15
    customer = _customer()
    cache = RedisCache(redis_url, prefix="bench-usage")
    resolver = Resolver(StaticSource({customer: ["exports-feature"]}), cache, **QUIET)  # type: ignore[arg-type]
    client = redis.Redis.from_url(redis_url)
    key = "bench-usage:bare-get"
    client.set(key, b"1")
    get = timeit.Timer(lambda: client.get(key))
    try:
        resolver.usage(customer, METER)
        records, gets = alternated(_recorder(resolver, customer).timeit, get.timeit, number=number, rounds=rounds)
        calls = 500 if quick else 5_000
        round_trips = _round_trips(lambda: _recorder(resolver, customer).timeit(calls))
        per_call = round_trips / calls
    finally:
        resolver.close()
        cache.close()
        client.delete(key)
        client.close()
    micros = [seconds * 1e6 for seconds in records]
    rtts = [seconds * 1e6 for seconds in gets]
    ratios = [record / rtt for record, rtt in zip(micros, rtts, strict=True)]
    return [
        Row(
            SECTION,
            "RedisCache `record_usage` (a warm counter)",
            statistics.median(micros),
            spread(micros, 1),
            "µs",
            f"{rounds} alternated batches of {number:,}, beside the bare GET below",
        ),
        Row(
            SECTION,
            "floor for it: a bare redis-py GET (one loopback round trip)",
            statistics.median(rtts),
            spread(rtts, 1),
            "µs",
            "timed batch by batch next to the row above",
        ),
        Row(
            SECTION,
            "RedisCache `record_usage` / bare GET",
            statistics.median(ratios),
            spread(ratios, 2),
            "x",
            "ratio taken batch by batch: the script's work in Redis and the event's packing over one round trip",
        ),
        Row(
            SECTION,
            "RedisCache `record_usage`: round trips to Redis per call",
            per_call,
            f"{calls:,} calls",
            "trips",
            "writes redis-py made to its connections, counted at the client: one EVALSHA counts, "
            "indexes and queues the event",
            goal=f"<= {GOAL_COMMANDS:g}",
            met=per_call <= GOAL_COMMANDS + 1e-9,
            why="a command more than the script is a second round trip on the request path",
        ),
    ]


def _round_trips(work: Callable[[], object]) -> int:
    """How many times redis-py wrote to a Redis connection while ``work`` ran: its round trips.

    Counted at the client, where a pipeline is one write and one reply; Redis's own
    ``INFO commandstats`` would also count the commands a script runs inside the server. Only
    the calling thread's writes count: the request path's. The flusher thread, started by the
    first queued event, claims what earlier processes left pending (one write), and that is not
    the request's round trip.
    """
    original = redis.connection.AbstractConnection.send_packed_command
    writes = 0
    caller = threading.get_ident()

    def counting(self: redis.connection.AbstractConnection, command: object, check_health: bool = True) -> None:
        nonlocal writes
        if threading.get_ident() == caller:
            writes += 1
        original(self, command, check_health)  # type: ignore[arg-type]

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        work()
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return writes


def _flush(fake: FakeStripe, quick: bool) -> list[Row]:
    events = 200 if quick else 2_000
    runs = 1 if quick else 3
    rates: list[float] = []
    for _ in range(runs):
        customer = _customer()
        fake.set_customer(customer, ["exports-feature"])
        fake.add_meter(METER)
        source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_network_retries=0)
        resolver = Resolver(source, MemoryCache(), **QUIET)  # type: ignore[arg-type]
        try:
            for _ in range(events):
                resolver.record_usage(customer, METER)
            started = time.perf_counter()
            sent = resolver.flush_usage()
            seconds = time.perf_counter() - started
        finally:
            resolver.close()
        if sent != events:
            raise RuntimeError(f"flush_usage sent {sent} of {events} events")
        rates.append(events / seconds)
    return [
        Row(
            SECTION,
            "flush_usage throughput to the fake Stripe",
            statistics.median(rates),
            spread(rates),
            "events/s",
            f"{events:,} recorded events sent by one flush_usage, {runs} runs; one POST each, 8 at a "
            "time, over HTTP on loopback through the stripe SDK (the fake Stripe shares the CPU)",
        )
    ]
