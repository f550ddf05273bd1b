"""RedisCache across real OS processes: one webhook seen everywhere, one Stripe call, one order."""

from __future__ import annotations

import random
import time
import uuid

import pytest
import redis

from entitlegate.cache import _redis_format as stored
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for
from tests.redis.conftest import both_kinds
from tests.redis.workers import Workers
from tests.redis_server import RedisServer
from tests.stripe_events import signed, summary_event

pytestmark = [pytest.mark.redis, both_kinds]


def _customer() -> str:
    return f"cus_{uuid.uuid4().hex[:14]}"


def _propagation(workers: Workers, customer: str, lookup_keys: list[str], created: int) -> float:
    """Seconds from worker 0 starting to handle a summary event to all the others answering it."""
    sender, *watchers = workers
    for watcher in watchers:
        watcher.send("watch", customer=customer, expected=lookup_keys, timeout=5.0)
    for watcher in watchers:
        watcher.receive("ready")
    began, actions = sender.call("handle", deliveries=[signed(summary_event(customer, lookup_keys, created=created))])
    seen = [watcher.receive() for watcher in watchers]
    assert actions == ["applied"]
    return max(seen) - began


def test_a_webhook_in_one_process_is_seen_by_the_others_within_50ms(
    workers: Workers, fake_stripe: FakeStripe, redis_url: str
) -> None:
    workers.configure(local_ttl=60)  # only an invalidation message can explain a quick change
    customer = _customer()
    fake_stripe.set_customer(customer, ["before"])
    assert workers.call_all("copied", customer=customer) == [["before"]] * 4

    created = int(time.time())
    latencies = [_propagation(workers, customer, [f"plan-{sample}"], created + sample) for sample in range(1, 11)]

    assert max(latencies) < 0.050, latencies


def test_concurrent_misses_in_four_processes_make_one_stripe_call(
    workers: Workers, fake_stripe: FakeStripe, redis_url: str
) -> None:
    workers.configure()
    customer = _customer()
    fake_stripe.set_customer(customer, ["seats-feature"])
    fake_stripe.latency = 0.3  # a slow Stripe, so every process misses while the first one asks

    answers = workers.call_all("hammer", customer=customer, threads=25, start_at=time.monotonic() + 0.3)

    assert answers == [[["seats-feature"]] * 25] * 4
    assert fake_stripe.calls() == 1


def test_shuffled_summary_events_from_four_processes_end_with_the_newest_set(
    workers: Workers, admin: redis.Redis
) -> None:
    workers.configure()
    created = int(time.time()) - 2000
    for round_ in range(3):
        customer = _customer()
        events = [signed(summary_event(customer, [f"plan-{n}"], created=created + n)) for n in range(1000)]
        random.Random(round_).shuffle(events)

        for number, worker in enumerate(workers):
            worker.send("handle", deliveries=events[number::4], start_at=time.monotonic() + 0.2)
        actions = [action for worker in workers for action in worker.receive()[1]]

        assert sorted(set(actions)) <= ["applied", "stale"]
        assert len(actions) == 1000
        assert _stored(admin, workers[0].call("key", customer=customer)) == {"plan-999"}, f"round {round_}"
        for worker in workers:  # and no process keeps an older copy
            worker.send("watch", customer=customer, expected=["plan-999"], timeout=5.0)
        for worker in workers:
            worker.receive("ready")
            worker.receive()


def test_processes_answer_from_the_source_while_redis_is_killed_and_share_again_after(
    workers: Workers, server: RedisServer, fake_stripe: FakeStripe, admin: redis.Redis
) -> None:
    workers.configure(local_ttl=0.5)
    customers = [_customer() for _ in range(6)]
    for number, customer in enumerate(customers):
        fake_stripe.set_customer(customer, [f"plan-{number}"])
    workers.call_all("features", customer=customers[0])

    server.stop()
    for worker in workers:
        for number, customer in enumerate(customers[1:5], start=1):
            worker.send("timed_features", customer=customer)
            answer, seconds = worker.receive()
            assert answer == [f"plan-{number}"]
            assert seconds < 1.0
    assert fake_stripe.calls() >= 1 + 4 * 4  # every process asked Stripe for every customer

    server.start()
    # Sharing resumes by itself: a webhook worker 0 applies (a set Stripe does not hold) reaches
    # every process, once each has heard Redis answer again (its listener subscribed). Before
    # that, a process still leaving Redis alone asks Stripe, and a fetch that started after the
    # webhook rightly wins over it (Stripe would hold the webhook's set by then; this one does not).
    wait_for(lambda: all(worker.call("listening") for worker in workers), timeout=10)
    shared, created = customers[5], int(time.time()) + 5
    key = workers[0].call("key", customer=shared)
    delivery = signed(summary_event(shared, ["from-a-webhook"], created=created))

    def written_to_redis() -> bool:
        workers[0].call("handle", deliveries=[delivery])
        return _stored(admin, key) == {"from-a-webhook"}

    wait_for(written_to_redis)
    for worker in workers:
        worker.send("watch", customer=shared, expected=["from-a-webhook"], timeout=5.0)
    for worker in workers:
        worker.receive("ready")
        worker.receive()


def _stored(admin: redis.Redis, key: str) -> frozenset[str] | None:
    data = admin.get(key)
    entry = None if data is None else stored.decode(data)
    return None if entry is None else entry[0]


def test_every_process_answers_in_well_under_a_second_while_redis_is_frozen(
    workers: Workers, server: RedisServer, fake_stripe: FakeStripe, redis_kind: str
) -> None:
    workers.configure()
    customers = [_customer() for _ in range(10)]
    for customer in customers:
        fake_stripe.set_customer(customer, ["seats-feature"])
    workers.call_all("features", customer=customers[0])

    server.freeze()
    try:
        for worker in workers:  # all at once: each sends its requests one after the other
            worker.send("timed_run", customers=customers[1:])
        runs = [worker.receive() for worker in workers]
    finally:
        server.thaw()

    for answers, seconds in runs:
        assert answers == [["seats-feature"]] * 9
        # A hung cluster costs its one request a timeout on the node, then redis-py asks each of
        # the three masters for the slots (a timeout each) before it gives up.
        assert max(seconds) < (0.5 if redis_kind == "single" else 0.25 * 4 + 0.25)
        # The ones that paid for finding out: one, or on a cluster one per master (redis-py 8.2
        # finds a cluster that went down whole node by node; see tests/redis/test_outage.py).
        assert sum(second >= 0.2 for second in seconds) <= (1 if redis_kind == "single" else 3)


def test_after_a_restart_no_stale_local_copy_survives_and_sharing_resumes(
    workers: Workers, server: RedisServer, fake_stripe: FakeStripe
) -> None:
    workers.configure(local_ttl=60)
    customer = _customer()
    fake_stripe.set_customer(customer, ["before"])
    assert workers.call_all("copied", customer=customer) == [["before"]] * 4
    fake_stripe.set_customer(customer, ["after"])

    server.restart()

    # Copies with a minute left: only the listeners forgetting them explains the new answer.
    for worker in workers:
        worker.send("watch", customer=customer, expected=["after"], timeout=5.0)
    for worker in workers:
        worker.receive("ready")
        worker.receive()
    assert _propagation(workers, customer, ["webhook"], int(time.time()) + 5) < 0.050
