"""Resolver.limit / limits / within_limit and their async twins, over the real SDK to the fake Stripe."""

from __future__ import annotations

import asyncio
import gc
import math
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from entitlegate import RedisCache, Resolver, SourceUnavailable, StaticSource, StripeSource
from entitlegate.catalog import Catalog
from entitlegate.testing import override_features
from tests.doubles import Clock
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, FEATURES, FakeStripe
from tests.redis_server import RedisServer


@pytest.fixture
def source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


@pytest.fixture
def plans(fake_stripe: FakeStripe) -> FakeStripe:
    """Starter 3 seats, Pro 25, Enterprise unlimited; an add-on with 10 more projects."""
    fake_stripe.set_feature("starter", {"seats": "3", "projects": "1"})
    fake_stripe.set_feature("pro", {"seats": "25", "projects": "5"})
    fake_stripe.set_feature("enterprise", {"seats": "unlimited"})
    fake_stripe.set_feature("projects-addon", {"projects": "10"})
    return fake_stripe


def test_the_limit_is_the_highest_over_the_features_held(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["starter", "pro", "projects-addon"])
    resolver = Resolver(source)
    assert resolver.limit("cus_1", "seats") == 25
    assert resolver.limit("cus_1", "projects") == 10
    assert dict(resolver.limits("cus_1")) == {"seats": 25, "projects": 10}


def test_unlimited_is_infinity_and_beats_every_number(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro", "enterprise"])
    resolver = Resolver(source)
    assert resolver.limit("cus_1", "seats") == math.inf
    assert resolver.within_limit("cus_1", "seats", 1_000_000)


def test_a_limit_no_feature_carries_is_the_default(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["starter"])
    plans.set_customer("cus_2", [])
    resolver = Resolver(source)
    assert resolver.limit("cus_1", "storage-gb") == 0
    assert resolver.limit("cus_1", "storage-gb", default=2) == 2
    assert resolver.limit("cus_2", "seats") == 0
    assert resolver.limit("cus_unknown", "seats", default=1) == 1


def test_bad_metadata_is_ignored_for_limits(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("basic", {"seats": "3"})
    fake_stripe.set_feature("typo", {"seats": "2.5e9"})
    fake_stripe.set_feature("words", {"seats": "lots"})
    fake_stripe.set_customer("cus_1", ["basic", "typo", "words"])
    assert Resolver(source).limit("cus_1", "seats") == 3


def test_within_limit_compares_the_need_with_the_limit(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["starter"])
    resolver = Resolver(source)
    assert resolver.within_limit("cus_1", "seats", 3)
    assert not resolver.within_limit("cus_1", "seats", 4)
    assert resolver.within_limit("cus_1", "storage-gb", 0)


@pytest.mark.parametrize("need", [True, -1, 2.0, "3", None])
def test_within_limit_refuses_a_need_that_is_not_a_whole_number(need: object) -> None:
    resolver = Resolver(StaticSource({"cus_1": ["a"]}))
    with pytest.raises(ValueError, match="need"):
        resolver.within_limit("cus_1", "seats", need)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "  ", None, 3, ["seats"]])
def test_a_limit_name_must_be_a_non_blank_string(name: object) -> None:
    resolver = Resolver(StaticSource({"cus_1": ["a"]}, features={"a": {"seats": "3"}}))
    resolver.limit("cus_1", "seats")  # cached, so the name is refused on the hit path too
    with pytest.raises(ValueError, match="limit name"):
        resolver.limit("cus_1", name)  # type: ignore[arg-type]


@pytest.mark.parametrize("customer", ["", " ", None])
def test_a_bad_customer_is_refused_without_asking_stripe(
    source: StripeSource, fake_stripe: FakeStripe, customer: object
) -> None:
    with pytest.raises(ValueError, match="customer"):
        Resolver(source).limit(customer, "seats")  # type: ignore[arg-type]
    assert fake_stripe.requests == []


def test_a_cached_customers_limit_asks_stripe_nothing(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    plans.set_customer("cus_2", ["pro"])
    resolver = Resolver(source)
    resolver.limit("cus_1", "seats")
    resolver.features("cus_2")
    asked = len(plans.requests)
    for _ in range(100):
        assert resolver.limit("cus_1", "seats") == 25
        assert resolver.limit("cus_2", "seats") == 25  # the same plan set: the memo's answer
        assert resolver.limit("cus_2", "storage-gb", default=7) == 7
    assert len(plans.requests) == asked
    assert resolver.stats.hits >= 300


def test_customers_with_the_same_plan_share_one_set(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro", "projects-addon"])
    plans.set_customer("cus_2", ["projects-addon", "pro"])
    resolver = Resolver(source)
    assert resolver.features("cus_1") is resolver.features("cus_2")


def test_a_feature_archived_after_being_granted_still_gives_its_limit(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    clock = Clock()
    resolver = Resolver(source, clock=clock)
    assert resolver.limit("cus_1", "seats") == 25
    plans.set_feature("pro", {"seats": "25"}, active=False)  # archived: existing customers keep it
    clock.advance(301)  # the catalog and the customer's entry both expire
    assert resolver.limit("cus_1", "seats") == 25
    assert resolver.catalog.current is not None
    assert not resolver.catalog.current.by_key["pro"].active


def test_a_lookup_key_the_catalog_has_not_seen_refreshes_it_once(source: StripeSource, plans: FakeStripe) -> None:
    clock = Clock()
    resolver = Resolver(source, clock=clock)
    resolver.catalog = Catalog(source, refresh_interval=10, clock=clock)
    plans.set_customer("cus_1", ["starter"])
    assert resolver.limit("cus_1", "seats") == 3
    clock.advance(10)
    plans.set_feature("team", {"seats": "12"})  # a new plan, made after the catalog was read
    for index in range(20):
        plans.set_customer(f"cus_team_{index}", ["team"])
    catalog_calls = plans.calls(FEATURES)
    for index in range(20):
        for _ in range(5):
            assert resolver.limit(f"cus_team_{index}", "seats") == 12
    assert plans.calls(FEATURES) - catalog_calls == 2  # one refresh: its active and archived lists
    assert plans.calls(ACTIVE_ENTITLEMENTS) == 21


def test_many_threads_meeting_an_unknown_lookup_key_refresh_the_catalog_once(
    source: StripeSource, plans: FakeStripe
) -> None:
    resolver = Resolver(source)
    plans.set_customer("cus_0", ["starter"])
    resolver.limit("cus_0", "seats")
    plans.set_feature("team", {"seats": "12"})
    plans.set_customer("cus_1", ["team"])
    resolver.features("cus_1")
    resolver.catalog.refresh_interval = 0
    plans.latency = 0.05
    answers: list[float] = []
    threads = [threading.Thread(target=lambda: answers.append(resolver.limit("cus_1", "seats"))) for _ in range(8)]
    before = resolver.catalog.fetches
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [12] * 8
    assert resolver.catalog.fetches - before == 1


def test_a_catalog_outage_serves_the_stale_catalog(source: StripeSource, plans: FakeStripe) -> None:
    clock = Clock()
    resolver = Resolver(source, clock=clock, ttl=300, stale_ttl=3600)
    plans.set_customer("cus_1", ["pro"])
    assert resolver.limit("cus_1", "seats") == 25
    clock.advance(301)
    plans.always_fail = 503
    assert resolver.limit("cus_1", "seats") == 25  # both the entry and the catalog served stale
    assert resolver.stats.stale_served == 1


def test_a_catalog_outage_with_no_catalog_raises_rather_than_answer_a_number(
    source: StripeSource, plans: FakeStripe
) -> None:
    plans.set_customer("cus_1", ["pro"])
    resolver = Resolver(source)
    resolver.features("cus_1")  # the customer is cached; the catalog was never read
    plans.always_fail = 500
    with pytest.raises(SourceUnavailable):
        resolver.limit("cus_1", "seats")
    with pytest.raises(SourceUnavailable):
        resolver.limit("cus_1", "seats", default=5)
    with pytest.raises(SourceUnavailable):
        resolver.within_limit("cus_1", "seats", 0)


def test_an_outage_of_the_customers_features_raises_as_features_does(source: StripeSource, plans: FakeStripe) -> None:
    resolver = Resolver(source, on_unavailable="allow")
    plans.always_fail = 503
    with pytest.raises(SourceUnavailable):
        resolver.limit("cus_1", "seats")


def test_overridden_features_have_their_catalog_limits(plans: FakeStripe, source: StripeSource) -> None:
    resolver = Resolver(source)
    with override_features(resolver, {"cus_test": {"enterprise"}}):
        assert resolver.limit("cus_test", "seats") == math.inf


def test_a_source_without_a_catalog_has_no_limits() -> None:
    class Bare:
        livemode = None

        def fetch(self, customer: str) -> frozenset[str]:
            return frozenset({"a"})

        async def afetch(self, customer: str) -> frozenset[str]:
            return frozenset({"a"})

    with pytest.raises(TypeError, match="cannot list features"):
        Resolver(Bare()).limit("cus_1", "seats")


def test_a_static_source_gives_limits_too() -> None:
    resolver = Resolver(StaticSource({"cus_1": ["pro"]}, features={"pro": {"seats": "25"}}))
    assert resolver.limit("cus_1", "seats") == 25


# -- async twins -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_twins_answer_as_the_sync_ones(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["starter", "projects-addon"])
    resolver = Resolver(source)
    assert await resolver.alimit("cus_1", "seats") == 3
    assert dict(await resolver.alimits("cus_1")) == {"seats": 3, "projects": 10}
    assert await resolver.awithin_limit("cus_1", "projects", 10)
    assert not await resolver.awithin_limit("cus_1", "seats", 4)
    assert await resolver.alimit("cus_1", "storage-gb", default=9) == 9
    await source.aclose()


@pytest.mark.asyncio
async def test_concurrent_async_limits_read_the_catalog_once(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    resolver = Resolver(source)
    answers = await asyncio.gather(*(resolver.alimit("cus_1", "seats") for _ in range(10)))
    assert answers == [25] * 10
    assert resolver.catalog.fetches == 1
    assert plans.calls(ACTIVE_ENTITLEMENTS) == 1
    await source.aclose()


@pytest.mark.asyncio
async def test_an_async_catalog_outage_with_no_catalog_raises(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    resolver = Resolver(source)
    await resolver.afeatures("cus_1")
    plans.always_fail = 500
    with pytest.raises(SourceUnavailable):
        await resolver.alimit("cus_1", "seats")
    with pytest.raises(ValueError, match="need"):
        await resolver.awithin_limit("cus_1", "seats", -1)
    await source.aclose()


# -- a shared cache ----------------------------------------------------------------------------------


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.thaw()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture
def make_cache(redis_url: str) -> Iterator[Callable[[], RedisCache]]:
    caches: list[RedisCache] = []

    def make() -> RedisCache:
        caches.append(RedisCache(redis_url))
        return caches[-1]

    yield make
    for cache in caches:
        cache.close()


@pytest.mark.redis
def test_limits_hold_for_entries_another_process_wrote_to_redis(
    source: StripeSource, plans: FakeStripe, make_cache: Callable[[], RedisCache]
) -> None:
    plans.set_customer("cus_1", ["starter", "enterprise"])
    writer, reader = Resolver(source, make_cache()), Resolver(source, make_cache())
    writer.features("cus_1")
    asked = plans.calls(ACTIVE_ENTITLEMENTS)
    assert reader.limit("cus_1", "seats") == math.inf
    assert reader.limit("cus_1", "projects") == 1
    assert plans.calls(ACTIVE_ENTITLEMENTS) == asked  # the entry came from Redis, not Stripe


def test_a_metadata_change_shows_once_the_catalog_is_refreshed(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    resolver = Resolver(source)
    assert resolver.limit("cus_1", "seats") == 25
    plans.set_feature("pro", {"seats": "30", "projects": "5"})
    assert resolver.limit("cus_1", "seats") == 25  # Stripe sends no event for it: the ttl decides
    resolver.catalog.refresh()
    assert resolver.limit("cus_1", "seats") == 30


def test_a_catalog_does_not_keep_the_resolvers_that_follow_it_alive(source: StripeSource, plans: FakeStripe) -> None:
    catalog = Catalog(source)
    resolver = Resolver(source)
    resolver.catalog = catalog
    followed = weakref.ref(resolver)
    del resolver
    gc.collect()
    assert followed() is None
    catalog.refresh()  # a follower gone is skipped


def _python_calls(call: Callable[[], object]) -> list[str]:
    """The Python functions ``call`` runs (C functions such as dict.get are not reported)."""
    names: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return names[1:]  # the lambda itself


def test_a_cached_customers_limit_runs_no_code_beyond_the_hit_path(source: StripeSource, plans: FakeStripe) -> None:
    plans.set_customer("cus_1", ["pro"])
    plans.set_customer("cus_2", ["enterprise"])
    resolver = Resolver(source)
    resolver.limit("cus_1", "seats")
    resolver.limit("cus_2", "seats")
    assert _python_calls(lambda: resolver.limit("cus_1", "seats")) == ["limit"]
    # A limit the catalog knows but none of the customer's features carries: the default, as fast.
    assert _python_calls(lambda: resolver.limit("cus_2", "projects", default=3)) == ["limit"]
    resolver.catalog.refresh()  # a new snapshot: the resolver follows it
    resolver.limit("cus_1", "seats")
    assert _python_calls(lambda: resolver.limit("cus_1", "seats")) == ["limit"]
