"""What a resolver tells its cache: a small frozen binding (livemode, account, clocks), never the source."""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis

from entitlegate import MemoryCache, RedisCache, Resolver, StaticSource
from entitlegate.cache import Binding
from tests.polling import wait_for
from tests.redis_server import RedisServer

CUSTOMER = "cus_bound"


class _Source:
    """A user's own source with a livemode and a Connect account."""

    def __init__(self, *, livemode: object = False, stripe_account: object = "acct_1") -> None:
        self.livemode = livemode
        self.stripe_account = stripe_account

    def fetch(self, customer: str) -> frozenset[str]:
        return frozenset({"a"})


class _RecordingCache(MemoryCache):
    """A user's cache that namespaces by what it is bound to."""

    def __init__(self) -> None:
        super().__init__()
        self.bound: list[object] = []

    def bind(self, binding: Binding) -> None:
        self.bound.append(binding)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_bindable_cache_is_bound_to_livemode_account_and_the_resolvers_clocks_not_the_source() -> None:
    cache, clock, wall = _RecordingCache(), _Clock(10.0), _Clock(1_767_225_600.0)
    source = _Source(livemode=True, stripe_account="acct_1")

    Resolver(source, cache, clock=clock, wall_clock=wall)

    assert cache.bound == [Binding(livemode=True, stripe_account="acct_1", clock=clock, wall_clock=wall)]
    (binding,) = cache.bound
    with pytest.raises(dataclasses.FrozenInstanceError):
        binding.livemode = False  # type: ignore[misc]


def test_a_source_without_livemode_or_account_binds_both_as_unknown() -> None:
    cache = _RecordingCache()
    Resolver(StaticSource({}), cache)
    assert cache.bound == [Binding(livemode=None, stripe_account=None, clock=time.monotonic, wall_clock=time.time)]


@pytest.mark.parametrize(("livemode", "account"), [("yes", None), (False, 123)])
def test_a_source_whose_livemode_or_account_is_of_the_wrong_type_is_refused(livemode: object, account: object) -> None:
    with pytest.raises(TypeError, match=r"\.(livemode|stripe_account) must be"):
        Resolver(_Source(livemode=livemode, stripe_account=account), _RecordingCache())


def test_a_users_cache_without_bind_is_accepted() -> None:
    class Plain(MemoryCache):
        pass

    resolver = Resolver(StaticSource({CUSTOMER: ["a"]}), Plain())
    assert resolver.features(CUSTOMER) == {"a"}


def test_the_resolvers_cache_is_read_only() -> None:
    resolver = Resolver(StaticSource({CUSTOMER: ["a"]}))
    cache = resolver.cache

    with pytest.raises(AttributeError):
        resolver.cache = MemoryCache()  # type: ignore[misc]

    assert resolver.cache is cache
    assert resolver.features(CUSTOMER) == {"a"}
    assert cache.peek(CUSTOMER) is not None  # the hot path and the property name one cache


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.mark.redis
def test_a_redis_cache_keeps_time_by_its_resolvers_clocks(redis_url: str) -> None:
    # The cache is built with the default clocks, the resolver with clocks the test moves: a local
    # copy must expire by the resolver's clock, or it would answer for ever once Redis changed.
    cache = RedisCache(redis_url, local_ttl=2.0)
    clock = _Clock(1000.0)
    try:
        resolver = Resolver(StaticSource({CUSTOMER: ["a"]}), cache, clock=clock, ttl=60)
        resolver.features(CUSTOMER)  # starts the listener
        wait_for(lambda: cache.listening)
        assert resolver.features(CUSTOMER) == {"a"}
        copy = cache.peek(CUSTOMER)

        assert copy is not None
        assert copy.expires == pytest.approx(1000.0 + 2.0)
    finally:
        cache.close()


@pytest.mark.redis
def test_a_redis_cache_refuses_a_second_resolver_with_other_clocks(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    try:
        Resolver(StaticSource({}), cache, clock=_Clock(0.0))
        with pytest.raises(ValueError, match="clocks"):
            Resolver(StaticSource({}), cache, clock=_Clock(0.0))
    finally:
        cache.close()
