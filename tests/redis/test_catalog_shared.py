"""The feature catalog on RedisCache: one process's fetch of the account's features serves the rest.

Each RedisCache here has its own connections, as each server process does; the catalog they share
is the one in Redis, never an in-process object.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import pytest

from entitlegate import RedisCache, Resolver, StripeSource
from tests.fake_stripe import FEATURES, FakeStripe
from tests.redis.conftest import both_kinds
from tests.redis.workers import Workers
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def caches(redis_url: str) -> Iterator[list[RedisCache]]:
    prefix = f"eg-catalog-{uuid.uuid4().hex[:8]}"
    made = [RedisCache(redis_url, prefix=prefix) for _ in range(2)]
    yield made
    for cache in made:
        cache.close()


@pytest.fixture
def plans(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_feature("starter", {"seats": "3"})
    fake_stripe.set_feature("pro", {"seats": "25"})
    fake_stripe.set_feature("enterprise", {"seats": "unlimited"})
    fake_stripe.set_customer("cus_pro", ["starter", "pro"])
    fake_stripe.set_customer("cus_big", ["enterprise"])
    return fake_stripe


def resolver_on(fake: FakeStripe, cache: RedisCache) -> Resolver:
    return Resolver(StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0), cache)


def test_a_catalog_one_process_fetched_serves_another_without_asking_stripe(
    plans: FakeStripe, caches: list[RedisCache]
) -> None:
    first, second = (resolver_on(plans, cache) for cache in caches)
    assert first.limit("cus_pro", "seats") == 25
    listed = plans.calls(FEATURES)
    assert listed >= 1
    assert second.limit("cus_big", "seats") == math.inf
    assert plans.calls(FEATURES) == listed  # read from Redis, not from Stripe


@pytest.mark.asyncio
async def test_the_async_twins_share_the_catalog_too(plans: FakeStripe, caches: list[RedisCache]) -> None:
    first, second = (resolver_on(plans, cache) for cache in caches)
    assert await first.alimit("cus_pro", "seats") == 25
    listed = plans.calls(FEATURES)
    assert await second.alimit("cus_pro", "seats") == 25
    assert plans.calls(FEATURES) == listed


def test_with_redis_down_the_catalog_is_asked_of_stripe_and_limits_stay_right(
    plans: FakeStripe, caches: list[RedisCache], server: RedisServer
) -> None:
    server.stop()
    resolver = resolver_on(plans, caches[0])
    assert resolver.limit("cus_pro", "seats") == 25
    assert plans.calls(FEATURES) >= 1


@both_kinds
def test_four_processes_read_the_catalog_one_of_them_fetched(plans: FakeStripe, workers: Workers) -> None:
    workers.configure()
    first, *others = workers
    assert first.call("limit", customer="cus_pro", name="seats") == 25
    listed = plans.calls(FEATURES)
    assert [worker.call("limit", customer="cus_big", name="seats") for worker in others] == [math.inf] * 3
    assert plans.calls(FEATURES) == listed  # the other processes read Redis, not Stripe
