"""RedisCache as a UsageStore: counters exact across threads and processes, pending events in Redis."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

import pytest
import redis

from entitlegate import CacheUnavailable, RedisCache
from entitlegate._meters import MeterEvent
from entitlegate.cache._base import Binding
from entitlegate.cache._redis_usage import pack, unpack
from entitlegate.usage import UsageStore
from tests.polling import wait_for
from tests.redis.conftest import MakeCache, both_kinds
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

PERIOD = 1_764_547_200  # 2025-12-01T00:00:00Z
NEXT_PERIOD = 1_767_225_600  # 2026-01-01T00:00:00Z
METER = "exports"


def _customer() -> str:
    return f"cus_{uuid.uuid4().hex[:14]}"


def _event(customer: str, identifier: str | None = None, value: int = 1, meter: str = METER) -> MeterEvent:
    return MeterEvent(meter, customer, value, identifier or uuid.uuid4().hex, 1_765_000_000)


def _claim_all(cache: RedisCache, lease: float = 60.0) -> list[MeterEvent]:
    claimed: list[MeterEvent] = []
    while batch := cache.claim(5000, lease):
        claimed += batch
    return claimed


def _bound(cache: RedisCache, livemode: bool | None, account: str | None) -> RedisCache:
    cache.bind(Binding(livemode, account, time.monotonic, time.time))
    return cache


# -- cold, warm, seeds and periods -------------------------------------------------------------


def test_redis_cache_is_a_usage_store(make_cache: MakeCache) -> None:
    assert isinstance(make_cache(), UsageStore)


@both_kinds
def test_a_cold_counter_counts_and_queues_nothing(make_cache: MakeCache, admin: redis.Redis) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()

    assert cache.add_usage(customer, METER, PERIOD, 1, _event(customer)) is None

    assert cache.usage_total(customer, METER, PERIOD) is None
    assert cache.claim(10, 60) == []
    assert not admin.exists(cache._usage.counter_key(customer, METER, PERIOD))


@both_kinds
def test_a_warm_counter_counts_and_queues_the_event(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    event = _event(customer, value=3)
    cache.seed_usage(customer, METER, PERIOD, 40)

    assert cache.add_usage(customer, METER, PERIOD, 3, event) == (True, 43)

    assert cache.usage_total(customer, METER, PERIOD) == 43
    assert cache.claim(10, 60) == [event]


@both_kinds
def test_seed_sets_only_a_cold_counter_and_answers_the_counter(make_cache: MakeCache, admin: redis.Redis) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()

    assert cache.seed_usage(customer, METER, PERIOD, 5) == 5
    assert cache.seed_usage(customer, METER, PERIOD, 9) == 5  # a second seeder agrees with the first
    cache.add_usage(customer, METER, PERIOD, 2, _event(customer))
    assert cache.seed_usage(customer, METER, PERIOD, 0) == 7

    # Kept past any billing period's end (a year at most) plus 7 days.
    expiry = admin.pexpiretime(cache._usage.counter_key(customer, METER, PERIOD))
    assert expiry == (PERIOD + 373 * 86_400) * 1000


def test_a_new_period_is_a_new_counter(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 99)

    assert cache.add_usage(customer, METER, NEXT_PERIOD, 1, _event(customer)) is None
    assert cache.seed_usage(customer, METER, NEXT_PERIOD, 0) == 0
    assert cache.add_usage(customer, METER, NEXT_PERIOD, 1, _event(customer)) == (True, 1)
    assert cache.usage_total(customer, METER, PERIOD) == 99


def test_meters_and_customers_have_counters_of_their_own(make_cache: MakeCache) -> None:
    cache, customer, other = make_cache(local_ttl=0), _customer(), _customer()
    cache.seed_usage(customer, METER, PERIOD, 1)

    assert cache.usage_total(customer, "reports", PERIOD) is None
    assert cache.usage_total(other, METER, PERIOD) is None


def test_livemodes_and_accounts_do_not_mix(make_cache: MakeCache) -> None:
    customer = _customer()
    test_mode = _bound(make_cache(local_ttl=0), False, None)
    live_mode = _bound(make_cache(local_ttl=0), True, None)
    connected = _bound(make_cache(local_ttl=0), False, "acct_1")
    test_mode.seed_usage(customer, METER, PERIOD, 0)
    test_mode.add_usage(customer, METER, PERIOD, 1, _event(customer))

    for other in (live_mode, connected):
        assert other.usage_total(customer, METER, PERIOD) is None
        assert other.claim(10, 60) == []
    assert test_mode.usage_total(customer, METER, PERIOD) == 1
    assert test_mode._usage.namespace == "entitlegate:usage:test:-:"
    assert connected._usage.namespace == "entitlegate:usage:test:acct_1:"


def test_clearing_the_cache_keeps_counters_and_pending_events(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    event = _event(customer)
    cache.add_usage(customer, METER, PERIOD, 1, event)

    cache.clear()

    assert cache.usage_total(customer, METER, PERIOD) == 1
    assert cache.claim(10, 60) == [event]


# -- the warm path's cost --------------------------------------------------------------------------


def _sent(ports: list[int], act: Callable[[], object]) -> list[str]:
    """The commands clients sent to the servers at ``ports`` while ``act`` ran.

    Not a script's own, and not a subscriber's: a local tier's listener pings its quiet channel
    on its own connection whenever a heartbeat passes, which is no round trip of ``act``'s.
    """
    marker = f"usage-marker-{uuid.uuid4().hex}"
    seen: list[str] = []
    ready = threading.Barrier(len(ports) + 1)

    listening: set[str] = set()
    for port in ports:
        with redis.Redis(port=port, socket_timeout=10) as client:
            listening |= {
                entry["addr"]
                for entry in client.client_list()
                if any(int(entry.get(kind, 0)) for kind in ("sub", "psub", "ssub"))
            }

    def watch(port: int) -> None:
        with redis.Redis(port=port, socket_timeout=10) as client, client.monitor() as monitor:
            ready.wait()
            while marker not in (command := monitor.next_command())["command"]:
                address = f"{command['client_address']}:{command['client_port']}"
                if command["client_type"] != "lua" and address not in listening:
                    seen.append(command["command"].split()[0])

    markers = [redis.Redis(port=port) for port in ports]
    for client in markers:
        client.ping()  # connected before watching: its handshake is no command of act's
    threads = [threading.Thread(target=watch, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    ready.wait()
    act()
    for client in markers:
        client.echo(marker)
        client.close()
    for thread in threads:
        thread.join(10)
    return seen


def _ports(redis_kind: str, request: pytest.FixtureRequest) -> list[int]:
    if redis_kind == "cluster":
        return [node.port for node in request.getfixturevalue("redis_cluster").nodes]
    return [request.getfixturevalue("redis_server").port]


@both_kinds
def test_a_warm_add_is_one_round_trip(make_cache: MakeCache, redis_kind: str, request: pytest.FixtureRequest) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer))  # the scripts are loaded now
    ports = _ports(redis_kind, request)

    sent = _sent(ports, lambda: cache.add_usage(customer, METER, PERIOD, 1, _event(customer), limit=10))

    assert sent == ["EVALSHA"]
    assert _sent(ports, lambda: cache.usage_total(customer, METER, PERIOD)) == ["GET"]


@pytest.mark.parametrize("redis_kind", ["cluster"], indirect=True)
def test_on_a_cluster_the_first_add_indexes_the_customer_first(
    make_cache: MakeCache, redis_kind: str, request: pytest.FixtureRequest, admin: redis.Redis
) -> None:
    cache, customers = make_cache(local_ttl=0), [_customer(), _customer()]
    for customer in customers:
        cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customers[0], METER, PERIOD, 1, _event(customers[0]))
    # The scripts are loaded on the nodes that add touched, and customers[1]'s node may be another:
    # load them on every node (by SHA, so a cache of another prefix does it) with customers
    # spread over the slots (30 random ones miss one of 3 nodes once in ~70,000 runs).
    warm = make_cache(local_ttl=0, prefix="warm-scripts")
    for _ in range(30):
        other = _customer()
        warm.seed_usage(other, METER, PERIOD, 0)
        warm.add_usage(other, METER, PERIOD, 1, _event(other))

    sent = _sent(_ports(redis_kind, request), lambda: cache.add_usage(customers[1], METER, PERIOD, 1, _event("x")))

    assert sent == ["EVALSHA", "EVALSHA"]  # the index's node, then the customer's (maybe one node)
    assert sorted(admin.zrange(cache._usage.index_key, 0, -1)) == sorted(c.encode() for c in customers)


@both_kinds
@pytest.mark.asyncio
async def test_a_warm_async_add_is_one_round_trip_on_the_loops_client(
    make_cache: MakeCache, redis_kind: str, request: pytest.FixtureRequest
) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    await cache.aseed_usage(customer, METER, PERIOD, 0)
    await cache.aadd_usage(customer, METER, PERIOD, 1, _event(customer))
    loop = asyncio.get_running_loop()

    def add() -> object:
        return asyncio.run_coroutine_threadsafe(
            cache.aadd_usage(customer, METER, PERIOD, 1, _event(customer)), loop
        ).result(10)

    sent = await asyncio.to_thread(_sent, _ports(redis_kind, request), add)

    assert sent == ["EVALSHA"]
    assert len(cache._loops) == 1
    await cache.aclose()


# -- limits --------------------------------------------------------------------------------------


@both_kinds
def test_a_limit_admits_up_to_it_and_counts_nothing_past_it(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 8)

    assert cache.add_usage(customer, METER, PERIOD, 2, _event(customer), limit=10) == (True, 10)
    assert cache.add_usage(customer, METER, PERIOD, 1, _event(customer), limit=10) == (False, 10)
    assert cache.add_usage(customer, METER, PERIOD, 1, _event(customer), limit=0) == (False, 10)

    assert cache.usage_total(customer, METER, PERIOD) == 10
    assert len(cache.claim(10, 60)) == 1  # the denied events were never queued


@both_kinds
def test_a_limit_admits_exactly_the_limit_under_100_threads(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    start = threading.Barrier(100)

    def consume(number: int) -> tuple[bool, int] | None:
        start.wait()
        return cache.add_usage(customer, METER, PERIOD, 1, _event(customer, f"id-{number}"), limit=37)

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(consume, range(100)))

    admitted = [answer for answer in answers if answer is not None and answer[0]]
    assert len(admitted) == 37
    assert sorted(total for _, total in admitted) == list(range(1, 38))  # each admission saw its own total
    assert cache.usage_total(customer, METER, PERIOD) == 37
    assert len({event.identifier for event in _claim_all(cache)}) == 37


# -- pending events: claim and ack ---------------------------------------------------------------


@both_kinds
def test_claim_leases_pending_events_of_every_customer_and_ack_forgets_them(make_cache: MakeCache) -> None:
    cache = make_cache(local_ttl=0)
    customers = [_customer() for _ in range(12)]  # over the three masters of a cluster
    events = []
    for customer in customers:
        cache.seed_usage(customer, METER, PERIOD, 0)
        for _ in range(3):
            event = _event(customer)
            cache.add_usage(customer, METER, PERIOD, 1, event)
            events.append(event)

    first = cache.claim(20, 60)
    rest = cache.claim(100, 60)

    assert len(first) == 20
    assert sorted(first + rest, key=lambda e: e.identifier) == sorted(events, key=lambda e: e.identifier)
    assert cache.claim(100, 60) == []  # all leased now
    cache.ack(first + rest)
    assert _claim_all(cache, lease=0.001) == []  # acked: never claimable again, lease or none
    assert cache.usage_total(customers[0], METER, PERIOD) == 3  # acking sends nothing back


def test_acking_every_pending_event_empties_the_index(make_cache: MakeCache, admin: redis.Redis) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer))
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer))
    assert admin.zrange(cache._usage.index_key, 0, -1) == [customer.encode()]

    cache.ack(cache.claim(1, 60))
    assert admin.zcard(cache._usage.index_key) == 1  # one still pending
    cache.ack(cache.claim(1, 60))

    assert admin.exists(cache._usage.index_key) == 0


@pytest.mark.parametrize("redis_kind", ["cluster"], indirect=True)
def test_on_a_cluster_an_idle_customer_leaves_the_index_only_after_the_grace(
    make_cache: MakeCache, admin: redis.Redis
) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer))
    cache.ack(cache.claim(10, 60))
    index = cache._usage.index_key

    assert admin.zrange(index, 0, -1) == [customer.encode()]  # an adder may be between its two commands
    admin.zadd(index, {customer: time.time() - 61})  # as if last indexed a minute ago
    assert cache.claim(10, 60) == []

    assert admin.exists(index) == 0


@pytest.mark.parametrize("redis_kind", ["cluster"], indirect=True)
def test_on_a_cluster_a_node_down_leaves_the_other_nodes_events_claimable(
    make_cache: MakeCache, redis_cluster: RedisCluster
) -> None:
    cache = make_cache(local_ttl=0, retry_after=0.1)
    customers = [_customer() for _ in range(30)]
    index_node = redis_cluster.node_of(cache._usage.index_key)
    down = next(node for node in redis_cluster.nodes if node is not index_node)
    node_of = {c: redis_cluster.node_of(cache._usage.counter_key(c, METER, PERIOD)) for c in customers}
    elsewhere = [c for c in customers if node_of[c] is not down]
    for customer in customers:
        cache.seed_usage(customer, METER, PERIOD, 0)
        cache.add_usage(customer, METER, PERIOD, 1, _event(customer))

    down.stop()
    claimed = cache.claim(100, 60)

    assert sorted(event.customer for event in claimed) == sorted(elsewhere)
    assert 0 < len(elsewhere) < len(customers)


def test_an_expired_lease_makes_an_event_claimable_again(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    event = _event(customer)
    cache.add_usage(customer, METER, PERIOD, 1, event)

    assert cache.claim(10, 0.2) == [event]
    assert cache.claim(10, 0.2) == []
    wait_for(lambda: cache.claim(10, 60) == [event])


def test_an_event_with_an_identifier_already_pending_is_pending_once(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer, "same"))
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer, "same"))

    assert [event.identifier for event in _claim_all(cache)] == ["same"]  # Stripe bills an identifier once


def test_an_identifier_added_again_while_leased_keeps_its_lease(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer, "retried"))
    assert len(cache.claim(10, 60)) == 1

    cache.add_usage(customer, METER, PERIOD, 1, _event(customer, "retried"))

    assert cache.claim(10, 60) == []  # its holder is sending it: no second sender meanwhile


def test_claim_refuses_bad_arguments(make_cache: MakeCache) -> None:
    cache = make_cache(local_ttl=0)
    with pytest.raises(ValueError, match="claim n"):
        cache.claim(-1, 60)
    with pytest.raises(ValueError, match="lease_seconds"):
        cache.claim(10, 0)
    assert cache.claim(0, 60) == []


def test_a_garbled_pending_event_is_a_clear_error(make_cache: MakeCache, admin: redis.Redis) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    cache.add_usage(customer, METER, PERIOD, 1, _event(customer, "garbled"))
    events_key = cache._usage.namespace + customer + ":events"
    admin.hset(events_key, "garbled", b"\xff not json")

    with pytest.raises(ValueError, match=r"a pending meter event at '.*:events': not a meter event packed"):
        cache.claim(10, 60)


# -- the packed format ---------------------------------------------------------------------------


def test_a_packed_event_unpacks_to_itself() -> None:
    event = MeterEvent("api_calls", "cus_ü", 2**40, "id:1", 1_765_000_000)
    assert unpack(pack(event)) == event
    assert pack(event).startswith(b"[1,")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"{}",
        b"[]",
        b'[2,"m","c",1,"i",1]',
        b'[true,"m","c",1,"i",1]',
        b'[1,"m","c",1,"i"]',
        b'[1,"m","c",true,"i",1]',
        b'[1,"m","c",1.5,"i",1]',
        b'[1,"m",null,1,"i",1]',
        None,
    ],
)
def test_unpacking_anything_else_raises_value_error(data: bytes | None) -> None:
    with pytest.raises(ValueError, match="packed"):
        unpack(data)


# -- async twins ---------------------------------------------------------------------------------


@both_kinds
@pytest.mark.asyncio
async def test_the_async_twins_run_on_the_loops_own_client(make_cache: MakeCache) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    event = _event(customer)

    assert await cache.aadd_usage(customer, METER, PERIOD, 1, event) is None
    assert await cache.ausage_total(customer, METER, PERIOD) is None
    assert await cache.aseed_usage(customer, METER, PERIOD, 10) == 10
    assert await cache.aseed_usage(customer, METER, PERIOD, 0) == 10
    assert await cache.aadd_usage(customer, METER, PERIOD, 1, event, limit=11) == (True, 11)
    assert await cache.aadd_usage(customer, METER, PERIOD, 1, _event(customer), limit=11) == (False, 11)
    assert await cache.ausage_total(customer, METER, PERIOD) == 11

    assert len(cache._loops) == 1  # the loop's asyncio client, not the sync one in a thread
    assert cache.claim(10, 60) == [event]
    await cache.aclose()


# -- Redis down ----------------------------------------------------------------------------------


@both_kinds
def test_redis_down_raises_cache_unavailable_then_recovers(
    make_cache: MakeCache, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache, customer = make_cache(local_ttl=0, retry_after=0.1), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    server.stop()

    with caplog.at_level(logging.WARNING, logger="entitlegate"):
        calls: list[Callable[[], object]] = [
            lambda: cache.add_usage(customer, METER, PERIOD, 1, _event(customer)),
            lambda: cache.usage_total(customer, METER, PERIOD),
            lambda: cache.seed_usage(customer, METER, PERIOD, 0),
            lambda: cache.claim(10, 60),
            lambda: cache.ack([_event(customer)]),
        ]
        for call in calls:
            with pytest.raises(CacheUnavailable, match="entitlegate:usage:-:-:"):
                call()
    assert caplog.records  # the breaker's warning, as for the entries

    server.start()  # an empty Redis: the counter is cold again, and answering says so
    wait_for(lambda: _answers(lambda: cache.usage_total(customer, METER, PERIOD)))
    assert cache.usage_total(customer, METER, PERIOD) is None
    assert cache.seed_usage(customer, METER, PERIOD, 4) == 4
    assert cache.add_usage(customer, METER, PERIOD, 1, _event(customer)) == (True, 5)


@pytest.mark.asyncio
async def test_redis_down_raises_cache_unavailable_in_the_async_twins(
    make_cache: MakeCache, server: RedisServer
) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    await cache.aseed_usage(customer, METER, PERIOD, 0)
    server.stop()

    with pytest.raises(CacheUnavailable, match="usage counters"):
        await cache.aadd_usage(customer, METER, PERIOD, 1, _event(customer))
    with pytest.raises(CacheUnavailable):
        await cache.ausage_total(customer, METER, PERIOD)
    await cache.aclose()


def test_the_outage_message_never_holds_the_password(
    server: RedisServer, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    server.stop()
    cache = RedisCache(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0", local_ttl=0)
    try:
        with caplog.at_level(logging.WARNING, logger="entitlegate"), pytest.raises(CacheUnavailable) as raised:
            cache.add_usage("cus_x", METER, PERIOD, 1, _event("cus_x"))
    finally:
        cache.close()
    assert "s3cret-pw" not in str(raised.value)
    assert "s3cret-pw" not in caplog.text


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
    except CacheUnavailable:
        return False
    return True


# -- across processes ----------------------------------------------------------------------------

PROCESSES, THREADS, EACH = 4, 25, 100


def _add_from_threads(redis_url: str, customer: str, process: int) -> int:
    """In a spawned process: 25 threads add 100 events each; how many were admitted."""
    cache = RedisCache(redis_url, local_ttl=0)
    start = threading.Barrier(THREADS)

    def add(thread: int) -> int:
        start.wait()
        admitted = 0
        for number in range(EACH):
            event = _event(customer, f"p{process}-t{thread}-{number}")
            answer = cache.add_usage(customer, METER, PERIOD, 1, event)
            admitted += answer is not None and answer[0]
        return admitted

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return sum(pool.map(add, range(THREADS)))
    finally:
        cache.close()


@both_kinds
def test_four_processes_of_25_threads_count_10000_events_exactly(make_cache: MakeCache, redis_url: str) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)

    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        admitted = pool.starmap(_add_from_threads, [(redis_url, customer, p) for p in range(PROCESSES)])

    assert admitted == [THREADS * EACH] * PROCESSES
    assert cache.usage_total(customer, METER, PERIOD) == 10_000
    claimed = Counter(event.identifier for event in _claim_all(cache))
    assert len(claimed) == 10_000
    assert set(claimed.values()) == {1}  # every identifier pending exactly once


def _claim_then_hang(redis_url: str, lease: float, pipe: Connection) -> None:
    """In a spawned process: claim every pending event, say which, and wait to be killed."""
    cache = RedisCache(redis_url, local_ttl=0)
    pipe.send(sorted(event.identifier for event in cache.claim(100, lease)))
    time.sleep(60)


def test_events_a_killed_process_claimed_are_claimable_after_their_lease_only(
    make_cache: MakeCache, redis_url: str
) -> None:
    cache, customer = make_cache(local_ttl=0), _customer()
    cache.seed_usage(customer, METER, PERIOD, 0)
    identifiers = sorted(f"id-{number}" for number in range(10))
    for identifier in identifiers:
        cache.add_usage(customer, METER, PERIOD, 1, _event(customer, identifier))
    lease = 2.0
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_claim_then_hang, args=(redis_url, lease, theirs), daemon=True)
    child.start()
    try:
        assert ours.poll(30)
        assert ours.recv() == identifiers
        claimed_at = time.monotonic()
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(5)

        assert cache.claim(100, 60) == []  # the lease still holds: no one else gets them
        back: list[MeterEvent] = []

        def claimed_again() -> bool:
            back.extend(cache.claim(100, 60))
            return bool(back)

        wait_for(claimed_again, timeout=10)
    finally:
        if child.is_alive():
            child.kill()
    assert time.monotonic() - claimed_at >= lease - 0.2  # not before the lease ran out
    assert sorted(event.identifier for event in back) == identifiers
