"""What each write is versioned at: a slow fetch never undoes a webhook, a fast host clock never
makes a webhook stale. Through the real stripe SDK, a real fake Stripe over HTTP and real Redis."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from entitlegate import MemoryCache, RedisCache, Resolver, StaticSource, StripeSource, WebhookHandler
from entitlegate.cache import Cache
from tests import fake_stripe
from tests import stripe_events as ev
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for
from tests.redis_server import RedisServer

CUSTOMER = "cus_race"


class _Held:
    """Makes the next entitlements answer slow: read from the fake's state, then held back."""

    def __init__(self) -> None:
        self.armed = False
        self.read = threading.Event()
        self.read_at = 0.0
        self.release = threading.Event()


class _SlowAnswerHandler(fake_stripe._Handler):
    server: _SlowAnswerServer

    def _route(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        held = self.server.held
        read_at = time.time()
        answer = super()._route(method, path, params)  # what Stripe holds at the start of the call
        if held.armed and path == fake_stripe.ACTIVE_ENTITLEMENTS:
            held.armed = False
            held.read_at = read_at
            held.read.set()
            # The latency of a slow Stripe call, lasting until the test's webhook has landed.
            held.release.wait(timeout=30)
        return answer


class _SlowAnswerServer(fake_stripe._Server):
    def __init__(self, fake: FakeStripe) -> None:
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _SlowAnswerHandler)
        self.fake = fake
        self.held = _Held()


@pytest.fixture
def slow_stripe() -> Iterator[tuple[FakeStripe, _SlowAnswerServer]]:
    fake = FakeStripe()
    server = _SlowAnswerServer(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield fake, server
    server.held.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["memory", "redis"])
def make_cache(request: pytest.FixtureRequest) -> Iterator[Callable[[], Cache]]:
    caches: list[RedisCache] = []

    def make(**options: Any) -> Cache:
        if request.param == "memory":
            return MemoryCache()
        server: RedisServer = request.getfixturevalue("redis_server")
        cache = RedisCache(server.url, **options)
        caches.append(cache)
        return cache

    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        if server.process is None or server.process.poll() is not None:
            server.start()
        with redis.Redis.from_url(server.url) as client:
            client.flushdb()
    yield make
    for cache in caches:
        cache.close()


class _Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _resolver(fake: FakeStripe, cache: Cache, **options: Any) -> Resolver:
    return Resolver(StripeSource(api_key=fake.api_key, api_base=fake.url), cache, **options)


def _away_from_a_second_boundary() -> None:
    # The race needs the fetch to start in the second the change happens in (as in the trial);
    # a call that straddles a boundary would make it pass whatever the versioning.
    wait_for(lambda: time.time() % 1 < 0.8)


def _revoke_while_fetch_is_held(
    fake: FakeStripe, server: _SlowAnswerServer, handler: WebhookHandler, wait: Callable[[], None]
) -> None:
    assert server.held.read.wait(timeout=10), "the fetch never reached the fake Stripe"
    fake.set_customer(CUSTOMER, [])  # the change lands after the fetch read Stripe ...
    event = ev.summary_event(CUSTOMER, [], created=int(server.held.read_at))
    assert handler.handle(*ev.signed(event)).action == "applied"  # ... and its webhook too
    server.held.release.set()
    wait()


def test_a_slow_fetch_that_read_stripe_before_a_revocation_does_not_undo_its_webhook(
    slow_stripe: tuple[FakeStripe, _SlowAnswerServer], make_cache: Callable[[], Cache]
) -> None:
    fake, server = slow_stripe
    fake.set_customer(CUSTOMER, ["seats-feature"])
    resolver = _resolver(fake, make_cache())
    handler = WebhookHandler(resolver, ev.SECRET)
    _away_from_a_second_boundary()
    server.held.armed = True
    fetch = threading.Thread(target=resolver.features, args=(CUSTOMER,))
    fetch.start()

    _revoke_while_fetch_is_held(fake, server, handler, lambda: fetch.join(timeout=10))

    assert not fetch.is_alive()
    assert not resolver.has_feature(CUSTOMER, "seats-feature")
    assert resolver.cache.get(CUSTOMER) is not None
    assert resolver.cache.get(CUSTOMER).features == frozenset()  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_slow_async_fetch_that_read_stripe_before_a_revocation_does_not_undo_its_webhook(
    slow_stripe: tuple[FakeStripe, _SlowAnswerServer], make_cache: Callable[[], Cache]
) -> None:
    fake, server = slow_stripe
    fake.set_customer(CUSTOMER, ["seats-feature"])
    resolver = _resolver(fake, make_cache())
    handler = WebhookHandler(resolver, ev.SECRET)
    _away_from_a_second_boundary()
    server.held.armed = True
    fetch = asyncio.ensure_future(resolver.afeatures(CUSTOMER))
    await asyncio.to_thread(_revoke_while_fetch_is_held, fake, server, handler, lambda: None)
    await asyncio.wait_for(fetch, timeout=10)

    assert not await resolver.ahas_feature(CUSTOMER, "seats-feature")


def test_a_webhook_after_a_fetch_applies_when_the_host_clock_is_ahead_of_stripes(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache]
) -> None:
    fake_stripe.set_customer(CUSTOMER, ["seats-feature"])
    resolver = _resolver(fake_stripe, make_cache(), wall_clock=lambda: time.time() + 1.5)
    handler = WebhookHandler(resolver, ev.SECRET)
    assert resolver.has_feature(CUSTOMER, "seats-feature")  # fetched: the host says 1.5 s later

    fake_stripe.set_customer(CUSTOMER, [])
    result = handler.handle(*ev.signed(ev.summary_event(CUSTOMER, [], created=int(time.time()))))

    assert result.action == "applied"
    assert not resolver.has_feature(CUSTOMER, "seats-feature")


def test_a_fetch_started_more_than_the_skew_after_an_events_second_replaces_it(
    fake_stripe: FakeStripe, make_cache: Callable[[], Cache]
) -> None:
    fake_stripe.set_customer(CUSTOMER, ["fetched"])
    resolver = _resolver(fake_stripe, make_cache(), clock_skew=0.5)
    handler = WebhookHandler(resolver, ev.SECRET)
    handler.handle(*ev.signed(ev.summary_event(CUSTOMER, ["from-event"], created=int(time.time()) - 2)))

    assert resolver.refresh(CUSTOMER) == {"fetched"}
    assert resolver.features(CUSTOMER) == {"fetched"}


class _PlanChange:
    """A customer holding seats-feature, a resolver on a stepped wall clock, and the two events
    Stripe sends for one plan change: a summary, then a subscription update in the same second."""

    def __init__(self, fake_stripe: FakeStripe, make_cache: Callable[..., Cache]) -> None:
        fake_stripe.set_customer(CUSTOMER, ["seats-feature"])
        self.created = int(time.time())
        self.wall = _Wall()
        self.wall.now = self.created + 0.2
        self.resolver = _resolver(fake_stripe, make_cache(wall_clock=self.wall), wall_clock=self.wall)
        self.handler = WebhookHandler(self.resolver, ev.SECRET)
        self.summary = ev.summary_event(CUSTOMER, ["seats-feature"], created=self.created)
        self.subscription = ev.subscription_event(CUSTOMER, created=self.created)

    def ticks(self) -> Iterator[None]:
        """Step the wall clock by 10 ms through the seconds a fetch could not replace the entry."""
        while self.wall.now < self.created + 1 + self.resolver.clock_skew + 1:
            self.wall.now += 0.01
            yield


def test_checks_after_a_summary_event_and_a_subscription_invalidation_ask_stripe_once(
    fake_stripe: FakeStripe, make_cache: Callable[..., Cache]
) -> None:
    # Stripe sends both for one plan change, within a second or two. Every check of the next few
    # seconds (the wall clock stepped through them) must be answered by the one fetch that follows.
    change = _PlanChange(fake_stripe, make_cache)
    assert change.handler.handle(*ev.signed(change.summary)).action == "applied"
    change.wall.now += 0.1
    assert change.handler.handle(*ev.signed(change.subscription)).action == "invalidated"

    checks = 0
    for _ in change.ticks():
        assert change.resolver.has_feature(CUSTOMER, "seats-feature")
        checks += 1

    assert checks > 300
    assert fake_stripe.calls() == 1


@pytest.mark.asyncio
async def test_async_checks_after_a_summary_event_and_a_subscription_invalidation_ask_stripe_once(
    fake_stripe: FakeStripe, make_cache: Callable[..., Cache]
) -> None:
    change = _PlanChange(fake_stripe, make_cache)
    assert (await change.handler.ahandle(*ev.signed(change.summary))).action == "applied"
    change.wall.now += 0.1
    assert (await change.handler.ahandle(*ev.signed(change.subscription))).action == "invalidated"

    checks = 0
    for _ in change.ticks():
        assert await change.resolver.ahas_feature(CUSTOMER, "seats-feature")
        checks += 1

    assert checks > 300
    assert fake_stripe.calls() == 1


def test_clock_skew_must_be_a_number_of_seconds() -> None:
    with pytest.raises(ValueError, match="clock_skew"):
        Resolver(StripeSource(api_key="sk_test_x"), clock_skew=-1)


_created = st.integers(1_767_225_598, 1_767_225_602)
_started = st.floats(1_767_225_596.0, 1_767_225_606.0)
_skew = st.sampled_from([0.0, 0.5, 2.0])


@given(created=_created, received=_started, started=_started, skew=_skew)
def test_a_fetch_replaces_an_events_set_only_when_it_started_at_or_after_the_event_was_received(
    created: int, received: float, started: float, skew: float
) -> None:
    wall = _Wall()
    wall.now = received
    resolver = Resolver(StaticSource({CUSTOMER: ["fetched"]}), clock_skew=skew, wall_clock=wall)
    resolver.apply_event(CUSTOMER, ["from-event"], created)
    wall.now = started

    resolver.refresh(CUSTOMER)

    replaced = resolver.cache.get(CUSTOMER).features == {"fetched"}  # type: ignore[union-attr]
    assert replaced == (started >= received)
    # Whichever set is held, it reflects the event: an older one stays stale; one of its second
    # applies unless the fetch surely started after that second (its version says so).
    assert not resolver.apply_event(CUSTOMER, ["older"], created - 1)
    same_second = resolver.apply_event(CUSTOMER, ["same-second"], created)
    assert same_second == (not replaced or started - skew < created + 1)


@given(invalidated=_started, started=_started, skew=_skew)
def test_a_fetch_replaces_an_invalidated_entry_only_when_it_started_at_or_after_the_invalidation(
    invalidated: float, started: float, skew: float
) -> None:
    wall = _Wall()
    wall.now = min(invalidated, started) - 1
    resolver = Resolver(StaticSource({CUSTOMER: ["fetched"]}), clock_skew=skew, wall_clock=wall)
    resolver.apply_event(CUSTOMER, ["from-event"], 1_767_225_590)
    wall.now = invalidated
    resolver.invalidate(CUSTOMER)
    wall.now = started

    resolver.refresh(CUSTOMER)

    entry = resolver.cache.get(CUSTOMER)
    assert entry is not None
    assert (entry.features == {"fetched"}) == (started >= invalidated)


@given(created=_created, started=_started, skew=_skew)
def test_an_event_replaces_a_fetched_set_unless_older_than_the_fetchs_start_less_the_skew(
    created: int, started: float, skew: float
) -> None:
    wall = _Wall()
    wall.now = started
    resolver = Resolver(StaticSource({CUSTOMER: ["fetched"]}), clock_skew=skew, wall_clock=wall)
    resolver.features(CUSTOMER)

    applied = resolver.apply_event(CUSTOMER, ["from-event"], created)

    assert applied == (created >= math.floor(started - skew))


@given(created=_created)
def test_two_events_of_one_second_tie_and_the_later_delivery_applies(created: int) -> None:
    resolver = Resolver(StaticSource({}))
    assert resolver.apply_event(CUSTOMER, ["first"], created)
    assert resolver.apply_event(CUSTOMER, ["second"], created)
    assert not resolver.apply_event(CUSTOMER, ["older"], created - 1)
    assert resolver.features(CUSTOMER) == {"second"}
