"""The Redis tier's rows: hits (local copy, and a Redis GET), propagation, memory in Redis, an outage.

The measuring is :mod:`bench.redis_bench`'s; this module repeats it for medians and spread and
holds the figures to their goals.
"""

from __future__ import annotations

import statistics
import timeit

import redis

from bench import core, redis_bench
from bench._timing import Row, percentile, spread
from tests.fake_stripe import FakeStripe

GOAL_PROPAGATION_MS = 50.0  # p99 from a webhook to every process answering the new set
GOAL_REDIS_BYTES = 200  # per customer with 5 features
GOAL_OUTAGE_CALLS = 1.25  # Stripe calls per customer per ttl while Redis is down, at most
# One hot key, timed as the in-process hit was before issue 17 moved that to 1,000 customers; its
# goal stays the 3x it was set against on that shape (core.GOAL_FLOOR is the 1,000-customer one).
GOAL_LOCAL_HIT = 3.0
OUTAGE_TTL, OUTAGE_LOCAL_TTL = 4.0, 0.4  # the defaults (300 s, 2 s) scaled down, ratio kept near


def hits(redis_url: str, *, quick: bool = False) -> list[Row]:
    """Section 1: ``has_feature`` from RedisCache's local copy, and with the local tier off."""
    number = 20_000 if quick else 100_000
    rounds = 2 if quick else 30
    table = {"cus_1": frozenset(core.FEATURES)}

    def floor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    floor_calls = timeit.Timer("floor(c, k)", globals={"floor": floor, "c": "cus_1", "k": "analytics"})
    floors: list[float] = []
    locals_: list[float] = []
    for index in range(rounds):  # each round times the floor next to the hit it is held to, ABBA
        if index % 2:
            locals_.append(redis_bench.local_hit(number, redis_url))
        floors.append(floor_calls.timeit(number) / number * 1e9)
        if not index % 2:
            locals_.append(redis_bench.local_hit(number, redis_url))
    ratios = [hit / low for low, hit in zip(floors, locals_, strict=True)]
    ratio = statistics.median(ratios)
    round_trips, bare = _round_trips(redis_url, 200 if quick else 2_000, 2 if quick else 15)
    return [
        Row(
            core.SECTION, "RedisCache `has_feature`, local tier hit", statistics.median(locals_), spread(locals_), "ns"
        ),
        Row(
            core.SECTION,
            "RedisCache local hit / floor in a function",
            ratio,
            spread(ratios, 2),
            "x",
            f"{rounds} rounds, each timing the floor next to a hit (ABBA); ratio taken round by round",
            goal=f"<= {GOAL_LOCAL_HIT:g}x",
            met=ratio <= GOAL_LOCAL_HIT,
            why=core.WHY_ONE_KEY,
        ),
        Row(
            core.SECTION,
            "RedisCache `has_feature`, local tier off (a Redis GET)",
            statistics.median(round_trips),
            spread(round_trips, 1),
            "µs",
            "a loopback round trip to redis-server per check",
        ),
        Row(
            core.SECTION,
            "floor for it: a bare redis-py GET of the same key size",
            statistics.median(bare),
            spread(bare, 1),
            "µs",
            "the round trip alone, timed next to each of the RedisCache rounds",
        ),
    ]


def _round_trips(redis_url: str, number: int, rounds: int) -> tuple[list[float], list[float]]:
    """µs per check with the local tier off, and per bare GET of a value as long, round by round."""
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_bench.PREFIX}:bare-get"
    try:
        client.set(key, b"x" * (25 + len("\n".join(core.FEATURES))))  # RedisCache's header and the keys
        get = timeit.Timer(lambda: client.get(key))
        checks, gets = [], []
        for _ in range(rounds):
            checks.append(redis_bench.redis_hit(number, redis_url) / 1e3)
            gets.append(get.timeit(number) / number * 1e6)
        return checks, gets
    finally:
        client.delete(key)
        client.close()


def propagation(redis_url: str, *, quick: bool = False) -> list[Row]:
    """Section 4: from a webhook handled in one of 4 processes to the other 3 answering its set."""
    runs = 1 if quick else 5
    samples = 5 if quick else 200
    latencies = [[seconds * 1e3 for seconds in redis_bench.propagation(samples, redis_url)] for _ in range(runs)]
    p50s = [percentile(run, 50) for run in latencies]
    p99s = [percentile(run, 99) for run in latencies]
    p99 = statistics.median(p99s)
    method = f"{runs} runs of {samples} webhooks; spread: min-max of the runs"
    return [
        Row(
            "4 propagation",
            "webhook to every process (4 on Redis): p50",
            statistics.median(p50s),
            _ms(p50s),
            "ms",
            method,
        ),
        Row(
            "4 propagation",
            "webhook to every process (4 on Redis): p99",
            p99,
            _ms(p99s),
            "ms",
            f"{method}; the slowest of all: {max(max(run) for run in latencies):.1f} ms",
            goal=f"<= {GOAL_PROPAGATION_MS:g} ms",
            met=p99 <= GOAL_PROPAGATION_MS,
        ),
    ]


def memory(redis_url: str, *, quick: bool = False) -> list[Row]:
    """Section 5: ``MEMORY USAGE`` of one customer's key, for 5 and 50 features."""
    customers = 2 if quick else 5
    rows = []
    for features in (5, 50):
        sizes = [redis_bench.memory_per_customer(features, redis_url) for _ in range(customers)]
        size = statistics.median(sizes)
        rows.append(
            Row(
                "5 memory",
                f"in Redis (`MEMORY USAGE`), {features} features",
                size,
                spread(sizes),
                "B",
                f"{customers} customers; the key with its value, as Redis counts it",
                goal=f"<= {GOAL_REDIS_BYTES} B" if features == 5 else "",
                met=size <= GOAL_REDIS_BYTES if features == 5 else None,
            )
        )
    return rows


def outage(fake: FakeStripe, *, quick: bool = False) -> list[Row]:
    """Section 6: Stripe calls per second while Redis is killed, now and as it was."""
    customers = 20 if quick else 200
    runs = 1 if quick else 3
    seconds = OUTAGE_TTL / 2 if quick else 2 * OUTAGE_TTL
    method = (
        f"{customers} customers, each read once, then redis-server killed; 4 threads ask for all of them "
        f"in turn for {seconds:g} s; ttl {OUTAGE_TTL:g} s, local_ttl {OUTAGE_LOCAL_TTL:g} s; {runs} runs"
    )
    rows = []
    for label, ttl in (("now", OUTAGE_TTL), ("as it was: answers good for local_ttl", OUTAGE_LOCAL_TTL)):
        measured = [
            redis_bench.outage(fake, customers=customers, ttl=ttl, local_ttl=OUTAGE_LOCAL_TTL, seconds=seconds)
            for _ in range(runs)
        ]
        rates = [rate for rate, _ in measured]
        failed = sum(failures for _, failures in measured)
        rate = statistics.median(rates)
        per_ttl = rate * OUTAGE_TTL / customers  # calls per customer per ttl
        now = ttl == OUTAGE_TTL
        rows.append(
            Row(
                "6 Redis outage",
                f"Stripe calls/s with Redis down, {customers} customers, {label}",
                rate,
                spread(rates),
                "/s",
                f"{per_ttl:.2f} calls per customer per ttl; {failed} checks unanswered; "
                + (method if now else f"modelled as ttl = local_ttl {OUTAGE_LOCAL_TTL:g} s, the rest as above"),
                goal=f"<= {GOAL_OUTAGE_CALLS * customers / OUTAGE_TTL:g}/s" if now else "",
                met=(per_ttl <= GOAL_OUTAGE_CALLS and failed == 0) if now else None,
                why="an outage sends a customer to Stripe more than once per ttl, or a check went unanswered",
            )
        )
    return rows


def local_tier_memory(redis_url: str, *, quick: bool = False) -> list[Row]:
    """Section 5: the bytes a customer's copy costs in a RedisCache's local tier, 5 and 50 features."""
    customers = 500 if quick else 5_000
    repeat = 2 if quick else 3
    rows = []
    for features in (5, 50):
        samples = [redis_bench.local_tier_bytes(features, customers, redis_url) for _ in range(repeat)]
        rows.append(
            Row(
                "5 memory",
                f"in process (RedisCache local tier), {features} features",
                statistics.median(samples),
                spread(samples),
                "B",
                f"tracemalloc over {customers:,} customers read through the resolver, {repeat} runs; "
                "a copy cut to local_ttl keeps its entry's own expiry (one slot and a float)",
            )
        )
    return rows


def _ms(values: list[float]) -> str:
    return spread(values, 1) + " ms"
