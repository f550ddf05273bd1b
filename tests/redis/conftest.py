"""Fixtures for the Redis tier: a clean database per test, caches closed after it, worker processes.

A test module that holds for a Redis Cluster too parametrises ``redis_kind`` (indirectly) over
:data:`KINDS`; ``redis_url``, ``admin``, ``make_cache`` and ``workers`` then follow the kind. The
cluster (three masters) is started once per session, on the first test that asks for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.cluster

from entitlegate import RedisCache
from tests.fake_stripe import FakeStripe
from tests.redis.workers import Workers
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

MakeCache = Callable[..., RedisCache]

KINDS = ("single", "cluster")
both_kinds = pytest.mark.parametrize("redis_kind", KINDS, indirect=True)
"""Run a test against one redis-server and against a three-master Redis Cluster."""


@pytest.fixture
def redis_kind(request: pytest.FixtureRequest) -> str:
    """ "single" (one redis-server) unless the test is parametrised over :data:`KINDS`."""
    return str(getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-master Redis Cluster on loopback for the whole session (started on first use)."""
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_url(redis_kind: str, request: pytest.FixtureRequest) -> str:
    """The session's redis-server (or cluster, by ``redis_kind``), running and empty."""
    if redis_kind == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        cluster.ensure_running()
        cluster.flush()
        return cluster.url
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.thaw()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture
def server(redis_kind: str, redis_url: str, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """The session's Redis, for this test to stop, freeze or restart; running again afterwards.

    On a cluster, all three masters at once (a node alone: ``redis_cluster.node_of(key)``).
    """
    if redis_kind == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        yield cluster  # type: ignore[misc]  # the same stop/start/freeze/thaw/restart
        cluster.ensure_running()
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    yield redis_server
    redis_server.thaw()
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client for looking at what the cache stored (a RedisCluster client on a cluster)."""
    client: Any = (
        redis.cluster.RedisCluster.from_url(redis_url.replace("+cluster", ""), socket_timeout=2)
        if redis_url.startswith("redis+cluster://")
        else redis.Redis.from_url(redis_url, socket_timeout=2)
    )
    yield client
    client.close()


@pytest.fixture
def make_cache(redis_url: str) -> Iterator[Callable[..., RedisCache]]:
    """Builds RedisCaches on the test's Redis and closes them afterwards."""
    caches: list[RedisCache] = []

    def make(target: Any = None, **options: Any) -> RedisCache:
        cache = RedisCache(redis_url if target is None else target, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture
def customer() -> str:
    """A customer id no other test uses (worker processes outlive a test)."""
    return f"cus_{uuid.uuid4().hex[:14]}"


@pytest.fixture(scope="session")
def _worker_pools(_fake_stripe_server: FakeStripe) -> Iterator[dict[str, Workers]]:
    pools: dict[str, Workers] = {}
    yield pools
    for pool in pools.values():
        pool.stop()


@pytest.fixture
def workers(
    redis_url: str, redis_kind: str, _worker_pools: dict[str, Workers], _fake_stripe_server: FakeStripe
) -> Workers:
    """Four worker processes, each with a resolver on the shared Redis (or cluster) and the fake Stripe.

    Started once per kind and session; each test configures them afresh.
    """
    pool = _worker_pools.get(redis_kind)
    if pool is None:
        pool = _worker_pools[redis_kind] = Workers(
            4, redis_url=redis_url, stripe_url=_fake_stripe_server.url, api_key=_fake_stripe_server.api_key
        )
    return pool
