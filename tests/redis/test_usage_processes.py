"""Usage across real OS processes on one Redis: exact counts, every event billed once, none lost.

Four spawned workers (tests/redis/workers.py), each a Resolver on a RedisCache with the real
``stripe`` SDK talking to the fake Stripe over HTTP, 25 threads each. Stripe fails 30 % of the
meter event posts (500s, which the flusher retries with back-off) and one worker is SIGKILLed
mid-run with events it had claimed and not sent: the others send them once its lease lapses.
One redis-server only: the cluster's usage scripts are covered in test_usage_store.py, and four
more processes on a cluster would add to CI what a store test there already shows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.fake_stripe import METER_EVENTS, FakeStripe
from tests.polling import wait_for
from tests.redis.workers import Workers

pytestmark = pytest.mark.redis

METER = "exports"
EVENTS = 10_000
PROCESSES = 4
THREADS = 25
# Each worker's resolver: a StripeSource timeout of 1 s makes a claimed event's lease 5 s (five
# sends), so the killed worker's events are claimable again 5 s after it claimed them.
OPTIONS = {"timeout": 1.0, "usage_interval": 0.1, "usage_batch": 100}


@pytest.fixture
def usage_workers(redis_url: str, _fake_stripe_server: FakeStripe, fake_stripe: FakeStripe) -> Iterator[Workers]:
    """Four workers of this test's own (one of them is killed), configured for usage."""
    pool = Workers(
        PROCESSES, redis_url=redis_url, stripe_url=_fake_stripe_server.url, api_key=_fake_stripe_server.api_key
    )
    try:
        for worker in pool:
            worker.send("configure_usage", **OPTIONS)
        for worker in pool:
            worker.receive()
        yield pool
    finally:
        pool.stop()


def _customer(fake_stripe: FakeStripe) -> str:
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    fake_stripe.set_customer(customer, ["exports-feature"])  # a customer Stripe knows (else 404)
    fake_stripe.add_meter(METER)
    return customer


def test_four_processes_count_exactly_and_stripe_gets_each_event_once_despite_failures_and_a_kill(
    usage_workers: Workers, fake_stripe: FakeStripe, admin: redis.Redis, redis_url: str
) -> None:
    customer = _customer(fake_stripe)
    # Warm the period's counter first (a cold one is seeded from Stripe's summary, once).
    assert usage_workers[0].call("usage", customer=customer, meter=METER) == 0
    fake_stripe.fail_rate[METER_EVENTS] = 0.3
    fake_stripe.latency = 0.002  # sends take a moment, so the victim dies holding leases
    identifiers = [f"evt-{n:05d}" for n in range(EVENTS)]
    victim, *survivors = usage_workers

    start_at = time.monotonic() + 0.5
    for number, worker in enumerate(usage_workers):
        share = identifiers[number::PROCESSES]
        worker.send("record", customer=customer, meter=METER, identifiers=share, threads=THREADS, start_at=start_at)
    assert victim.receive() == EVENTS // PROCESSES
    victim.process.kill()  # SIGKILL: no flush at exit, no lease released
    victim.process.join()
    assert [worker.receive() for worker in survivors] == [EVENTS // PROCESSES] * (PROCESSES - 1)

    # The counter is exact at once, in Redis, whatever Stripe has received so far.
    assert survivors[0].call("usage", customer=customer, meter=METER) == EVENTS

    # Every identifier reaches Stripe once: the survivors' flushers retry the failed posts and
    # claim the victim's events when their leases lapse.
    wait_for(lambda: len(fake_stripe.identifiers(METER)) == EVENTS, timeout=90.0)
    assert fake_stripe.identifiers(METER) == set(identifiers)
    taken = [event for event in fake_stripe.meter_events if event["event_name"] == METER]
    assert len(taken) == EVENTS  # the fake keeps one event per identifier: nothing was billed twice
    posts = sum(1 for r in fake_stripe.requests if r.path == METER_EVENTS)
    assert posts > 1.25 * EVENTS  # the 30 % failure rate was really in the way: ~EVENTS / 0.7 posts
    fake_stripe.fail_rate.clear()

    # A restart with empty local state (a fresh worker) reads the period total back from Redis;
    # with Redis flushed too, from Stripe's event summaries.
    restarted = Workers(1, redis_url=redis_url, stripe_url=fake_stripe.url, api_key=fake_stripe.api_key)
    try:
        restarted[0].call("configure_usage", **OPTIONS)
        assert restarted[0].call("usage", customer=customer, meter=METER) == EVENTS
        for worker in survivors:
            worker.call("flush_usage")
        admin.flushall()
        restarted[0].call("configure_usage", **OPTIONS)
        assert restarted[0].call("usage", customer=customer, meter=METER) == EVENTS
    finally:
        restarted.stop()


def test_the_gate_admits_exactly_the_limit_across_processes(usage_workers: Workers, fake_stripe: FakeStripe) -> None:
    customer = _customer(fake_stripe)
    limit = 37
    assert usage_workers[0].call("usage", customer=customer, meter=METER) == 0  # the counter, warm

    admitted = usage_workers.call_all(
        "consume", customer=customer, meter=METER, limit=limit, threads=THREADS, start_at=time.monotonic() + 0.5
    )

    assert sum(admitted) == limit  # 100 concurrent requests, none let through past the limit
    assert usage_workers[1].call("usage", customer=customer, meter=METER) == limit
    for worker in usage_workers:
        worker.call("flush_usage")
    wait_for(lambda: len(fake_stripe.identifiers(METER)) == limit, timeout=30.0)
    assert len(fake_stripe.identifiers(METER)) == limit  # the denied were neither counted nor billed
