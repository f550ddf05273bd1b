"""Resolver.record_usage / consume_usage / usage on MemoryCache: exact counts, seeds, periods, bad input."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Iterable

import pytest

from entitlegate import Entry, MemoryCache, Resolver, SourceUnavailable, StaticSource, StripeSource
from entitlegate._meters import MeterEvent
from entitlegate.usage import calendar_month
from tests.conftest import Closing
from tests.fake_stripe import SUBSCRIPTIONS, FakeStripe

METER = "exports"
SUMMARIES = "event_summaries"


def _stripe(fake: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0)


@pytest.fixture
def metered(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_customer("cus_2", [])
    fake_stripe.add_meter(METER)
    return fake_stripe


def _sent(resolver: Resolver, source: StaticSource) -> list[MeterEvent]:
    """Every event the resolver has sent to ``source``, once what is pending is flushed."""
    resolver.flush_usage()
    return list(source.meter_events)


def test_recorded_usage_is_counted_at_once_and_each_event_queued_with_its_own_identifier() -> None:
    source = StaticSource({})
    resolver = Resolver(source)
    resolver.record_usage("cus_1", METER)
    resolver.record_usage("cus_1", METER, 4)
    resolver.record_usage("cus_1", METER, identifier="mine-1")
    assert resolver.usage("cus_1", METER) == 6
    assert resolver.usage("cus_2", METER) == 0
    events = _sent(resolver, source)
    assert [e.value for e in events] == [1, 4, 1]
    assert events[2].identifier == "mine-1"
    assert len({e.identifier for e in events}) == 3
    assert all(e.identifier.startswith("eg_") for e in events[:2])


def test_consume_admits_within_the_limit_and_a_denial_counts_and_sends_nothing() -> None:
    source = StaticSource({})
    resolver = Resolver(source)
    assert resolver.consume_usage("cus_1", METER, 3, 2) == (True, 2)
    assert resolver.consume_usage("cus_1", METER, 3, 2) == (False, 2)
    assert resolver.consume_usage("cus_1", METER, 3) == (True, 3)
    assert resolver.consume_usage("cus_1", METER, 3) == (False, 3)
    assert resolver.consume_usage("cus_1", METER, math.inf, 10) == (True, 13)
    assert resolver.consume_usage("cus_2", METER, 0) == (False, 0)
    assert [e.value for e in _sent(resolver, source)] == [2, 1, 10]


def test_consume_never_over_admits_under_100_threads() -> None:
    source = StaticSource({})
    resolver = Resolver(source)
    start = threading.Barrier(100)
    admitted: list[bool] = []

    def work() -> None:
        start.wait()
        admitted.extend(resolver.consume_usage("cus_1", METER, 137)[0] for _ in range(5))

    threads = [threading.Thread(target=work) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 137
    assert resolver.usage("cus_1", METER) == 137
    assert len(_sent(resolver, source)) == 137


def test_record_usage_is_exact_under_100_threads() -> None:
    source = StaticSource({})
    resolver = Resolver(source)
    start = threading.Barrier(100)

    def work() -> None:
        start.wait()
        for _ in range(100):
            resolver.record_usage("cus_1", METER)

    threads = [threading.Thread(target=work) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert resolver.usage("cus_1", METER) == 10_000
    assert len({e.identifier for e in _sent(resolver, source)}) == 10_000


def test_a_cold_counter_is_seeded_once_from_stripes_total(metered: FakeStripe, closing: Closing) -> None:
    source = _stripe(metered)
    now = int(time.time())
    for number in range(3):
        source.send_meter_event(MeterEvent(METER, "cus_1", 5, f"old-{number}", now - 10))
    resolver = closing(Resolver(_stripe(metered), MemoryCache()))
    start = threading.Barrier(20)

    def work() -> None:
        start.wait()
        resolver.record_usage("cus_1", METER)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert resolver.usage("cus_1", METER) == 15 + 20
    assert metered.calls(f"/v1/billing/meters/{_meter_id(metered)}/{SUMMARIES}") == 1
    assert metered.calls(SUBSCRIPTIONS) <= 20  # the period, then remembered
    before = metered.calls(SUBSCRIPTIONS)
    resolver.record_usage("cus_1", METER)
    assert metered.calls(SUBSCRIPTIONS) == before  # a warm call asks Stripe nothing


def _meter_id(fake: FakeStripe) -> str:
    return next(iter(fake.meters))


def test_the_billing_period_from_the_subscription_keys_the_counter(metered: FakeStripe, closing: Closing) -> None:
    now = int(time.time())
    metered.set_subscription("cus_1", "sub_1", period=(now - 100, now + 3600))
    source = _stripe(metered)
    source.send_meter_event(MeterEvent(METER, "cus_1", 4, "before", now - 200))  # before this period
    source.send_meter_event(MeterEvent(METER, "cus_1", 3, "within", now - 50))
    resolver = closing(Resolver(_stripe(metered), MemoryCache()))
    assert resolver.usage("cus_1", METER) == 3
    assert resolver.usage("cus_1", METER) == 3
    assert metered.calls(SUBSCRIPTIONS) == 1


def test_a_new_period_starts_a_new_counter() -> None:
    clock = [calendar_month(time.time())[1] - 5.0]  # five seconds before the month ends
    source = StaticSource({})
    resolver = Resolver(source, wall_clock=lambda: clock[0])
    resolver.record_usage("cus_1", METER, 7)
    assert resolver.usage("cus_1", METER) == 7
    clock[0] += 10
    assert resolver.usage("cus_1", METER) == 0
    resolver.record_usage("cus_1", METER, 2)
    assert resolver.usage("cus_1", METER) == 2
    assert [e.timestamp for e in _sent(resolver, source)] == [int(clock[0]) - 10, int(clock[0])]


def test_a_cold_counter_with_stripe_down_raises_for_usage_and_consume(metered: FakeStripe, closing: Closing) -> None:
    metered.always_fail = 503
    resolver = closing(Resolver(_stripe(metered), MemoryCache()))
    with pytest.raises(SourceUnavailable) as raised:
        resolver.usage("cus_1", METER)
    assert "cus_1" in str(raised.value)
    with pytest.raises(SourceUnavailable):
        resolver.consume_usage("cus_1", METER, 10)
    assert metered.api_key not in str(raised.value)


def test_record_with_a_cold_counter_and_stripe_down_keeps_the_event_and_sends_it_later(
    metered: FakeStripe, closing: Closing
) -> None:
    metered.always_fail = 503
    resolver = closing(Resolver(_stripe(metered), MemoryCache(), retry_after=0))
    resolver.record_usage("cus_1", METER, 3, identifier="kept-1")  # no error: the event is kept
    assert resolver.flush_usage() == 0
    metered.always_fail = None
    assert resolver.flush_usage() == 1
    assert metered.identifiers(METER) == {"kept-1"}
    assert resolver.usage("cus_1", METER) == 3  # the counter, seeded now, has it from Stripe


def test_async_twins_count_the_same() -> None:
    source = StaticSource({})
    resolver = Resolver(source)

    async def main() -> tuple[int, tuple[bool, int], tuple[bool, int]]:
        await resolver.arecord_usage("cus_1", METER, 2)
        admitted = await resolver.aconsume_usage("cus_1", METER, 3)
        denied = await resolver.aconsume_usage("cus_1", METER, 3)
        return await resolver.ausage("cus_1", METER), admitted, denied

    assert asyncio.run(main()) == (3, (True, 3), (False, 3))
    assert len(_sent(resolver, source)) == 2


def test_async_twins_seed_from_stripe(metered: FakeStripe, closing: Closing) -> None:
    _stripe(metered).send_meter_event(MeterEvent(METER, "cus_1", 6, "old", int(time.time()) - 10))
    resolver = closing(Resolver(_stripe(metered), MemoryCache()))

    async def main() -> int:
        await resolver.arecord_usage("cus_1", METER)
        return await resolver.ausage("cus_1", METER)

    assert asyncio.run(main()) == 7


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda r: r.record_usage("", METER), "customer"),
        (lambda r: r.record_usage(None, METER), "customer"),
        (lambda r: r.record_usage("cus_1", " "), "meter_event_name"),
        (lambda r: r.record_usage("cus_1", 5), "meter_event_name"),
        (lambda r: r.record_usage("cus_1", METER, 0), "value"),
        (lambda r: r.record_usage("cus_1", METER, True), "value"),
        (lambda r: r.record_usage("cus_1", METER, 1.5), "value"),
        (lambda r: r.record_usage("cus_1", METER, identifier=""), "identifier"),
        (lambda r: r.record_usage("cus_1", METER, identifier=7), "identifier"),
        (lambda r: r.record_usage("cus_1", METER, identifier=" "), "identifier"),
        (lambda r: r.record_usage(" ", METER), "customer"),
        (lambda r: r.record_usage("cus_1", METER, -3), "value"),
        (lambda r: r.consume_usage("cus_1", METER, -1), "limit"),
        (lambda r: r.consume_usage("cus_1", METER, 2.5), "limit"),
        (lambda r: r.consume_usage("cus_1", METER, True), "limit"),
        (lambda r: r.usage("cus_1", ""), "meter_event_name"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(call: object, argument: str) -> None:
    resolver = Resolver(StaticSource({}))
    with pytest.raises(ValueError, match=argument):
        call(resolver)  # type: ignore[operator]
    assert resolver.cache.claim(10, 0) == []  # type: ignore[attr-defined]


class _FeaturesOnly:
    """A user's source that answers features but cannot report meter events."""

    livemode = None

    def fetch(self, customer: str) -> Iterable[str]:
        return {"pro"}


def test_a_source_that_is_no_usage_source_is_a_type_error_naming_what_it_lacks() -> None:
    resolver = Resolver(_FeaturesOnly())
    assert resolver.has_feature("cus_1", "pro")  # features still work
    with pytest.raises(TypeError, match="send_meter_event, meter_total, billing_period"):
        resolver.record_usage("cus_1", METER)


class _OwnCache:
    """A user's own Cache, which keeps no usage."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def peek(self, customer: str) -> Entry | None:
        return self.entries.get(customer)

    def get(self, customer: str) -> Entry | None:
        return self.entries.get(customer)

    async def aget(self, customer: str) -> Entry | None:
        return self.entries.get(customer)

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        self.entries[customer] = entry
        return True

    async def aput(self, customer: str, entry: Entry, *, event: bool) -> bool:
        return self.put(customer, entry, event=event)

    def invalidate(self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None) -> None:
        self.entries.pop(customer, None)

    async def ainvalidate(
        self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None
    ) -> None:
        self.entries.pop(customer, None)

    def clear(self) -> None:
        self.entries.clear()


def test_a_cache_that_keeps_no_usage_is_a_type_error_at_first_use() -> None:
    resolver = Resolver(StaticSource({"cus_1": ["pro"]}), _OwnCache())
    assert resolver.has_feature("cus_1", "pro")
    with pytest.raises(TypeError, match="cannot keep usage counters"):
        resolver.usage("cus_1", METER)
    with pytest.raises(TypeError, match="UsageStore"):
        resolver.consume_usage("cus_1", METER, 5)


def test_a_meter_stripe_does_not_have_counts_from_zero_logs_its_name_once_and_keeps_the_events(
    metered: FakeStripe, closing: Closing, caplog: pytest.LogCaptureFixture
) -> None:
    # Stripe holds no events of a meter it does not have: the counter starts at 0 and the gate
    # goes on (a request never gets an error for a meter set up wrong), and it is said loudly.
    resolver = closing(Resolver(_stripe(metered), MemoryCache()))
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        assert resolver.usage("cus_1", "ghost") == 0
        assert resolver.consume_usage("cus_1", "ghost", 1, identifier="g-1") == (True, 1)
        assert resolver.consume_usage("cus_1", "ghost", 1) == (False, 1)  # the limit still holds
        assert resolver.usage("cus_2", "ghost") == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # once per meter, not per customer or call
    assert "'ghost'" in errors[0]
    assert "cus_1" in errors[0]
    assert metered.api_key not in caplog.text
    metered.add_meter("ghost")
    assert resolver.flush_usage() == 1  # kept, and sent once the meter exists
    assert metered.identifiers("ghost") == {"g-1"}


def test_close_without_usage_is_a_no_op_and_may_be_repeated() -> None:
    resolver = Resolver(_FeaturesOnly())
    resolver.close()
    resolver.close()
    assert resolver.has_feature("cus_1", "pro")


def test_events_kept_unsent_while_stripe_was_down_count_when_the_counter_is_seeded(
    metered: FakeStripe, closing: Closing
) -> None:
    metered.always_fail = 503
    resolver = closing(Resolver(_stripe(metered), MemoryCache(), retry_after=0, usage_interval=3600.0))
    for _ in range(3):
        resolver.record_usage("cus_1", METER, 2)  # uncounted: the counter cannot be seeded
    metered.always_fail = None
    resolver.record_usage("cus_1", METER)
    assert resolver.usage("cus_1", METER) == 7  # Stripe's 0, the 6 not sent yet, and the last
    assert resolver.flush_usage() == 4
    assert resolver.usage("cus_1", METER) == 7  # sending them counts nothing twice


def test_record_usage_takes_subclasses_of_str_and_int_as_the_checks_do() -> None:
    # The common case is checked by exact type first; a subclass takes the full checks, and passes.
    class Id(str):
        pass

    class Count(int):
        pass

    resolver = Resolver(StaticSource({"cus_1": ["exports-feature"]}), usage_interval=3600.0)
    try:
        resolver.record_usage(Id("cus_1"), Id(METER), Count(2), identifier=Id("sub-1"))
        assert resolver.usage("cus_1", METER) == 2
    finally:
        resolver.close()
