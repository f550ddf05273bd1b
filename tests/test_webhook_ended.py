"""Events that say access may have ended end the stale fallback: an outage never serves the old set.

Through the real stripe SDK against the fake Stripe (down with 503s), on MemoryCache and real Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from entitlegate import MemoryCache, RedisCache, Resolver, SourceUnavailable, StripeSource, WebhookHandler
from entitlegate.cache import Cache
from tests import stripe_events as ev
from tests.fake_stripe import FakeStripe
from tests.redis_server import RedisServer

CUSTOMER = "cus_ended"


@pytest.fixture(params=["memory", "redis"])
def make_cache(request: pytest.FixtureRequest) -> Iterator[Callable[[], Cache]]:
    """Caches of one kind; on Redis, each is another process's view of one shared database."""
    caches: list[RedisCache] = []
    url = ""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        if server.process is None or server.process.poll() is not None:
            server.start()
        url = server.url
        with redis.Redis.from_url(url) as client:
            client.flushdb()

    def make() -> Cache:
        if not url:
            return MemoryCache()
        cache = RedisCache(url, local_ttl=0)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def _resolver(fake: FakeStripe, cache: Cache, on_unavailable: str = "raise") -> Resolver:
    # No retries: the outage here is a 503 on every request, and retrying it only costs time.
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0)
    return Resolver(source, cache, on_unavailable=on_unavailable)  # type: ignore[arg-type]


def _held_then_outage(fake: FakeStripe, resolver: Resolver, payload: dict[str, object]) -> str:
    fake.set_customer(CUSTOMER, ["seats-feature"])
    assert resolver.has_feature(CUSTOMER, "seats-feature")
    action = WebhookHandler(resolver, ev.SECRET).handle(*ev.signed(payload)).action
    fake.always_fail = 503
    return action


def test_customer_deleted_leaves_the_empty_set_even_in_an_outage(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache]
) -> None:
    resolver = _resolver(fake_stripe, make_cache())
    action = _held_then_outage(fake_stripe, resolver, ev.customer_deleted_event(CUSTOMER))
    calls = fake_stripe.calls()

    assert action == "applied"
    assert resolver.features(CUSTOMER) == frozenset()
    assert not resolver.has_feature(CUSTOMER, "seats-feature")
    assert fake_stripe.calls() == calls


@pytest.mark.parametrize(
    ("kind", "status"),
    [("deleted", "canceled"), ("paused", "paused"), ("updated", "canceled"), ("updated", "unpaid"),
     ("updated", "incomplete_expired"), ("updated", "paused")],
)  # fmt: skip
def test_a_subscription_that_ended_is_not_served_stale_in_an_outage(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache], kind: str, status: str
) -> None:
    resolver = _resolver(fake_stripe, make_cache())
    payload = ev.subscription_event(CUSTOMER, kind, status=status)
    assert _held_then_outage(fake_stripe, resolver, payload) == "invalidated"

    with pytest.raises(SourceUnavailable):
        resolver.features(CUSTOMER)
    with pytest.raises(SourceUnavailable):
        resolver.has_feature(CUSTOMER, "seats-feature")
    assert resolver.stats.stale_served == 0


def test_after_an_ended_subscription_the_outage_policy_answers(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache]
) -> None:
    deny = _resolver(fake_stripe, make_cache(), on_unavailable="deny")
    _held_then_outage(fake_stripe, deny, ev.subscription_event(CUSTOMER, "deleted"))
    assert not deny.has_feature(CUSTOMER, "seats-feature")

    fake_stripe.always_fail = None
    allow = _resolver(fake_stripe, make_cache(), on_unavailable="allow")
    _held_then_outage(fake_stripe, allow, ev.subscription_event(CUSTOMER, "deleted"))
    assert allow.has_feature(CUSTOMER, "seats-feature")


def test_an_ended_subscription_seen_by_one_process_ends_the_fallback_in_every_other(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache]
) -> None:
    shared = make_cache()
    if isinstance(shared, MemoryCache):
        pytest.skip("a MemoryCache is one process's")
    reader = _resolver(fake_stripe, shared)
    writer = _resolver(fake_stripe, make_cache())
    fake_stripe.set_customer(CUSTOMER, ["seats-feature"])
    assert reader.has_feature(CUSTOMER, "seats-feature")

    WebhookHandler(writer, ev.SECRET).handle(*ev.signed(ev.subscription_event(CUSTOMER, "deleted")))
    fake_stripe.always_fail = 503

    with pytest.raises(SourceUnavailable):
        reader.features(CUSTOMER)


@pytest.mark.parametrize(("kind", "status"), [("updated", "active"), ("updated", "past_due"), ("resumed", "active")])
def test_a_subscription_still_running_keeps_the_stale_fallback(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache], kind: str, status: str
) -> None:
    resolver = _resolver(fake_stripe, make_cache())
    payload = ev.subscription_event(CUSTOMER, kind, status=status)
    assert _held_then_outage(fake_stripe, resolver, payload) == "invalidated"

    assert resolver.features(CUSTOMER) == {"seats-feature"}
    assert resolver.stats.stale_served == 1
