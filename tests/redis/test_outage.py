"""RedisCache when Redis is down, hung or restarted: answers keep coming, and sharing comes back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import redis

from entitlegate import CacheUnavailable, RedisCache, Resolver, StaticSource, StripeSource, WebhookHandler
from tests import stripe_events
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

MakeCache = Callable[..., RedisCache]
CUSTOMERS = {f"cus_{number:04d}": [f"plan-{number % 3}"] for number in range(400)}


def _timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_requests_answer_from_the_source_while_redis_is_down(
    server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    for customer, keys in list(CUSTOMERS.items())[:20]:
        fake_stripe.set_customer(customer, keys)
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)
    resolver = Resolver(source, make_cache())
    resolver.features("cus_0000")

    server.stop()
    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        for number in range(1, 10):
            customer = f"cus_{number:04d}"
            assert resolver.features(customer) == set(CUSTOMERS[customer])
    assert fake_stripe.calls() >= 10  # from the source, not from a cache
    assert [record.levelname for record in caplog.records] == ["WARNING"]

    server.start()
    admin = redis.Redis.from_url(server.url)
    key = resolver.cache.namespace + "cus_0019"  # type: ignore[attr-defined]
    wait_for(lambda: bool(resolver.refresh("cus_0019")) and bool(admin.exists(key)))  # sharing resumes
    admin.close()


def test_a_frozen_redis_costs_a_request_at_most_one_timeout(server: RedisServer, make_cache: MakeCache) -> None:
    resolver = Resolver(StaticSource(CUSTOMERS), make_cache())
    resolver.features("cus_0000")
    customers = iter(list(CUSTOMERS)[1:])

    server.freeze()
    latencies = []
    started = time.monotonic()
    while time.monotonic() - started < 1.6:  # across two of the one-second outage windows
        latencies.append(_timed(lambda: resolver.features(next(customers))))
        time.sleep(0.01)  # pacing, so the run spans the windows with a few hundred customers
    server.thaw()

    assert max(latencies) < 0.4
    assert sum(latency >= 0.2 for latency in latencies) <= 2  # one timeout a second, not one per request


@pytest.mark.asyncio
async def test_a_frozen_redis_costs_an_async_request_at_most_one_timeout(
    server: RedisServer, make_cache: MakeCache
) -> None:
    resolver = Resolver(StaticSource(CUSTOMERS), make_cache())
    await resolver.afeatures("cus_0000")

    server.freeze()
    latencies = []
    try:
        for customer in list(CUSTOMERS)[1:40]:
            started = time.monotonic()
            assert await resolver.afeatures(customer) == set(CUSTOMERS[customer])
            latencies.append(time.monotonic() - started)
    finally:
        server.thaw()

    assert max(latencies) < 0.4
    assert sum(latency >= 0.2 for latency in latencies) <= 1


def test_after_a_restart_no_local_copy_survives_and_sharing_resumes(
    server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe
) -> None:
    customer = "cus_restart"
    fake_stripe.set_customer(customer, ["before"])
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)
    writer_cache, reader_cache = make_cache(local_ttl=60), make_cache(local_ttl=60)
    writer, reader = Resolver(source, writer_cache), Resolver(source, reader_cache)
    wait_for(lambda: reader.features(customer) == {"before"} and reader_cache.peek(customer) is not None)
    fake_stripe.set_customer(customer, ["after"])

    server.restart()

    # The copy had a minute left: only the listener forgetting it explains a new answer this soon.
    wait_for(lambda: reader.features(customer) == {"after"})
    created = time.time() + 5
    wait_for(lambda: writer.apply_event(customer, ["webhook"], created) and reader.features(customer) == {"webhook"})


def test_a_change_redis_cannot_take_is_an_error_so_it_is_made_again(server: RedisServer, make_cache: MakeCache) -> None:
    resolver = Resolver(StaticSource(CUSTOMERS), make_cache())
    resolver.features("cus_0001")
    server.stop()
    with pytest.raises(CacheUnavailable):
        resolver.apply_event("cus_0001", ["from-a-webhook"], time.time())
    with pytest.raises(CacheUnavailable):
        resolver.invalidate("cus_0002")
    assert resolver.features("cus_0001") == {"from-a-webhook"}  # this process did take it


def test_a_webhook_redis_cannot_share_answers_503_and_applies_when_stripe_delivers_it_again(
    server: RedisServer, make_cache: MakeCache
) -> None:
    writer = Resolver(StaticSource(CUSTOMERS), make_cache())
    reader = Resolver(StaticSource(CUSTOMERS), make_cache())
    handler = WebhookHandler(writer, stripe_events.SECRET)
    reader.features("cus_0003")
    delivery = stripe_events.signed(stripe_events.summary_event("cus_0003", ["upgraded"]))

    server.stop()
    answer = handler.respond(*delivery)
    assert (answer.status, answer.body["error"]) == (503, "source_unavailable")

    server.start()
    wait_for(lambda: handler.respond(*delivery).status == 200)
    wait_for(lambda: reader.features("cus_0003") == {"upgraded"})
