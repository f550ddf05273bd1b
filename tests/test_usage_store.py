"""MemoryCache as a UsageStore: exact counters, set-if-cold seeds, pending events claimed under leases."""

from __future__ import annotations

import threading

from entitlegate import MemoryCache
from entitlegate._meters import MeterEvent
from entitlegate.cache._memory_usage import MemoryUsage
from entitlegate.usage import UsageStore

PERIOD = 1_764_547_200


def _event(identifier: str, value: int = 1) -> MeterEvent:
    return MeterEvent("exports", "cus_1", value, identifier, PERIOD + 10)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_cache_is_a_usage_store() -> None:
    assert isinstance(MemoryCache(), UsageStore)


def test_a_cold_counter_counts_and_queues_nothing() -> None:
    store = MemoryCache()
    assert store.add_usage("cus_1", "exports", PERIOD, 1, _event("e1")) is None
    assert store.usage_total("cus_1", "exports", PERIOD) is None
    assert store.claim(10, 30) == []


def test_seed_sets_only_a_cold_counter() -> None:
    store = MemoryCache()
    assert store.seed_usage("cus_1", "exports", PERIOD, 7) == 7
    assert store.seed_usage("cus_1", "exports", PERIOD, 99) == 7
    assert store.add_usage("cus_1", "exports", PERIOD, 2, _event("e1")) == (True, 9)
    assert store.usage_total("cus_1", "exports", PERIOD) == 9
    assert store.usage_total("cus_1", "other", PERIOD) is None
    assert store.usage_total("cus_2", "exports", PERIOD) is None


def test_a_limit_admits_up_to_it_and_a_denial_changes_nothing() -> None:
    store = MemoryCache()
    store.seed_usage("cus_1", "exports", PERIOD, 0)
    assert store.add_usage("cus_1", "exports", PERIOD, 3, _event("e1"), limit=4) == (True, 3)
    assert store.add_usage("cus_1", "exports", PERIOD, 2, _event("e2"), limit=4) == (False, 3)
    assert store.add_usage("cus_1", "exports", PERIOD, 1, _event("e3"), limit=4) == (True, 4)
    assert [e.identifier for e in store.claim(10, 30)] == ["e1", "e3"]


def test_a_newer_period_drops_the_older_counter() -> None:
    store = MemoryCache()
    store.seed_usage("cus_1", "exports", PERIOD, 5)
    store.seed_usage("cus_1", "exports", PERIOD + 100, 0)
    assert store.usage_total("cus_1", "exports", PERIOD) is None
    assert store.usage_total("cus_1", "exports", PERIOD + 100) == 0


def test_counts_are_exact_under_100_threads() -> None:
    store = MemoryCache()
    store.seed_usage("cus_1", "exports", PERIOD, 0)
    start = threading.Barrier(100)

    def work(worker: int) -> None:
        start.wait()
        for number in range(200):
            store.add_usage("cus_1", "exports", PERIOD, 1, _event(f"w{worker}-{number}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.usage_total("cus_1", "exports", PERIOD) == 20_000
    claimed = store.claim(30_000, 30)
    assert len({e.identifier for e in claimed}) == 20_000


def test_claimed_events_are_leased_until_acked_or_the_lease_lapses() -> None:
    clock = _Clock()
    usage = MemoryUsage(clock)
    usage.seed_usage("cus_1", "exports", PERIOD, 0)
    for number in range(5):
        usage.add_usage("cus_1", "exports", PERIOD, 1, _event(f"e{number}"))
    first = usage.claim(2, 30)
    assert [e.identifier for e in first] == ["e0", "e1"]
    assert [e.identifier for e in usage.claim(2, 30)] == ["e2", "e3"]  # the leased ones are skipped
    usage.ack(first)
    clock.now += 31  # e2, e3 lapse: claimable again, before the younger e4
    assert [e.identifier for e in usage.claim(10, 30)] == ["e2", "e3", "e4"]
    assert usage.pending == 3
    clock.now += 31
    usage.ack(usage.claim(10, 30))
    assert usage.pending == 0
    assert usage.claim(10, 30) == []


def test_a_queued_event_is_pending_without_being_counted() -> None:
    usage = MemoryUsage()
    usage.queue(_event("e1"))
    assert usage.usage_total("cus_1", "exports", PERIOD) is None
    assert [e.identifier for e in usage.claim(10, 30)] == ["e1"]
