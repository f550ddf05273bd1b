"""RedisCache in one process: keys, stored times, which write wins, local copies, leases, twins."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from entitlegate import Entry, RedisCache, Resolver, StaticSource, StripeSource
from entitlegate.cache import supersedes
from entitlegate.cache._base import invalidated, replacement
from entitlegate.cache._local import LocalTier
from entitlegate.cache._redis_listener import Invalidations
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for

pytestmark = pytest.mark.redis

MakeCache = Callable[..., RedisCache]


class _Source:
    """A source with a livemode and a Connect account, as a user's own source may have."""

    def __init__(
        self, features: Iterable[str] = (), *, livemode: bool | None = False, stripe_account: str | None = None
    ) -> None:
        self.features = frozenset(features)
        self.livemode = livemode
        self.stripe_account = stripe_account

    def fetch(self, customer: str) -> frozenset[str]:
        return self.features

    async def afetch(self, customer: str) -> frozenset[str]:
        return self.features


def _copied(resolver: Resolver, cache: RedisCache, customer: str) -> frozenset[str]:
    """Read once the listener has subscribed, so the local copy the read leaves stays.

    A listener forgets every copy when it subscribes: a copy made before that is no sign of one
    that lasts.
    """
    resolver.features(customer)  # starts the listener
    wait_for(lambda: cache.listening)
    answer = resolver.features(customer)
    assert cache.peek(customer) is not None
    return answer


def _stripe_source(fake: FakeStripe, **options: object) -> StripeSource:
    return StripeSource(api_key=fake.api_key, api_base=fake.url, max_network_retries=0, **options)  # type: ignore[arg-type]


# -- keys -----------------------------------------------------------------------------------------


def test_a_miss_is_stored_under_prefix_livemode_account_customer_for_stale_ttl(
    make_cache: MakeCache, admin: redis.Redis, fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer(customer, ["seats-feature"])
    resolver = Resolver(_stripe_source(fake_stripe), make_cache(prefix="eg"), stale_ttl=3600)

    assert resolver.features(customer) == {"seats-feature"}

    key = f"eg:test:-:{customer}"
    assert admin.exists(key)
    assert 3590_000 < admin.pttl(key) <= 3600_000


def test_a_connected_account_gets_keys_of_its_own(
    make_cache: MakeCache, admin: redis.Redis, fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer(customer, ["platform"])
    fake_stripe.set_customer(customer, ["connected"], account="acct_123")
    platform = Resolver(_stripe_source(fake_stripe), make_cache())
    connected = Resolver(_stripe_source(fake_stripe, stripe_account="acct_123"), make_cache())

    assert platform.features(customer) == {"platform"}
    assert connected.features(customer) == {"connected"}
    assert admin.exists(f"entitlegate:test:-:{customer}", f"entitlegate:test:acct_123:{customer}") == 2


def test_live_and_test_mode_never_share_an_entry(make_cache: MakeCache, admin: redis.Redis, customer: str) -> None:
    live = Resolver(_Source({"live-feature"}, livemode=True), make_cache())
    test = Resolver(_Source({"test-feature"}, livemode=False), make_cache())
    unknown = Resolver(StaticSource({customer: ["static"]}), make_cache())

    assert live.features(customer) == {"live-feature"}
    assert test.features(customer) == {"test-feature"}
    assert unknown.features(customer) == {"static"}
    assert sorted(admin.keys(f"*{customer}")) == [
        f"entitlegate:-:-:{customer}".encode(),
        f"entitlegate:live:-:{customer}".encode(),
        f"entitlegate:test:-:{customer}".encode(),
    ]


def test_a_cache_serves_one_namespace_only(make_cache: MakeCache) -> None:
    cache = make_cache()
    Resolver(_Source(livemode=True), cache)
    Resolver(_Source(livemode=True), cache)  # the same namespace again is fine

    with pytest.raises(ValueError, match="its own RedisCache"):
        Resolver(_Source(livemode=False), cache)


def test_clear_drops_this_namespace_only(make_cache: MakeCache, admin: redis.Redis, customer: str) -> None:
    live_cache, test_cache = make_cache(), make_cache()
    live = Resolver(_Source({"a"}, livemode=True), live_cache)
    test = Resolver(_Source({"b"}, livemode=False), test_cache)
    _copied(live, live_cache, customer)
    _copied(test, test_cache, customer)

    live_cache.clear()

    assert admin.keys(f"*{customer}") == [f"entitlegate:test:-:{customer}".encode()]
    assert live_cache.peek(customer) is None


def test_a_clear_message_of_another_namespace_leaves_this_tiers_copies() -> None:
    # The listener's reading of a message, on its own: a listener thread may also clear its tier
    # when it (re)connects, which would make this race in a test through a live Redis.
    local = LocalTier(ttl=60.0, maxsize=10, clock=lambda: 0.0)
    local.keep("cus_1", Entry(frozenset({"a"}), 1.0, 100.0, 100.0), local.generation)
    invalidations = Invalidations(local, "entitlegate:invalidations", lambda: "entitlegate:test:-:", heartbeat=1.0)

    invalidations.received(b"entitlegate:live:-:")
    assert local.peek("cus_1") is not None
    invalidations.received(b"entitlegate:test:-:")
    assert local.peek("cus_1") is None


# -- stored times -----------------------------------------------------------------------------------


def test_entry_times_are_translated_between_monotonic_clocks(make_cache: MakeCache, customer: str) -> None:
    wall = time.time()
    writer = make_cache(clock=lambda: 1000.0, wall_clock=lambda: wall)
    reader = make_cache(clock=lambda: 50.0, wall_clock=lambda: wall)

    writer.put(customer, Entry(frozenset({"a"}), wall, 1000.0 + 300, 1000.0 + 86400), event=False)
    entry = reader.get(customer)

    assert entry is not None
    assert entry.version == wall
    assert entry.expires == pytest.approx(50.0 + 300)
    assert entry.stale_until == pytest.approx(50.0 + 86400)


# -- which write wins -------------------------------------------------------------------------------


def _entry(version: float, *features: str) -> Entry:
    now = time.monotonic()
    return Entry(frozenset(features), version, now + 300, now + 86400)


def test_an_older_event_never_overwrites_a_newer_entry(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache()
    assert cache.put(customer, _entry(200.0, "new"), event=True)

    assert not cache.put(customer, _entry(150.0, "old"), event=True)

    assert cache.get(customer).features == {"new"}  # type: ignore[union-attr]


def test_an_event_in_the_second_of_a_fetch_applies(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache()
    cache.put(customer, _entry(200.7, "fetched"), event=False)

    assert cache.put(customer, _entry(200.0, "event"), event=True)
    assert cache.get(customer).features == {"event"}  # type: ignore[union-attr]


def test_a_fetch_that_started_before_an_invalidation_cannot_write_back(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache()
    cache.put(customer, _entry(100.0, "old"), event=False)
    cache.invalidate(customer, 300.0)

    assert not cache.put(customer, _entry(299.0, "read-before"), event=False)
    assert cache.put(customer, _entry(301.0, "read-after"), event=False)
    assert cache.get(customer).features == {"read-after"}  # type: ignore[union-attr]


def test_an_invalidation_keeps_the_set_for_outages_and_is_never_stale(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache()
    cache.put(customer, _entry(500.0, "kept"), event=True)

    cache.invalidate(customer, 400.0)

    entry = cache.get(customer)
    assert entry is not None
    assert (entry.features, entry.version, entry.expires) == ({"kept"}, 500.0, -math.inf)
    assert entry.stale_until > time.monotonic() + 86000


# Versions around one second boundary, whole and fractional, so ties and same-second cases come up.
# The last double of a second is what an event's set is versioned at (the resolver's end of second).
_seconds = st.integers(1_767_225_598, 1_767_225_601)
_versions = (
    _seconds.map(float)
    | _seconds.map(lambda second: math.nextafter(second + 1.0, 0))
    | st.floats(1_767_225_598.0, 1_767_225_601.0)
)
_WALL = 1_767_225_600.0


@pytest.fixture
def plain_cache(make_cache: MakeCache) -> RedisCache:
    """No local copies, and one clock for both sides, so stored times come back unchanged."""
    return make_cache(local_ttl=0, clock=lambda: _WALL, wall_clock=lambda: _WALL)


# Hypothesis runs every example with the test's one cache; each example uses a customer of its own.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=_versions, version=_versions, event=st.booleans())
def test_the_put_script_follows_supersedes(plain_cache: RedisCache, held: float, version: float, event: bool) -> None:
    cache = plain_cache
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    current = _entry(held, "held")
    assert cache.put(customer, current, event=False)

    stored = cache.put(customer, _entry(version, "new"), event=event)

    assert stored == supersedes(version, current, event=event)
    assert cache.get(customer).features == ({"new"} if stored else {"held"})  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=st.none() | _versions, version=_versions, ended=st.booleans())
def test_the_invalidate_script_follows_invalidated(
    plain_cache: RedisCache, held: float | None, version: float, ended: bool
) -> None:
    cache = plain_cache
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    current = None if held is None else Entry(frozenset({"held"}), held, _WALL + 300, _WALL + 86400)
    if current is not None:
        cache.put(customer, current, event=False)

    cache.invalidate(customer, version, ended=ended)

    assert cache.get(customer) == invalidated(current, version, ended=ended)


def _stamped(features: str, version: float, as_of: float) -> Entry:
    return Entry(frozenset({features}), version, _WALL + 300, _WALL + 86400, as_of)


# The host times a set was learnt at (as_of), around the same boundary, independent of versions.
_as_ofs = _versions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=st.tuples(_versions, _as_ofs), new=st.tuples(_versions, _as_ofs), event=st.booleans())
def test_the_put_script_follows_replacement_stamp_for_stamp(
    plain_cache: RedisCache, held: tuple[float, float], new: tuple[float, float], event: bool
) -> None:
    cache = plain_cache
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    current, entry = _stamped("held", *held), _stamped("new", *new)
    assert cache.put(customer, current, event=False)

    stored = cache.put(customer, entry, event=event)

    expected = replacement(entry, current, event=event)
    assert stored == (expected is not None)
    assert cache.get(customer) == (current if expected is None else expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=st.none() | st.tuples(_versions, _as_ofs), version=_versions, as_of=_as_ofs, ended=st.booleans())
def test_the_invalidate_script_follows_invalidated_stamp_for_stamp(
    plain_cache: RedisCache, held: tuple[float, float] | None, version: float, as_of: float, ended: bool
) -> None:
    cache = plain_cache
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    current = None if held is None else _stamped("held", *held)
    if current is not None:
        cache.put(customer, current, event=False)

    cache.invalidate(customer, version, ended=ended, as_of=as_of)

    assert cache.get(customer) == invalidated(current, version, ended=ended, as_of=as_of)


def test_a_customer_with_five_features_takes_at_most_200_bytes(make_cache: MakeCache, admin: redis.Redis) -> None:
    customer = "cus_" + "N" * 14  # Stripe's customer ids are 18 characters
    features = ["seats-feature", "api-access", "sso-login", "audit-log", "priority-support"]
    cache = make_cache()
    Resolver(StaticSource({customer: features}), cache).features(customer)

    assert admin.memory_usage(cache.namespace + customer, samples=0) <= 200


def test_an_endless_stale_ttl_keeps_the_key_for_ever(make_cache: MakeCache, admin: redis.Redis, customer: str) -> None:
    cache = make_cache()
    resolver = Resolver(StaticSource({customer: ["a"]}), cache, stale_ttl=math.inf)
    resolver.features(customer)
    key = cache.namespace + customer
    assert admin.pttl(key) == -1

    resolver.invalidate(customer)

    assert admin.pttl(key) == -1
    assert cache.get(customer).features == {"a"}  # type: ignore[union-attr]


def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisCache(redis.Redis.from_url(redis_url, decode_responses=True))
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisCache(redis_url + "?decode_responses=true")


# -- local copies -------------------------------------------------------------------------------------


def test_a_read_leaves_a_local_copy_fresh_for_local_ttl(
    make_cache: MakeCache, admin: redis.Redis, customer: str
) -> None:
    cache = make_cache(local_ttl=30)
    resolver = Resolver(StaticSource({customer: ["a"]}), cache)
    _copied(resolver, cache, customer)
    admin.flushdb()  # only the local copy is left to answer
    before = resolver.stats

    assert resolver.features(customer) == {"a"}
    assert resolver.stats.hits == before.hits + 1
    assert resolver.stats.source_calls == before.source_calls
    copy = cache.peek(customer)
    assert copy is not None
    assert copy.expires <= time.monotonic() + 30


def test_local_ttl_zero_keeps_no_copy(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache(local_ttl=0)
    resolver = Resolver(StaticSource({customer: ["a"]}), cache)

    assert resolver.features(customer) == {"a"}
    assert resolver.features(customer) == {"a"}
    assert cache.peek(customer) is None
    assert resolver.stats.source_calls == 1


def test_a_webhook_through_one_cache_drops_the_copy_in_another(make_cache: MakeCache, customer: str) -> None:
    sender = Resolver(_Source(), make_cache(local_ttl=60))
    receiver = Resolver(_Source({"before"}), make_cache(local_ttl=60))
    assert receiver.features(customer) == {"before"}

    sender.apply_event(customer, ["after"], time.time())

    wait_for(lambda: receiver.features(customer) == {"after"})


def test_an_invalidation_through_one_cache_drops_the_copy_in_another(
    make_cache: MakeCache, fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer(customer, ["before"])
    sender = Resolver(_stripe_source(fake_stripe), make_cache(local_ttl=60))
    receiver = Resolver(_stripe_source(fake_stripe), make_cache(local_ttl=60))
    assert receiver.features(customer) == {"before"}
    fake_stripe.set_customer(customer, ["after"])

    sender.invalidate(customer)

    wait_for(lambda: receiver.features(customer) == {"after"})


def test_a_refetch_that_finds_a_new_set_drops_the_copy_in_another(
    make_cache: MakeCache, fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer(customer, ["before"])
    sender = Resolver(_stripe_source(fake_stripe), make_cache(local_ttl=60))
    receiver = Resolver(_stripe_source(fake_stripe), make_cache(local_ttl=60))
    assert receiver.features(customer) == {"before"}
    fake_stripe.set_customer(customer, ["after"])

    sender.refresh(customer)  # what a truncated summary event does

    wait_for(lambda: receiver.features(customer) == {"after"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_forgets_its_parents_copies(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache(local_ttl=60)
    resolver = Resolver(StaticSource({customer: ["a"]}), cache)
    _copied(resolver, cache, customer)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a process with threads
        pid = os.fork()
    if pid == 0:  # the child: its parent's copies may miss what it can no longer hear
        os._exit(0 if cache.peek(customer) is None and resolver.features(customer) == {"a"} else 1)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.peek(customer) is not None  # the parent keeps its own


# -- leases: one fetch for many processes -------------------------------------------------------------


def test_a_second_cache_waits_for_the_first_ones_fetch(make_cache: MakeCache, customer: str) -> None:
    first, second = make_cache(), make_cache()
    borrowed: list[Entry | None] = []

    def wait_for_the_first() -> None:
        with second.lease(customer) as entry:
            borrowed.append(entry)

    with first.lease(customer) as entry:
        assert entry is None  # first in: fetch
        waiter = threading.Thread(target=wait_for_the_first)
        waiter.start()
        first.put(customer, _entry(time.time(), "fetched"), event=False)
    waiter.join(timeout=5)

    assert len(borrowed) == 1
    assert borrowed[0] is not None
    assert borrowed[0].features == {"fetched"}


def test_a_waiter_fetches_itself_when_the_lease_is_not_served_in_time(make_cache: MakeCache, customer: str) -> None:
    first, second = make_cache(), make_cache(lease_timeout=0.2)
    with first.lease(customer):
        started = time.monotonic()
        with second.lease(customer) as entry:
            waited = time.monotonic() - started

    assert entry is None
    assert 0.15 < waited < 1.0


def test_a_failed_fetch_lets_its_lease_go(make_cache: MakeCache, admin: redis.Redis, customer: str) -> None:
    cache = make_cache()
    with pytest.raises(RuntimeError), cache.lease(customer):
        raise RuntimeError("Stripe is down")

    assert admin.keys("entitlegate:lease:*") == []


def test_concurrent_misses_of_two_resolvers_make_one_source_call(make_cache: MakeCache, customer: str) -> None:
    calls: list[str] = []

    class SlowSource(_Source):
        def fetch(self, customer: str) -> frozenset[str]:
            calls.append(customer)
            time.sleep(0.2)  # a slow Stripe
            return frozenset({"a"})

    resolvers = [Resolver(SlowSource(), make_cache()) for _ in range(2)]
    answers: list[frozenset[str]] = []
    threads = [threading.Thread(target=lambda r=r: answers.append(r.features(customer))) for r in resolvers * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert answers == [{"a"}] * 6
    assert len(calls) == 1
    assert sum(r.stats.coalesced for r in resolvers) >= 1


# -- async twins and clients --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_async_twins_share_the_entries_of_the_sync_ones(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache(local_ttl=0)
    resolver = Resolver(_Source({"fetched"}), cache)

    assert await resolver.afeatures(customer) == {"fetched"}
    assert cache.get(customer).features == {"fetched"}  # type: ignore[union-attr]
    assert await resolver.aapply_event(customer, ["event"], time.time() + 1)
    assert (await cache.aget(customer)).features == {"event"}  # type: ignore[union-attr]
    await resolver.ainvalidate(customer)
    entry = await cache.aget(customer)
    assert entry is not None
    assert entry.expires == -math.inf
    assert entry.features == {"event"}
    assert await resolver.afeatures(customer) == {"fetched"}


@pytest.mark.asyncio
async def test_an_async_lease_waits_for_a_sync_ones_fetch(make_cache: MakeCache, customer: str) -> None:
    first, second = make_cache(), make_cache()

    async def wait_for_the_first() -> Entry | None:
        async with second.alease(customer) as entry:
            return entry

    with first.lease(customer):
        waiting = asyncio.ensure_future(wait_for_the_first())
        await asyncio.sleep(0.02)  # time to poll a few times: it must still be waiting then
        assert not waiting.done()
        first.put(customer, _entry(time.time(), "fetched"), event=False)
        entry = await asyncio.wait_for(waiting, 5)

    assert entry is not None
    assert entry.features == {"fetched"}


@pytest.mark.asyncio
async def test_a_sync_client_handed_in_serves_async_calls_from_a_thread(redis_url: str, customer: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.25)
    cache = RedisCache(client)
    try:
        resolver = Resolver(_Source({"a"}), cache)
        assert await resolver.afeatures(customer) == {"a"}
        assert await resolver.aapply_event(customer, ["b"], time.time() + 1)
        assert cache._loops == {}  # no asyncio client of its own
    finally:
        cache.close()
        client.close()


@pytest.mark.asyncio
async def test_an_async_client_handed_in_serves_its_loop(redis_url: str, customer: str) -> None:
    client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    cache = RedisCache(client, async_client=async_client)
    try:
        resolver = Resolver(_Source({"a"}), cache)
        assert await resolver.afeatures(customer) == {"a"}
        (used,) = cache._loops.values()
        assert used.redis is async_client
    finally:
        await cache.aclose()
        await async_client.aclose()
        client.close()


def test_a_client_slow_to_give_up_on_a_hung_redis_gets_a_warning(
    make_cache: MakeCache, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    quick = redis.Redis.from_url(redis_url, socket_timeout=0.25, retry=Retry(NoBackoff(), 0))
    slow = redis.Redis.from_url(redis_url, socket_timeout=5, retry=Retry(NoBackoff(), 10))

    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        make_cache(quick)
        assert caplog.text == ""
        make_cache(slow)

    assert "may hold a request up to 55 s when Redis hangs" in caplog.text


def test_an_asyncio_client_alone_is_refused(redis_url: str) -> None:
    with pytest.raises(TypeError, match="async_client="):
        RedisCache(redis.asyncio.Redis.from_url(redis_url))  # type: ignore[arg-type]


def test_one_cache_serves_several_event_loops(make_cache: MakeCache, customer: str) -> None:
    cache = make_cache()
    resolver = Resolver(_Source({"a"}), cache)

    for _ in range(3):  # each asyncio.run is a new loop; the last one's client is closed with it
        assert asyncio.run(resolver.afeatures(customer)) == {"a"}
        assert asyncio.run(cache.aget(customer)) is not None
    gc.collect()  # an unclosed asyncio connection would warn here, and warnings are errors

    assert cache._loops == {}


def test_hiredis_parses_replies_when_installed(make_cache: MakeCache) -> None:
    pytest.importorskip("hiredis")
    cache = make_cache()
    cache.get("cus_any")

    connection = cache._client.connection_pool.get_connection()
    try:
        assert "Hiredis" in type(connection._parser).__name__
    finally:
        cache._client.connection_pool.release(connection)


def test_the_url_sets_short_timeouts_and_no_retries(make_cache: MakeCache) -> None:
    options = make_cache(socket_timeout=0.1)._client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == 0.1
    assert options["socket_connect_timeout"] == 0.25
    assert options["retry"].get_retries() == 0


def test_import_entitlegate_works_without_redis_and_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import entitlegate\n"
        "try:\n"
        "    entitlegate.RedisCache\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert 'pip install "entitlegate[redis]"' in result.stdout


# -- secrets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2-secret@127.0.0.1:{port}/0",
        "redis://someone:hunter2-secret@127.0.0.1:{port}/0",
        "redis://127.0.0.1:{port}/0?password=hunter2-secret",
    ],
)
def test_neither_repr_nor_logs_show_the_password(
    make_cache: MakeCache, url: str, customer: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as closed:  # a port nothing listens on: every call fails and is logged
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cache = make_cache(url.format(port=port))
    resolver = Resolver(_Source({"a"}), cache)

    with caplog.at_level(logging.DEBUG, logger="entitlegate"):
        assert resolver.features(customer) == {"a"}

    assert "hunter2" not in repr(cache)
    assert "hunter2" not in repr(resolver)
    assert f"Redis at redis://127.0.0.1:{port}/0 is unavailable" in caplog.text
    assert "hunter2" not in caplog.text


def test_an_outage_warns_once_and_reads_raise_nothing(make_cache: MakeCache, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    resolver = Resolver(_Source({"a"}), make_cache(f"redis://127.0.0.1:{port}/0", retry_after=0.01))

    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        for number in range(20):
            assert resolver.features(f"cus_{number}") == {"a"}
            assert resolver.has_feature(f"cus_{number}", "a")

    assert len(caplog.records) == 1


def test_copies_kept_whole_in_an_outage_are_dropped_on_release_and_cut_copies_stay() -> None:
    now = 0.0
    local = LocalTier(ttl=2.0, maxsize=10, clock=lambda: now)
    entry = Entry(frozenset({"a"}), 1.0, 300.0, 86400.0)
    local.keep("cus_read", entry, local.generation)
    local.keep("cus_extended", entry, local.generation)
    local.hold("cus_fetched", entry, local.generation)
    now = 5.0  # past local_ttl: a cut copy no longer answers on the hot path

    read, extended = local.peek("cus_read"), local.held("cus_extended", local.generation)
    assert read is not None
    assert read.expires == 2.0
    assert extended == entry
    assert local.peek("cus_extended") == entry  # whole again, for the hot path

    local.release()
    assert local.peek("cus_read") is not None
    assert local.peek("cus_extended") is None
    assert local.peek("cus_fetched") is None


def test_a_copy_fetched_in_an_outage_that_lands_after_the_release_is_not_kept_whole() -> None:
    local = LocalTier(ttl=2.0, maxsize=10, clock=lambda: 0.0)
    seen = local.generation  # read as the fetch began, while the shared cache was down

    local.release()  # the shared cache answered meanwhile (nothing was kept whole yet)
    local.hold("cus_late", Entry(frozenset({"a"}), 1.0, 300.0, 86400.0), seen)

    assert local.peek("cus_late") is None
