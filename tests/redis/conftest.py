"""Fixtures for the Redis tier: a clean database per test, caches closed after it, worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from entitlegate import RedisCache
from tests.fake_stripe import FakeStripe
from tests.redis.workers import Workers
from tests.redis_server import RedisServer


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, running and empty."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.thaw()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture
def server(redis_server: RedisServer, redis_url: str) -> Iterator[RedisServer]:
    """The session's Redis, for this test to stop, freeze or restart; running again afterwards."""
    yield redis_server
    redis_server.thaw()
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client for looking at what the cache stored."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
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
def workers(redis_server: RedisServer, _fake_stripe_server: FakeStripe) -> Iterator[Workers]:
    """Four worker processes, each with a resolver on the shared Redis and the fake Stripe."""
    pool = Workers(
        4, redis_url=redis_server.url, stripe_url=_fake_stripe_server.url, api_key=_fake_stripe_server.api_key
    )
    yield pool
    pool.stop()
