"""The Redis tier: a local-copy hit, a Redis hit, propagation across processes, memory, an outage.

Functions for the benchmark runner, each given the URL of a redis-server it may write to (keys
under the ``entitlegate-bench`` prefix, removed afterwards). Importing this module starts
nothing; each call sets up what it measures and closes it again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
import timeit
import tracemalloc
import uuid
from multiprocessing.connection import Connection
from typing import Any

import redis

from bench import memory
from entitlegate import RedisCache, Resolver, SourceUnavailable, StaticSource, StripeSource, WebhookHandler
from tests.fake_stripe import FakeStripe
from tests.redis_server import RedisServer
from tests.stripe_events import SECRET, signed, summary_event

FEATURES = ["seats-feature", "analytics", "export", "sso", "audit-log"]
PREFIX = "entitlegate-bench"
_WORKERS = 4
logger = logging.getLogger("entitlegate")
_REPLY_TIMEOUT = 30.0


def local_hit(n: int, redis_url: str) -> float:
    """Nanoseconds per ``has_feature`` answered from a local copy (no I/O), over ``n`` calls."""
    customer = _customer()
    cache = RedisCache(redis_url, prefix=PREFIX, local_ttl=3600)
    resolver = Resolver(StaticSource({customer: FEATURES}), cache)
    try:
        _copied(resolver, cache, customer)
        names = {"has": resolver.has_feature, "c": customer, "k": "analytics"}
        timer = timeit.Timer("has(c, k)", globals=names)
        timer.timeit(max(n // 10, 1))  # warm
        return timer.timeit(n) / n * 1e9
    finally:
        cache.close()
        _remove(redis_url, cache.namespace + customer)


def redis_hit(n: int, redis_url: str) -> float:
    """Nanoseconds per ``has_feature`` answered by a Redis GET (local tier off), over ``n`` calls."""
    customer = _customer()
    cache = RedisCache(redis_url, prefix=PREFIX, local_ttl=0)
    resolver = Resolver(StaticSource({customer: FEATURES}), cache)
    try:
        resolver.features(customer)
        names = {"has": resolver.has_feature, "c": customer, "k": "analytics"}
        timer = timeit.Timer("has(c, k)", globals=names)
        timer.timeit(max(n // 10, 1))
        calls = resolver.stats.source_calls
        seconds = timer.timeit(n)
        if resolver.stats.source_calls != calls:
            raise RuntimeError("a Redis hit asked the source")
        return seconds / n * 1e9
    finally:
        cache.close()
        _remove(redis_url, cache.namespace + customer)


def propagation(samples: int, redis_url: str) -> list[float]:
    """Seconds from a webhook's handling in one process to three others answering its new set.

    Four worker processes (spawned) run a resolver on a RedisCache each, with local copies good
    for an hour, so only the invalidation over pub/sub can make them change their answer. Per
    sample, workers 1-3 hold a copy and poll ``features`` (every 0.2 ms); worker 0 handles a
    signed summary event. A sample is the time from worker 0 starting ``WebhookHandler.handle``
    to the last of the three answering the new set (CLOCK_MONOTONIC is one clock for all).
    """
    context = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(_WORKERS):
        conn, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, redis_url), daemon=True)
        process.start()
        child.close()
        workers.append((conn, process))
    try:
        customer = _customer()
        for conn, _ in workers:
            _ask(conn, "copy", customer)
        (sender, _), *watchers = workers
        created = int(time.time())
        latencies = []
        for sample in range(1, samples + 1):
            lookup_keys = [f"plan-{sample}"]
            for conn, _ in watchers:
                conn.send(("watch", (customer, lookup_keys)))
            for conn, _ in watchers:
                _receive(conn, "ready")
            began = _ask(sender, "handle", *signed(summary_event(customer, lookup_keys, created=created + sample)))
            latencies.append(max(_receive(conn) for conn, _ in watchers) - began)
        _remove(redis_url, _ask(sender, "namespace") + customer)
        return latencies
    finally:
        for conn, process in workers:
            with contextlib.suppress(OSError):  # a worker that failed has gone already
                conn.send(("stop", ()))
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def memory_per_customer(features: int, redis_url: str) -> int:
    """Bytes Redis reports (``MEMORY USAGE``) for one customer holding ``features`` features.

    The customer id has Stripe's 18 characters; the first lookup_keys are those of section 1,
    then ``feature-NN``.
    """
    customer = "cus_" + uuid.uuid4().hex[:14]
    lookup_keys = (FEATURES + [f"feature-{number:02d}" for number in range(len(FEATURES), features)])[:features]
    cache = RedisCache(redis_url, prefix=PREFIX, local_ttl=0)
    client = redis.Redis.from_url(redis_url)
    try:
        Resolver(StaticSource({customer: lookup_keys}), cache).features(customer)
        usage = client.memory_usage(cache.namespace + customer, samples=0)
        if usage is None:
            raise RuntimeError("the entry was not stored")
        return int(usage)
    finally:
        client.close()
        cache.close()
        _remove(redis_url, cache.namespace + customer)


def local_tier_bytes(features: int, customers: int, redis_url: str) -> float:
    """Bytes per customer a RedisCache's local tier holds in this process (default ``local_ttl``).

    Measured with ``tracemalloc`` while each customer is read through the resolver (a miss, the
    fetch stored in Redis, a copy kept here), as :mod:`bench.memory` does for ``MemoryCache``;
    the lookup_keys are interned, the customer id and the copy are counted.
    """
    keys = memory.lookup_keys(features)  # the names of the MemoryCache row
    names = [f"cus_{uuid.uuid4().hex[:14]}" for _ in range(customers)]
    warm = _customer()
    cache = RedisCache(redis_url, prefix=PREFIX, local_maxsize=customers + 1)
    resolver = Resolver(StaticSource(dict.fromkeys([warm, *names], keys)), cache)
    try:
        # Warmed on a customer of its own: a clear() here would reach the listener later and could
        # drop copies while they are being counted.
        _copied(resolver, cache, warm)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for customer in names:
                resolver.features(customer)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if sum(cache.peek(customer) is not None for customer in names) != customers:
            raise RuntimeError("not every customer was copied: the bench is broken")
        return (after - before) / customers
    finally:
        cache.clear()
        cache.close()


def outage(
    fake: FakeStripe, *, customers: int, ttl: float, local_ttl: float, seconds: float, threads: int = 4
) -> tuple[float, int]:
    """Stripe calls per second while Redis is killed, and the checks that got no answer.

    A redis-server of its own (this one is killed); a resolver with ``ttl`` on a RedisCache with
    ``local_ttl``, over the real StripeSource and SDK to the fake Stripe. Every customer is read
    once (a copy each), then redis-server is killed and ``threads`` threads ask for every
    customer in turn, as fast as they can, for ``seconds``. Only the calls made in that window count.
    """
    server = RedisServer()
    server.start()
    names = [f"cus_outage{number:010d}" for number in range(customers)]
    for number, customer in enumerate(names):
        fake.set_customer(customer, [f"plan-{number % 3}"])
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_network_retries=0)
    cache = RedisCache(server.url, prefix=PREFIX, local_ttl=local_ttl)
    resolver = Resolver(source, cache, ttl=ttl)
    try:
        _copied(resolver, cache, names[0])
        for customer in names:
            resolver.features(customer)
        logger.disabled = True  # the outage's one warning is expected: not for the report
        server.stop()
        before = resolver.stats.source_calls
        failed = _ask_for_all(resolver, names, threads=threads, seconds=seconds)
        return (resolver.stats.source_calls - before) / seconds, failed
    finally:
        logger.disabled = False
        cache.close()
        server.stop()
        with fake.lock:
            for customer in names:
                fake.customers.pop(customer, None)


def _ask_for_all(resolver: Resolver, customers: list[str], *, threads: int, seconds: float) -> int:
    """``threads`` threads asking for every customer in turn for ``seconds``: the checks that failed."""
    until = time.monotonic() + seconds
    failed: list[int] = []

    def ask(offset: int) -> None:
        count = 0
        order = customers[offset:] + customers[:offset]
        while time.monotonic() < until:
            for customer in order:
                try:
                    resolver.features(customer)
                except SourceUnavailable:
                    count += 1
        failed.append(count)

    workers = [threading.Thread(target=ask, args=(n * len(customers) // threads,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(failed)


# -- helpers ----------------------------------------------------------------------------------------


def _customer() -> str:
    return f"cus_{uuid.uuid4().hex[:14]}"


def _copied(resolver: Resolver, cache: RedisCache, customer: str, timeout: float = 5.0) -> None:
    """Read once the listener has subscribed (subscribing forgets every copy), leaving a copy."""
    resolver.features(customer)  # starts the listener
    deadline = time.monotonic() + timeout
    while not cache.listening:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Redis listener did not subscribe within {timeout} s")
        time.sleep(0.001)
    resolver.features(customer)
    if cache.peek(customer) is None:
        raise RuntimeError(f"no local copy of {customer}")


def _remove(redis_url: str, *keys: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*keys)
    finally:
        client.close()


def _ask(conn: Connection, command: str, *args: Any) -> Any:
    conn.send((command, args))
    return _receive(conn)


def _receive(conn: Connection, expect: str = "ok") -> Any:
    if not conn.poll(_REPLY_TIMEOUT):
        raise RuntimeError(f"a propagation worker did not answer within {_REPLY_TIMEOUT} s")
    kind, value = conn.recv()
    if kind == "error":
        raise RuntimeError(f"a propagation worker failed: {value}")
    if kind != expect:
        raise RuntimeError(f"a propagation worker sent {kind!r}, expected {expect!r}")
    return value


def _serve(conn: Connection, redis_url: str) -> None:
    """A propagation worker: a resolver on its own RedisCache, driven over ``conn``."""
    cache = RedisCache(redis_url, prefix=PREFIX, local_ttl=3600)
    resolver = Resolver(StaticSource({}), cache)
    handler = WebhookHandler(resolver, SECRET)
    try:
        while True:
            command, args = conn.recv()
            if command == "stop":
                return
            try:
                if command == "copy":
                    _copied(resolver, cache, args[0])
                    result: Any = None
                elif command == "watch":
                    result = _watch(resolver, *args, ready=lambda: conn.send(("ready", None)))
                elif command == "handle":
                    result = time.monotonic()
                    handler.handle(*args)
                elif command == "namespace":
                    result = cache.namespace
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as error:
                conn.send(("error", repr(error)))
            else:
                conn.send(("ok", result))
    finally:
        cache.close()


def _watch(resolver: Resolver, customer: str, lookup_keys: list[str], *, ready: Any, timeout: float = 5.0) -> float:
    """Say ready, then poll until the answer is ``lookup_keys``; the monotonic time it was."""
    wanted = frozenset(lookup_keys)
    ready()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if resolver.features(customer) == wanted:
            return time.monotonic()
        time.sleep(0.0002)  # a poll interval: leaves the GIL to the listener thread
    raise RuntimeError(f"{customer} did not become {sorted(wanted)} within {timeout} s")
