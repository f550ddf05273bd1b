"""Resolver: answers from the cache, asks the source once per miss, and survives outages."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
import stripe

from entitlegate import MemoryCache, Resolver, SourceUnavailable, StripeSource
from tests.doubles import Clock, CountingSource, outage
from tests.fake_stripe import FakeStripe

T = TypeVar("T")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({"cus_pro": {"seats-feature", "analytics"}, "cus_free": set()})


@pytest.fixture
def resolver(source: CountingSource, clock: Clock) -> Resolver:
    return Resolver(source, ttl=60, stale_ttl=3600, clock=clock, wall_clock=clock)


def test_has_feature_answers_from_the_source_on_a_miss(resolver: Resolver) -> None:
    assert resolver.has_feature("cus_pro", "seats-feature") is True
    assert resolver.has_feature("cus_pro", "sso") is False


def test_a_cache_hit_does_no_io(resolver: Resolver, source: CountingSource) -> None:
    resolver.features("cus_pro")
    calls = source.calls
    for _ in range(100):
        assert resolver.has_feature("cus_pro", "analytics")
    assert source.calls == calls == 1
    assert resolver.stats.hits == 100


def test_a_customer_without_entitlements_is_cached_too(resolver: Resolver, source: CountingSource) -> None:
    assert resolver.features("cus_free") == frozenset()
    assert resolver.features("cus_free") == frozenset()
    assert source.calls == 1


def test_an_entry_older_than_ttl_is_fetched_again(resolver: Resolver, source: CountingSource, clock: Clock) -> None:
    resolver.features("cus_pro")
    clock.advance(61)
    source.mapping["cus_pro"] = frozenset({"sso"})
    assert resolver.features("cus_pro") == {"sso"}
    assert source.calls == 2


@pytest.mark.parametrize("customer", ["", "   ", None, 42, b"cus_1", ["cus_1"]])
def test_a_malformed_customer_is_a_value_error_before_any_io(
    resolver: Resolver, source: CountingSource, customer: object
) -> None:
    with pytest.raises(ValueError, match="customer"):
        resolver.has_feature(customer, "seats-feature")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer"):
        resolver.features(customer)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer"):
        resolver.refresh(customer)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer"):
        resolver.invalidate(customer)  # type: ignore[arg-type]
    assert source.calls == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("customer", ["", " ", None])
async def test_a_malformed_customer_is_a_value_error_in_the_async_twins(
    resolver: Resolver, source: CountingSource, customer: object
) -> None:
    with pytest.raises(ValueError, match="customer"):
        await resolver.ahas_feature(customer, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer"):
        await resolver.arefresh(customer)  # type: ignore[arg-type]
    assert source.calls == 0


def test_invalidate_makes_the_next_check_ask_the_source(resolver: Resolver, source: CountingSource) -> None:
    resolver.features("cus_pro")
    source.mapping["cus_pro"] = frozenset()
    resolver.invalidate("cus_pro")
    assert resolver.has_feature("cus_pro", "seats-feature") is False
    assert source.calls == 2


def test_refresh_bypasses_a_fresh_entry_and_stores_the_answer(resolver: Resolver, source: CountingSource) -> None:
    resolver.features("cus_pro")
    source.mapping["cus_pro"] = frozenset({"sso"})
    assert resolver.refresh("cus_pro") == {"sso"}
    assert resolver.features("cus_pro") == {"sso"}
    assert source.calls == 2


def test_an_outage_serves_an_entry_younger_than_stale_ttl(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    resolver.features("cus_pro")
    clock.advance(120)
    source.failing = outage()
    assert resolver.has_feature("cus_pro", "seats-feature") is True
    assert resolver.stats.stale_served == 1
    assert resolver.stats.errors == 1


def test_an_outage_raises_once_the_entry_is_older_than_stale_ttl(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    resolver.features("cus_pro")
    clock.advance(3601)
    source.failing = outage()
    with pytest.raises(SourceUnavailable):
        resolver.has_feature("cus_pro", "seats-feature")


def test_an_outage_with_nothing_cached_never_becomes_an_empty_set(resolver: Resolver, source: CountingSource) -> None:
    source.failing = outage()
    with pytest.raises(SourceUnavailable):
        resolver.features("cus_pro")
    with pytest.raises(SourceUnavailable):
        resolver.has_feature("cus_pro", "seats-feature")


@pytest.mark.parametrize(("policy", "answer"), [("deny", False), ("allow", True)])
def test_on_unavailable_turns_an_outage_into_an_answer_for_has_feature_only(
    source: CountingSource, policy: str, answer: bool
) -> None:
    resolver = Resolver(source, on_unavailable=policy)  # type: ignore[arg-type]
    source.failing = outage()
    assert resolver.has_feature("cus_pro", "seats-feature") is answer
    with pytest.raises(SourceUnavailable):
        resolver.features("cus_pro")


def test_invalidation_keeps_the_old_set_servable_during_an_outage(resolver: Resolver, source: CountingSource) -> None:
    resolver.features("cus_pro")
    resolver.invalidate("cus_pro")
    source.failing = outage()
    assert resolver.has_feature("cus_pro", "seats-feature") is True
    assert resolver.stats.stale_served == 1


def test_a_source_that_raises_something_else_is_an_outage_not_a_crash(
    resolver: Resolver, source: CountingSource, caplog: pytest.LogCaptureFixture
) -> None:
    source.failing = KeyError("bug in a user's source")
    with pytest.raises(SourceUnavailable) as raised:
        resolver.features("cus_pro")
    assert isinstance(raised.value.__cause__, KeyError)
    assert "cus_pro" in caplog.text


def test_a_fetch_in_flight_cannot_undo_an_invalidation(clock: Clock) -> None:
    class SlowSource(CountingSource):
        def fetch(self, customer: str) -> frozenset[str]:
            answer = self.mapping.get(customer, frozenset())
            clock.advance(1)  # the invalidation below lands while the fetch is under way
            resolver.invalidate(customer)
            return answer

    slow = SlowSource({"cus_pro": {"old-plan"}})
    resolver = Resolver(slow, clock=clock, wall_clock=clock)
    assert resolver.features("cus_pro") == {"old-plan"}  # the caller still gets its answer
    entry = resolver.cache.peek("cus_pro")
    assert entry is not None
    assert entry.expires < clock()  # but it was not stored as fresh


@pytest.mark.parametrize(("ttl", "stale_ttl", "on_unavailable"), [(-1, 10, "raise"), (10, 5, "raise"), (1, 2, "maybe")])
def test_bad_settings_fail_at_construction_naming_the_setting(
    source: CountingSource, ttl: float, stale_ttl: float, on_unavailable: str
) -> None:
    with pytest.raises(ValueError, match=r"ttl|on_unavailable"):
        Resolver(source, ttl=ttl, stale_ttl=stale_ttl, on_unavailable=on_unavailable)  # type: ignore[arg-type]


def at_once(threads: int, call: Callable[[], T]) -> list[T | BaseException]:
    """``call()`` from ``threads`` threads released together; each one's answer or exception."""
    barrier = threading.Barrier(threads)
    outcomes: list[T | BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            outcomes.append(call())
        except BaseException as error:
            outcomes.append(error)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    return outcomes


def test_concurrent_misses_from_32_threads_make_one_source_call() -> None:
    source = CountingSource({"cus_pro": {"seats-feature"}}, delay=0.2)
    resolver = Resolver(source)
    answers = at_once(32, lambda: resolver.has_feature("cus_pro", "seats-feature"))
    assert answers == [True] * 32
    assert source.calls == 1
    assert resolver.stats.coalesced == 31


def test_a_coalesced_failure_reaches_every_waiting_thread() -> None:
    source = CountingSource(delay=0.2)
    source.failing = outage()
    resolver = Resolver(source)
    outcomes = at_once(16, lambda: resolver.features("cus_pro"))
    assert len(outcomes) == 16
    assert all(isinstance(outcome, SourceUnavailable) for outcome in outcomes)
    assert source.calls == 1


def test_32_threads_missing_one_customer_against_a_slow_stripe_make_one_call(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_pro", ["seats-feature"])
    fake_stripe.latency = 0.3
    resolver = Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url))
    answers = at_once(32, lambda: resolver.has_feature("cus_pro", "seats-feature"))
    assert answers == [True] * 32
    assert fake_stripe.calls() == 1


@pytest.mark.asyncio
async def test_40_tasks_missing_one_customer_against_a_slow_stripe_make_one_call(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_pro", ["seats-feature"])
    fake_stripe.latency = 0.3
    resolver = Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url))
    answers = await asyncio.gather(*(resolver.ahas_feature("cus_pro", "seats-feature") for _ in range(40)))
    assert answers == [True] * 40
    assert fake_stripe.calls() == 1
    assert resolver.stats.coalesced == 39


@pytest.mark.asyncio
async def test_afeatures_never_blocks_the_event_loop_while_a_fetch_is_in_flight(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_pro", ["seats-feature"])
    fake_stripe.latency = 0.5
    resolver = Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url))
    ticks = 0
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def ticker() -> None:
        nonlocal ticks
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        assert await resolver.afeatures("cus_pro") == {"seats-feature"}
    finally:
        task.cancel()
    # The fetch took >= 0.5 s; a loop blocked for it would have ticked once or twice, with one huge gap.
    assert ticks >= 20
    assert max(gaps) < 0.25


@pytest.mark.asyncio
async def test_a_cancelled_caller_does_not_cancel_the_fetch_for_the_others() -> None:
    source = CountingSource({"cus_pro": {"seats-feature"}}, delay=0.2)
    resolver = Resolver(source)
    first = asyncio.create_task(resolver.afeatures("cus_pro"))
    second = asyncio.create_task(resolver.afeatures("cus_pro"))
    # Cancel only once the fetch is under way and both callers wait on it: earlier, the test
    # would pass without there being a fetch to cancel.
    deadline = asyncio.get_running_loop().time() + 5
    while source.calls < 1 or resolver.stats.coalesced < 1:
        assert asyncio.get_running_loop().time() < deadline, "the fetch did not start"
        await asyncio.sleep(0)
    first.cancel()
    assert await second == {"seats-feature"}
    assert source.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.asyncio
async def test_async_twins_share_the_cache_with_the_sync_methods(resolver: Resolver, source: CountingSource) -> None:
    assert await resolver.ahas_feature("cus_pro", "analytics") is True
    assert resolver.has_feature("cus_pro", "analytics") is True
    await resolver.ainvalidate("cus_pro")
    source.mapping["cus_pro"] = frozenset()
    assert await resolver.afeatures("cus_pro") == frozenset()
    assert await resolver.arefresh("cus_pro") == frozenset()
    assert source.calls == 3


@pytest.mark.asyncio
async def test_an_async_outage_serves_stale_then_raises(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    await resolver.afeatures("cus_pro")
    clock.advance(61)
    source.failing = outage()
    assert await resolver.ahas_feature("cus_pro", "analytics") is True
    clock.advance(3600)
    with pytest.raises(SourceUnavailable):
        await resolver.afeatures("cus_pro")


def test_the_resolver_works_with_sources_that_have_no_async_side() -> None:
    class SyncOnly:
        livemode = None

        def fetch(self, customer: str) -> frozenset[str]:
            return frozenset({"seats-feature"})

    resolver = Resolver(SyncOnly())
    assert asyncio.run(resolver.ahas_feature("cus_1", "seats-feature")) is True


def test_stats_count_misses_and_source_calls(resolver: Resolver) -> None:
    resolver.features("cus_pro")
    resolver.features("cus_pro")
    stats = resolver.stats
    assert (stats.hits, stats.misses, stats.source_calls, stats.errors) == (1, 1, 1, 0)


def test_a_resolver_takes_a_cache_of_its_choosing(source: CountingSource) -> None:
    cache = MemoryCache(maxsize=2)
    resolver = Resolver(source, cache)
    for customer in ("cus_a", "cus_b", "cus_c"):
        resolver.features(customer)
    assert len(cache) == 2
    assert cache.peek("cus_a") is None


def test_a_ready_client_works_and_warns_once_that_livemode_is_unknown(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_pro", ["seats-feature"])
    source = StripeSource(stripe_client)
    assert source.livemode is None
    assert "livemode" in caplog.text
    assert Resolver(source).has_feature("cus_pro", "seats-feature")
    assert asyncio.run(Resolver(source).ahas_feature("cus_pro", "seats-feature"))


def test_customers_share_one_copy_of_each_lookup_key() -> None:
    class FreshStrings(CountingSource):
        def fetch(self, customer: str) -> frozenset[str]:
            return frozenset({"".join(["seats", "-", "feature"])})  # a new string object each call

    resolver = Resolver(FreshStrings())
    resolver.features("cus_a")
    resolver.features("cus_b")
    held = [resolver.cache.peek(customer) for customer in ("cus_a", "cus_b")]
    assert held[0] is not None
    assert held[1] is not None
    (key_a,) = held[0].features
    (key_b,) = held[1].features
    assert key_a is key_b


# -- the seams ------------------------------------------------------------------------------------


def test_the_source_is_read_only(resolver: Resolver, source: CountingSource) -> None:
    with pytest.raises(AttributeError):
        resolver.source = CountingSource()  # type: ignore[misc]
    assert resolver.source is source


def test_a_source_without_livemode_is_refused_at_construction_naming_what_is_missing() -> None:
    class NoLivemode:
        def fetch(self, customer: str) -> frozenset[str]:
            return frozenset()

    with pytest.raises(TypeError, match=r"fetch\(customer\).*livemode"):
        Resolver(NoLivemode())  # type: ignore[arg-type]


def test_whether_the_source_has_an_async_side_is_decided_once_at_construction() -> None:
    class Watched(CountingSource):
        looked_up = 0

        def __getattribute__(self, name: str) -> object:
            if name == "afetch":
                type(self).looked_up += 1
            return super().__getattribute__(name)

    watched = Watched({"cus_1": {"a"}})
    resolver = Resolver(watched)
    at_construction = Watched.looked_up

    async def three_fetches() -> None:
        for _ in range(3):
            await resolver.arefresh("cus_1")

    asyncio.run(three_fetches())
    assert watched.calls == 3
    assert Watched.looked_up == at_construction


def test_the_resolver_says_which_livemode_and_account_its_source_serves() -> None:
    class Connected(CountingSource):
        livemode = True
        stripe_account = "acct_1"

    assert (Resolver(Connected()).livemode, Resolver(Connected()).stripe_account) == (True, "acct_1")
    assert (Resolver(CountingSource()).livemode, Resolver(CountingSource()).stripe_account) == (None, None)


def test_apply_event_is_false_for_an_event_older_than_the_cached_entry(resolver: Resolver, clock: Clock) -> None:
    assert resolver.apply_event("cus_pro", ["new"], clock() + 10)
    assert not resolver.apply_event("cus_pro", ["old"], clock() + 5)
    assert resolver.features("cus_pro") == {"new"}


def test_an_incomplete_event_stores_what_the_source_holds_as_of_the_event(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    source.mapping["cus_pro"] = frozenset({"a", "b", "c"})
    assert resolver.apply_event("cus_pro", ["a"], clock() + 10, complete=False)
    assert source.calls == 1
    entry = resolver.cache.peek("cus_pro")
    assert entry is not None
    assert entry.features == {"a", "b", "c"}
    # versioned as the event, so a fetch that read Stripe before it cannot undo it
    assert not resolver.apply_event("cus_pro", ["older"], clock() + 9)


def test_an_incomplete_stale_event_does_not_ask_the_source(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    assert resolver.apply_event("cus_pro", ["new"], clock() + 10)
    assert not resolver.apply_event("cus_pro", ["a"], clock() + 5, complete=False)
    assert source.calls == 0
    assert resolver.features("cus_pro") == {"new"}


def test_an_incomplete_event_in_an_outage_invalidates_and_raises(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    resolver.features("cus_pro")
    source.failing = outage()
    with pytest.raises(SourceUnavailable):
        resolver.apply_event("cus_pro", ["a"], clock() + 10, complete=False)
    entry = resolver.cache.peek("cus_pro")
    assert entry is not None
    assert entry.expires < clock()  # whatever is cached is older than the event: never fresh


@pytest.mark.asyncio
async def test_aapply_event_is_the_async_twin_for_complete_and_incomplete_events(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    source.mapping["cus_pro"] = frozenset({"a", "b"})
    assert await resolver.aapply_event("cus_pro", ["a"], clock() + 10, complete=False)
    assert resolver.features("cus_pro") == {"a", "b"}
    assert not await resolver.aapply_event("cus_pro", ["old"], clock() + 5)
    assert not await resolver.aapply_event("cus_pro", ["old"], clock() + 5, complete=False)
    assert source.calls == 1
