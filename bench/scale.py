"""Section 7, scale: a Redis Cluster, and the cost of many customers in process and in Redis.

- propagation p99 across 4 processes on a three-master cluster (and, beside it, why invalidations
  use cluster-wide PUBLISH: its latency between nodes against sharded SPUBLISH's);
- in process: bytes per cached customer and the hit's time at 10k, 100k and 1M customers, held to
  a dict of frozensets measured beside it;
- Redis: ``INFO memory`` before and after 1M customers written (pipelined) as the cache writes them;
- webhooks applied per second by one process and by four, on one Redis.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import time
import timeit
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from bench._timing import Row
from entitlegate import MemoryCache, RedisCache, Resolver, StaticSource
from entitlegate.cache import _redis_format as stored
from entitlegate.cache._base import Entry
from tests.fake_stripe import FakeStripe
from tests.redis.workers import Workers
from tests.redis_cluster import RedisCluster
from tests.stripe_events import signed, summary_event

SECTION = "7 scale"
FEATURES = [f"feature-{index:02d}-access" for index in range(5)]
GOAL_FLAT = 2.0  # the hit at 1M customers within 2x the hit at 10k
GOAL_BYTES = 1.3  # bytes per customer within 1.3x a dict of frozensets


@contextmanager
def cluster() -> Iterator[RedisCluster]:
    """A three-master cluster on loopback for the section's cluster rows."""
    made = RedisCluster()
    made.start()
    try:
        yield made
    finally:
        made.stop()


def cluster_propagation(made: RedisCluster, fake: FakeStripe, *, quick: bool = False) -> list[Row]:
    """From a webhook handled in one of 4 processes to the other 3 answering it, on the cluster."""
    samples = 5 if quick else 200
    workers = Workers(4, redis_url=made.url, stripe_url=fake.url, api_key=fake.api_key)
    try:
        workers.configure(local_ttl=3600)
        customer = f"cus_{uuid.uuid4().hex[:14]}"
        fake.set_customer(customer, ["before"])
        workers.call_all("copied", customer=customer)
        sender, *watchers = workers
        created = int(time.time())
        latencies = []
        for sample in range(1, samples + 1):
            keys = [f"plan-{sample}"]
            for watcher in watchers:
                watcher.send("watch", customer=customer, expected=keys, timeout=5.0)
            for watcher in watchers:
                watcher.receive("ready")
            began, _ = sender.call(
                "handle", deliveries=[signed(summary_event(customer, keys, created=created + sample))]
            )
            latencies.append((max(watcher.receive() for watcher in watchers) - began) * 1e3)
    finally:
        workers.stop()
    p99 = _percentile(latencies, 99)
    return [
        Row(
            SECTION,
            "webhook to every process (4 on a 3-master cluster): p99",
            p99,
            f"p50 {_percentile(latencies, 50):.2f}",
            "ms",
            f"{samples} webhooks; cluster-wide PUBLISH from the script's node",
            goal="<= 50 ms",
            met=p99 <= 50,
        )
    ]


def publish_against_spublish(made: RedisCluster, *, quick: bool = False) -> list[Row]:
    """p99 from a publish on one master to a subscriber on another: PUBLISH, then SPUBLISH.

    SPUBLISH reaches only the channel's shard, so the subscriber sits on that shard's master and
    the publisher on another (a script's node is the customer's, any of them).
    """
    samples = 50 if quick else 2000
    channel = "entitlegate-bench:{probe}"
    home = made.node_of(channel)
    away = next(node for node in made.nodes if node is not home)
    rows = []
    for command, subscribe in (("PUBLISH", "subscribe"), ("SPUBLISH", "ssubscribe")):
        publisher = redis.Redis(port=away.port if command == "PUBLISH" else home.port)
        listener = redis.Redis(port=home.port)
        pubsub = listener.pubsub()
        getattr(pubsub, subscribe)(channel)
        confirm = pubsub.get_message
        while not (message := confirm(timeout=1.0)) or message["type"] not in ("subscribe", "ssubscribe"):
            pass
        latencies = []
        for _ in range(samples):
            began = time.perf_counter()
            publisher.execute_command(command, channel, "x")
            while not (message := confirm(timeout=1.0)) or message["type"] not in ("message", "smessage"):
                pass
            latencies.append((time.perf_counter() - began) * 1e6)
        pubsub.close()
        publisher.close()
        listener.close()
        rows.append(
            Row(
                SECTION,
                f"{command} to a subscriber on {'another master' if command == 'PUBLISH' else 'its shard'}: p99",
                _percentile(latencies, 99),
                f"p50 {_percentile(latencies, 50):.0f}",
                "us",
                f"{samples} messages, one at a time" + ("; crosses the cluster bus" if command == "PUBLISH" else ""),
            )
        )
    return rows


def in_process(*, quick: bool = False) -> list[Row]:
    """Bytes per customer and the hit's time at each size, beside a dict of frozensets."""
    sizes = (1_000, 5_000, 20_000) if quick else (10_000, 100_000, 1_000_000)
    rows, hits = [], []
    for size in sizes:
        ours, peer, hit, peer_hit = _measure(size)
        hits.append(hit)
        rows.append(
            Row(
                SECTION,
                f"in process (MemoryCache), {size:,} customers: bytes per customer",
                ours,
                f"dict of frozensets {peer:.0f} B",
                "B",
                "tracemalloc; 5 interned lookup_keys each",
                goal=f"<= {GOAL_BYTES:g}x dict of frozensets",
                met=ours <= GOAL_BYTES * peer,
            )
        )
        rows.append(
            Row(
                SECTION,
                f"in process (MemoryCache), {size:,} customers: `has_feature` hit",
                hit,
                f"`k in d[c]` on the dict: {peer_hit:.0f} ns",
                "ns",
                "10k random customers of the cache, so at size most reads miss the CPU caches",
                goal=f"<= {GOAL_FLAT:g}x the smallest" if size == sizes[-1] else "",
                met=hit <= GOAL_FLAT * hits[0] if size == sizes[-1] else None,
            )
        )
    return rows


def _measure(size: int) -> tuple[float, float, float, float]:
    keys = json.loads(json.dumps(FEATURES))
    customers = [f"cus_{index:014d}" for index in range(size)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    resolver = Resolver(StaticSource({}), MemoryCache(maxsize=size))
    created = time.time()
    for customer in customers:
        resolver.apply_event(customer, keys, created)
    ours = (tracemalloc.get_traced_memory()[0] - before) / size
    tracemalloc.stop()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    interned = list(keys)
    peer_dict = {customer: frozenset(interned) for customer in customers}
    peer = (tracemalloc.get_traced_memory()[0] - before) / size
    tracemalloc.stop()
    sample = random.Random(size).sample(customers, min(size, 10_000))
    lookup = FEATURES[2]
    has_feature = resolver.has_feature
    number = len(sample)
    runs = timeit.repeat(lambda: [has_feature(c, lookup) for c in sample], number=1, repeat=7)
    loop = timeit.repeat(lambda: [(c, lookup) for c in sample], number=1, repeat=7)
    hit = (min(runs) - min(loop)) / number * 1e9
    bare = timeit.repeat(lambda: [lookup in peer_dict[c] for c in sample], number=1, repeat=7)
    peer_hit = (min(bare) - min(loop)) / number * 1e9
    return ours, peer, hit, peer_hit


def redis_memory(redis_url: str, *, quick: bool = False) -> list[Row]:
    """``used_memory`` grown by N customers' entries, written pipelined with the cache's own bytes."""
    count = 10_000 if quick else 1_000_000
    client = redis.Redis.from_url(redis_url)
    cache = RedisCache(redis_url, prefix="entitlegate-scale", local_ttl=0)
    try:
        now = time.monotonic()
        entry = Entry(frozenset(FEATURES), time.time(), now + 300, now + 86_400)
        value = stored.dump(entry, time.time() - now)
        client.flushdb()
        before = int(client.info("memory")["used_memory"])
        pipe = client.pipeline(transaction=False)
        for index in range(count):
            pipe.set(cache.key(f"cus_{index:014d}"), value, px=86_400_000)
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        after = int(client.info("memory")["used_memory"])
        client.flushdb()
    finally:
        cache.close()
        client.close()
    per = (after - before) / count
    return [
        Row(
            SECTION,
            f"Redis `used_memory` for {count:,} customers",
            (after - before) / 2**20,
            f"{per:.0f} B per customer",
            "MiB",
            "5 features each, with a TTL; INFO memory delta",
        )
    ]


def webhooks_per_second(redis_url: str, fake: FakeStripe, *, quick: bool = False) -> list[Row]:
    """Summary events applied per second by one process, then by four at once, on one Redis."""
    events = 200 if quick else 4_000
    workers = Workers(4, redis_url=redis_url, stripe_url=fake.url, api_key=fake.api_key)
    rows = []
    try:
        workers.configure()
        for processes in (1, 4):
            created = int(time.time())
            deliveries = [
                signed(summary_event(f"cus_{uuid.uuid4().hex[:14]}", FEATURES, created=created)) for _ in range(events)
            ]
            start_at = time.monotonic() + 0.3
            for number, worker in enumerate(workers[:processes]):
                worker.send("handle", deliveries=deliveries[number::processes], start_at=start_at)
            answers = [worker.receive() for worker in workers[:processes]]
            ended = time.monotonic()
            applied = sum(action == "applied" for _, actions in answers for action in actions)
            rows.append(
                Row(
                    SECTION,
                    f"webhooks applied per second, {processes} process{'es' if processes > 1 else ''}",
                    applied / (ended - start_at),
                    "",
                    "/s",
                    f"{events} signed summary events, each a new customer; verify + PUT script",
                )
            )
    finally:
        workers.stop()
    return rows


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def main() -> None:
    """``python -m bench.scale``: this section alone, its table printed (``make bench`` runs it too)."""
    from bench.__main__ import _fake_stripe, _redis
    from bench._timing import machine, table

    quick = "--quick" in sys.argv
    started = time.monotonic()
    with _fake_stripe() as fake, _redis() as redis_url:
        rows = in_process(quick=quick) + redis_memory(redis_url, quick=quick)
        rows += webhooks_per_second(redis_url, fake, quick=quick)
        with cluster() as made:
            rows += cluster_propagation(made, fake, quick=quick) + publish_against_spublish(made, quick=quick)
    print(
        f"`python -m bench.scale` on {machine()}, {time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.1f}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
