"""RedisCache when Redis is down, hung or restarted: answers keep coming, and sharing comes back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from entitlegate import (
    CacheUnavailable,
    RedisCache,
    Resolver,
    SourceUnavailable,
    StaticSource,
    StripeSource,
    WebhookHandler,
)
from tests import stripe_events
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for
from tests.redis.conftest import both_kinds
from tests.redis_server import RedisServer
from tests.test_resolver import at_once

pytestmark = [pytest.mark.redis, both_kinds]

MakeCache = Callable[..., RedisCache]
CUSTOMERS = {f"cus_{number:04d}": [f"plan-{number % 3}"] for number in range(400)}


def _hung_cost(redis_kind: str) -> float:
    """The most a hung Redis may cost one request: a timeout; on a cluster, redis-py then asks each
    of the three masters for the slots (a timeout each) before it gives up."""
    return 0.4 if redis_kind == "single" else 0.25 * 4 + 0.15


def _finding_out(redis_kind: str) -> int:
    """How many requests may pay for finding out that Redis went down whole: one, or on a cluster
    one per master. redis-py up to 8.1 says "no node answered" on the first failure; 8.2 refreshes
    its slot map at most once a second, so a cluster that went down fails node by node, and the
    last master's failure is the cluster's."""
    return 1 if redis_kind == "single" else 3


def _timed(call: Callable[[], object]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_requests_answer_from_the_source_while_redis_is_down(
    server: RedisServer,
    make_cache: MakeCache,
    fake_stripe: FakeStripe,
    caplog: pytest.LogCaptureFixture,
    admin: redis.Redis,
    redis_kind: str,
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
    warnings = [record.getMessage() for record in caplog.records]
    assert {record.levelname for record in caplog.records} == {"WARNING"}
    assert 1 <= len(warnings) <= _finding_out(redis_kind)
    assert len(set(warnings)) == len(warnings)  # each node once, not once per request
    assert f"Redis at {resolver.cache.location} is unavailable" in warnings[-1]  # type: ignore[attr-defined]
    assert resolver.cache.unavailable  # type: ignore[attr-defined]

    server.start()
    key = resolver.cache.key("cus_0019")  # type: ignore[attr-defined]
    wait_for(lambda: bool(resolver.refresh("cus_0019")) and bool(admin.exists(key)))  # sharing resumes


def test_a_frozen_redis_costs_a_request_at_most_one_timeout(
    server: RedisServer, make_cache: MakeCache, redis_kind: str
) -> None:
    resolver = Resolver(StaticSource(CUSTOMERS), make_cache())
    resolver.features("cus_0000")
    customers = iter(list(CUSTOMERS)[1:])

    server.freeze()
    latencies = []
    started = time.monotonic()
    while time.monotonic() - started < 1.6:  # across two of the one-second outage windows
        latencies.append(_timed(lambda: resolver.features(next(customers))))
        time.sleep(0.01)  # pacing, so the run spans the windows with a few hundred customers
    down = resolver.cache.unavailable  # type: ignore[attr-defined]
    server.thaw()

    assert max(latencies) < _hung_cost(redis_kind)
    assert down  # so every request waits on one breaker: one probe a second, not one per node
    # Finding out, then one timeout a second: not one per request (there were over a hundred).
    assert sum(latency >= 0.2 for latency in latencies) <= _finding_out(redis_kind) + 1


@pytest.mark.asyncio
async def test_a_frozen_redis_costs_an_async_request_at_most_one_timeout(
    server: RedisServer, make_cache: MakeCache, redis_kind: str
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

    assert max(latencies) < _hung_cost(redis_kind)
    assert sum(latency >= 0.2 for latency in latencies) <= _finding_out(redis_kind)


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


def _stripe_source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


def _hammer(resolver: Resolver, customers: list[str], *, threads: int, seconds: float) -> tuple[int, int]:
    """``threads`` threads asking for every customer in turn for ``seconds``: (checks, outages)."""
    until = time.monotonic() + seconds

    def ask(offset: int) -> tuple[int, int]:
        checks = outages = 0
        while time.monotonic() < until:
            for customer in customers[offset:] + customers[:offset]:
                checks += 1
                try:
                    resolver.features(customer)
                except SourceUnavailable:
                    outages += 1
        return checks, outages

    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(ask, range(0, len(customers), len(customers) // threads)))
    return sum(checks for checks, _ in counts), sum(outages for _, outages in counts)


@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_while_redis_is_down_a_customer_costs_stripe_one_call_per_ttl_not_one_per_local_ttl(
    outage: str, server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe
) -> None:
    customers = [f"cus_outage{number:04d}" for number in range(40)]
    for number, customer in enumerate(customers):
        fake_stripe.set_customer(customer, [f"plan-{number % 3}"])
    cache = make_cache(local_ttl=0.2)
    resolver = Resolver(_stripe_source(fake_stripe), cache, ttl=2.0)
    resolver.features(customers[0])  # starts the listener
    wait_for(lambda: cache.listening)  # else its subscribing would forget the copies made next
    for customer in customers:
        resolver.features(customer)
    assert all(cache.peek(customer) is not None for customer in customers)
    before = fake_stripe.count_by_customer()

    server.stop() if outage == "killed" else server.freeze()
    try:
        seconds = 4.0  # two ttls: each customer's entry expires once or twice in it
        checks, outages = _hammer(resolver, customers, threads=4, seconds=seconds)
    finally:
        server.thaw()

    calls = fake_stripe.count_by_customer() - before
    assert outages == 0  # every customer had a copy
    assert checks > 20 * len(customers)  # a few checks per customer per local_ttl
    assert max(calls[customer] for customer in customers) <= 3, calls  # 20 if per local_ttl
    assert calls.total() / seconds <= 1.5 * len(customers) / resolver.ttl


def test_while_redis_is_down_concurrent_misses_in_one_process_make_one_stripe_call(
    server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe
) -> None:
    for customer in ("cus_first", "cus_burst"):
        fake_stripe.set_customer(customer, ["seats-feature"])
    resolver = Resolver(_stripe_source(fake_stripe), make_cache())
    server.stop()
    resolver.features("cus_first")  # the outage is known: what follows never waits on Redis
    fake_stripe.latency = 0.2  # every thread misses while the first one asks
    before = fake_stripe.calls()

    answers = at_once(16, lambda: resolver.features("cus_burst"))

    assert answers == [{"seats-feature"}] * 16
    assert fake_stripe.calls() - before == 1


@pytest.mark.asyncio
async def test_while_redis_is_down_concurrent_async_misses_make_one_stripe_call(
    server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe
) -> None:
    for customer in ("cus_first", "cus_burst"):
        fake_stripe.set_customer(customer, ["seats-feature"])
    resolver = Resolver(_stripe_source(fake_stripe), make_cache())
    server.stop()
    await resolver.afeatures("cus_first")
    fake_stripe.latency = 0.2
    before = fake_stripe.calls()

    answers = await asyncio.gather(*(resolver.afeatures("cus_burst") for _ in range(16)))

    assert answers == [{"seats-feature"}] * 16
    assert fake_stripe.calls() - before == 1


def test_copies_kept_through_an_outage_are_dropped_when_redis_is_back(
    server: RedisServer, make_cache: MakeCache, fake_stripe: FakeStripe
) -> None:
    customer = "cus_kept"
    fake_stripe.set_customer(customer, ["before"])
    reader_cache = make_cache(local_ttl=0.05)
    reader = Resolver(_stripe_source(fake_stripe), reader_cache, ttl=60)
    reader.features(customer)
    wait_for(lambda: reader_cache.listening)
    reader.features(customer)
    server.stop()
    # Past local_ttl, the outage keeps the copy answering for the entry's own minute.
    wait_for(lambda: reader.features(customer) == {"before"} and _time_left(reader_cache, customer) > 30)

    server.start()
    writer = Resolver(_stripe_source(fake_stripe), make_cache())
    created = time.time() + 5
    wait_for(lambda: writer.apply_event(customer, ["after"], created))

    wait_for(lambda: reader.features(customer) == {"after"})  # the copy had a minute left


def _time_left(cache: RedisCache, customer: str) -> float:
    copy = cache.peek(customer)
    return -1.0 if copy is None else copy.expires - time.monotonic()
