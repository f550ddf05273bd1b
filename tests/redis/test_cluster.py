"""RedisCache on a Redis Cluster: one slot per customer, invalidations from any node, one node down."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
import redis.cluster
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot

from entitlegate import RedisCache, Resolver, StaticSource
from tests.polling import wait_for
from tests.redis.conftest import MakeCache
from tests.redis_cluster import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.parametrize("redis_kind", ["cluster"], indirect=True)]


def _customers(count: int) -> list[str]:
    return [f"cus_{uuid.uuid4().hex[:14]}" for _ in range(count)]


def test_a_customers_entry_and_lease_share_one_hash_slot(
    make_cache: MakeCache, admin: redis.cluster.RedisCluster
) -> None:
    cache = make_cache(local_ttl=0)
    resolver = Resolver(StaticSource({}), cache)
    [customer] = _customers(1)
    resolver.features(customer)

    key = cache.key(customer)
    assert key == cache.namespace + "{" + customer + "}"
    assert admin.exists(key)
    lease_key = key.replace("entitlegate:", "entitlegate:lease:", 1)
    assert key_slot(key.encode()) == key_slot(lease_key.encode()) == key_slot(customer.encode())


def test_an_invalidation_written_on_any_node_reaches_a_listener_on_another(make_cache: MakeCache) -> None:
    source = StaticSource({})
    reader, writer = make_cache(local_ttl=60), make_cache(local_ttl=60)
    resolver, other = Resolver(source, reader), Resolver(source, writer)
    customers = _customers(12)  # spread over the three masters' slots
    for customer in customers:
        resolver.features(customer)
    wait_for(lambda: reader.listening)
    for customer in customers:
        resolver.features(customer)
        assert reader.peek(customer) is not None

    for customer in customers:
        other.invalidate(customer)

    wait_for(lambda: all(reader.peek(customer) is None for customer in customers))


def test_a_node_down_sends_only_its_customers_to_the_source(
    make_cache: MakeCache, redis_cluster: RedisCluster, admin: redis.cluster.RedisCluster
) -> None:
    cache = make_cache(local_ttl=0)
    source = StaticSource({})
    resolver = Resolver(source, cache)
    customers = _customers(30)
    down = redis_cluster.node_of(cache.key(customers[0]))
    on_down = [c for c in customers if redis_cluster.node_of(cache.key(c)) is down]
    elsewhere = [c for c in customers if c not in on_down]

    down.stop()
    for customer in customers:
        assert resolver.features(customer) == frozenset()

    # The other masters' customers were shared through Redis; the stopped one's never reached it.
    assert all(admin.exists(cache.key(customer)) for customer in elsewhere)
    assert elsewhere
    assert on_down
    stats = resolver.stats
    assert stats.errors == 0


def test_the_cluster_url_builds_cluster_clients_with_short_timeouts(make_cache: MakeCache, redis_url: str) -> None:
    cache = make_cache()
    assert redis_url.startswith("redis+cluster://")
    assert cache.cluster
    assert isinstance(cache._client, redis.cluster.RedisCluster)
    assert repr(cache).startswith("RedisCache('redis+cluster://127.0.0.1:")


def test_a_prefix_with_braces_is_refused_on_a_cluster(redis_url: str) -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisCache(redis_url, prefix="app{1}")


@pytest.mark.skipif(shutil.which("valkey-server") is None, reason="valkey-server is not packaged for this machine")
def test_the_cache_runs_on_a_valkey_cluster(redis_kind: str) -> None:
    cluster = RedisCluster(server="valkey-server", cli="valkey-cli")
    cluster.start()
    try:
        cache = RedisCache(cluster.url, local_ttl=0)
        resolver = Resolver(StaticSource({"cus_valkey": ["seats-feature"]}), cache)
        assert resolver.features("cus_valkey") == {"seats-feature"}
        cache.close()
    finally:
        cluster.stop()


def test_the_cache_setting_takes_a_cluster_url_and_builds_a_cluster_cache(redis_url: str) -> None:
    from entitlegate._settings import build_cache
    from entitlegate._values import read_cache

    cache = build_cache(read_cache(redis_url, "ENTITLEGATE['CACHE']"), "ENTITLEGATE['CACHE']")
    try:
        assert isinstance(cache, RedisCache)
        assert cache.cluster
    finally:
        cache.close()


@pytest.mark.asyncio
async def test_the_async_twins_run_on_the_loops_cluster_client_and_hear_invalidations(make_cache: MakeCache) -> None:
    source = StaticSource({})
    reader, writer = make_cache(local_ttl=60), make_cache(local_ttl=60)
    resolver, other = Resolver(source, reader), Resolver(source, writer)
    [customer] = _customers(1)
    await resolver.afeatures(customer)
    # Polled from a thread, so that the loop runs its listener (on the asyncio cluster client).
    await asyncio.to_thread(wait_for, lambda: reader.listening)
    await resolver.afeatures(customer)
    assert reader.peek(customer) is not None
    assert reader._listener is None  # no thread: the loop's own task listens
    assert isinstance(reader._loops[asyncio.get_running_loop()].redis, AsyncRedisCluster)

    await other.ainvalidate(customer)

    await asyncio.to_thread(wait_for, lambda: reader.peek(customer) is None)
