"""Sending usage to Stripe: the background flusher, retries, refusals, close, exit and fork (issue 14)."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time
import weakref

import pytest

from entitlegate import CacheUnavailable, MemoryCache, MeterEvent, Resolver, StaticSource, StripeSource
from entitlegate._usage_flush import EXIT_SECONDS, REJECTED_RETRY_SECONDS
from entitlegate.sources import DEFAULT_TIMEOUT
from tests.conftest import Closing
from tests.doubles import Clock
from tests.fake_stripe import METER_EVENTS, FakeStripe
from tests.polling import wait_for
from tests.test_source_fork import in_child

METER = "exports"
QUIET = {"usage_interval": 3600.0, "usage_batch": 1_000_000}  # the thread never wakes by itself


def _stripe(fake: FakeStripe, **options: object) -> StripeSource:
    return StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0, **options)  # type: ignore[arg-type]


@pytest.fixture
def metered(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.add_meter(METER)
    return fake_stripe


def _flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "entitlegate-usage-flush"]


def test_the_thread_starts_at_the_first_recorded_event_and_sends_it() -> None:
    source = StaticSource({})
    resolver = Resolver(source, usage_interval=0.01)
    resolver.usage("cus_1", METER)  # reading usage queues nothing: no thread
    assert resolver._usage is not None
    assert not resolver._usage.flusher.running
    resolver.record_usage("cus_1", METER, 3, identifier="ev-1")
    assert resolver._usage.flusher.running
    wait_for(lambda: [e.identifier for e in source.meter_events] == ["ev-1"])
    resolver.close()


def test_a_full_batch_wakes_the_thread_before_the_interval() -> None:
    source = StaticSource({})
    resolver = Resolver(source, usage_interval=3600.0, usage_batch=10)
    for _ in range(10):
        resolver.record_usage("cus_1", METER)
    wait_for(lambda: len(source.meter_events) == 10)
    resolver.close()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"usage_batch": 0}, "usage_batch"),
        ({"usage_batch": True}, "usage_batch"),
        ({"usage_batch": 2.0}, "usage_batch"),
        ({"usage_interval": 0}, "usage_interval"),
        ({"usage_interval": -1.0}, "usage_interval"),
        ({"usage_interval": float("inf")}, "usage_interval"),
        ({"usage_interval": "1"}, "usage_interval"),
    ],
)
def test_bad_flush_settings_are_refused_at_construction_naming_them(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Resolver(StaticSource({}), **options)  # type: ignore[arg-type]


def test_a_few_refused_sends_among_taken_ones_are_retried_at_once_not_after_a_back_off(
    metered: FakeStripe, closing: Closing
) -> None:
    cache = MemoryCache()
    resolver = closing(Resolver(_stripe(metered), cache, **QUIET))  # type: ignore[arg-type]
    for number in range(20):
        resolver.record_usage("cus_1", METER, identifier=f"ev-{number}")
    # Two 500s in the first chunk of sends, and one in the last (the 17th request: the chunks are
    # 8, 8 and 4), while Stripe takes every other call: Stripe is up, refusing a few.
    with metered.lock:
        metered.failures[:] = [500, 500, *[None] * 14, 500]  # type: ignore[list-item]

    assert resolver.flush_usage() == 20  # one flush: the refused went to the back and were taken
    assert cache.pending_usage == 0
    assert metered.identifiers(METER) == {f"ev-{number}" for number in range(20)}


def test_with_stripe_failing_30_percent_every_identifier_lands_exactly_once(
    metered: FakeStripe, closing: Closing
) -> None:
    metered.fail_rate[METER_EVENTS] = 0.3
    cache = MemoryCache()
    resolver = closing(Resolver(_stripe(metered), cache, **QUIET))  # type: ignore[arg-type]
    for number in range(200):
        resolver.record_usage("cus_1", METER, identifier=f"ev-{number}")
    taken = 0
    deadline = time.monotonic() + 30
    while cache.pending_usage and time.monotonic() < deadline:
        taken += resolver.flush_usage()
    assert metered.calls(METER_EVENTS) > 200  # some failed and were sent again
    assert taken == 200
    with metered.lock:
        identifiers = [e["identifier"] for e in metered.meter_events]
    assert sorted(identifiers) == sorted(f"ev-{number}" for number in range(200))
    metered.fail_rate.clear()
    assert resolver.usage("cus_1", METER) == 200


def test_the_background_thread_retries_through_failures(metered: FakeStripe, closing: Closing) -> None:
    metered.fail_rate[METER_EVENTS] = 0.3
    cache = MemoryCache()
    resolver = closing(Resolver(_stripe(metered), cache, usage_interval=0.01, usage_batch=20))
    for number in range(100):
        resolver.record_usage("cus_1", METER, identifier=f"ev-{number}")
    wait_for(lambda: len(metered.identifiers(METER)) == 100, timeout=60)
    with metered.lock:
        assert len(metered.meter_events) == 100
    wait_for(lambda: cache.pending_usage == 0)
    resolver.close()


def test_the_local_count_is_right_while_stripes_summary_lags(metered: FakeStripe, closing: Closing) -> None:
    metered.summary_lag = 3600
    resolver = closing(Resolver(_stripe(metered), MemoryCache(), **QUIET))  # type: ignore[arg-type]
    for _ in range(5):
        resolver.record_usage("cus_1", METER, 2)
    assert resolver.flush_usage() == 5
    assert len(metered.identifiers(METER)) == 5
    now = int(time.time())
    assert _stripe(metered).meter_total("cus_1", METER, now - 3600, now + 60) == 0  # Stripe lags
    assert resolver.usage("cus_1", METER) == 10  # the counter does not


def test_an_unknown_meter_is_logged_once_its_events_kept_and_sent_once_it_exists(
    metered: FakeStripe, closing: Closing, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    resolver = closing(Resolver(_stripe(metered), cache, clock=clock, **QUIET))  # type: ignore[arg-type]
    for number in range(3):
        resolver.record_usage("cus_1", "ghost", identifier=f"ghost-{number}")
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        assert resolver.flush_usage() == 0
        calls = metered.calls(METER_EVENTS)
        assert 1 <= calls <= 3
        for _ in range(3):
            assert resolver.flush_usage() == 0
        clock.advance(REJECTED_RETRY_SECONDS / 2)
        assert resolver.flush_usage() == 0
    assert metered.calls(METER_EVENTS) == calls  # not hammered
    # One from the flusher's first send (the seed's "counting from 0" line came before this block).
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "refused usage events" in r.getMessage()]
    assert len(errors) == 1
    assert "'ghost'" in errors[0].getMessage()
    assert "cus_1" in errors[0].getMessage()
    assert metered.api_key not in caplog.text
    metered.add_meter("ghost")
    clock.advance(REJECTED_RETRY_SECONDS)  # the pause and the leases are over
    assert resolver.flush_usage() == 3
    assert metered.identifiers("ghost") == {"ghost-0", "ghost-1", "ghost-2"}
    assert cache.pending_usage == 0


def test_close_sends_what_is_pending_and_stops_the_thread() -> None:
    source = StaticSource({})
    resolver = Resolver(source, **QUIET)  # type: ignore[arg-type]
    for _ in range(7):
        resolver.record_usage("cus_1", METER)
    assert resolver._usage is not None
    assert resolver._usage.flusher.running
    resolver.close()
    assert len(source.meter_events) == 7
    assert not resolver._usage.flusher.running
    resolver.record_usage("cus_1", METER)  # recording again starts it again
    assert resolver._usage.flusher.running
    resolver.close()
    assert len(source.meter_events) == 8


def test_aclose_and_aflush_send_too() -> None:
    import asyncio

    source = StaticSource({})
    resolver = Resolver(source, **QUIET)  # type: ignore[arg-type]

    async def main() -> int:
        await resolver.arecord_usage("cus_1", METER)
        taken = await resolver.aflush_usage()
        await resolver.arecord_usage("cus_1", METER)
        await resolver.aclose()
        return taken

    assert asyncio.run(main()) == 1
    assert len(source.meter_events) == 2


_AT_EXIT = """
import sys
from entitlegate import Resolver, StripeSource
source = StripeSource(api_key=sys.argv[1], api_base=sys.argv[2], max_retries=0)
resolver = Resolver(source, usage_interval=3600.0, usage_batch=1_000_000)
for number in range(5):
    resolver.record_usage("cus_1", "exports", identifier=f"exit-{number}")
# no close(): the interpreter's exit sends them
"""


def test_the_interpreter_exit_sends_what_is_pending(metered: FakeStripe) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _AT_EXIT, metered.api_key, metered.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert metered.identifiers(METER) == {f"exit-{number}" for number in range(5)}
    assert metered.api_key not in done.stderr


def test_the_exit_waits_a_bounded_time_when_stripe_hangs(metered: FakeStripe) -> None:
    metered.latency = 30.0  # every request hangs past the source's timeout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _AT_EXIT, metered.api_key, metered.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The period's read (the source's timeout), then the exit's few seconds plus one send in
    # flight; not a timeout per pending event, nor the fake's 30 s.
    assert time.monotonic() - began < DEFAULT_TIMEOUT + EXIT_SECONDS + DEFAULT_TIMEOUT + 4


def test_the_exit_hook_and_the_thread_keep_no_resolver_alive() -> None:
    source = StaticSource({})
    resolver = Resolver(source, usage_interval=0.01)
    resolver.record_usage("cus_1", METER)
    gone = weakref.ref(resolver)
    del resolver
    gc.collect()
    assert gone() is None
    wait_for(lambda: len(source.meter_events) == 1)  # what it queued is still sent


def test_a_forked_child_records_and_flushes_its_own(metered: FakeStripe, closing: Closing) -> None:
    # A batch of two wakes the thread; the parent queues one, so only a child's thread sends.
    cache = MemoryCache()
    resolver = closing(Resolver(_stripe(metered), cache, usage_interval=3600.0, usage_batch=2))
    resolver.record_usage("cus_1", METER, identifier="parent-1")
    assert resolver._usage is not None
    assert resolver._usage.flusher.running

    def child() -> bool:  # (the fake's state lives in the parent: the child sees its own only)
        resolver.record_usage("cus_1", METER, identifier="child-1")
        resolver.record_usage("cus_1", METER)  # the child's own identifier
        wait_for(lambda: cache.pending_usage == 0)  # its own thread sent both
        return resolver.usage("cus_1", METER) == 3 and resolver.flush_usage() == 0

    assert in_child(child) == 0
    assert resolver.flush_usage() == 1  # the parent's own, sent by the parent
    assert len(metered.identifiers(METER)) == 3
    assert metered.calls(METER_EVENTS) == 3  # no event was sent twice (by parent and child)


class _SwitchedStore(MemoryCache):
    """A MemoryCache whose usage calls fail as a Redis that is down does, when switched off."""

    down = False

    def add_usage(self, *args: object, **kwargs: object) -> tuple[bool, int] | None:
        if self.down:
            raise CacheUnavailable("the usage store is down")
        return super().add_usage(*args, **kwargs)  # type: ignore[arg-type]

    def usage_total(self, customer: str, meter: str, period: int) -> int | None:
        if self.down:
            raise CacheUnavailable("the usage store is down")
        return super().usage_total(customer, meter, period)

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]:
        if self.down:
            raise CacheUnavailable("the usage store is down")
        return super().claim(n, lease_seconds)


def test_with_the_store_down_record_usage_counts_here_sends_from_here_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = StaticSource({})
    cache = _SwitchedStore()
    resolver = Resolver(source, cache, **QUIET)  # type: ignore[arg-type]
    resolver.record_usage("cus_1", METER)
    cache.down = True
    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        for number in range(4):
            resolver.record_usage("cus_1", METER, identifier=f"down-{number}")
    assert len([r for r in caplog.records if "cannot keep usage" in r.getMessage()]) == 1
    with pytest.raises(Exception, match="shared cache is down") as raised:
        resolver.usage("cus_1", METER)
    assert type(raised.value).__name__ == "SourceUnavailable"
    with pytest.raises(Exception, match="shared cache is down"):
        resolver.consume_usage("cus_1", METER, 100)
    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        assert resolver.flush_usage() == 4  # from this process, while the store is down
        assert resolver.flush_usage() == 0
    assert {e.identifier for e in source.meter_events} == {f"down-{number}" for number in range(4)}
    assert len([r for r in caplog.records if "cannot claim" in r.getMessage()]) == 1
    cache.down = False
    assert resolver.flush_usage() == 1  # the one the store kept
    assert len(source.meter_events) == 5


def test_no_secret_in_reprs_or_logs(metered: FakeStripe, closing: Closing, caplog: pytest.LogCaptureFixture) -> None:
    metered.always_fail = 503
    resolver = closing(Resolver(_stripe(metered), MemoryCache(), retry_after=0, **QUIET))  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="entitlegate"):
        resolver.record_usage("cus_1", METER, identifier="s-1")
        resolver.flush_usage()
        resolver.record_usage("cus_1", "ghost")
        metered.always_fail = None
        resolver.flush_usage()
        resolver.close()
    assert resolver._usage is not None
    for text in (caplog.text, repr(resolver), repr(resolver._usage), repr(resolver._usage.flusher)):
        assert metered.api_key not in text
    assert "Stripe is unavailable" in caplog.text
