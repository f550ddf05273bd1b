"""A cache every process shares: entries in Redis, short local copies kept true over pub/sub.

The layers, as mature SDK stores split them: :mod:`._redis_core` knows only Redis commands,
:mod:`._redis_clients` builds the clients (one per event loop), :mod:`._redis_format` maps an
:class:`~entitlegate.cache.Entry` to bytes and holds the scripts, and :class:`RedisCache` caches
and decides. Each of its operations is one flow (:mod:`._flow`): a no-I/O step, one command, a
no-I/O step; the sync twin runs it with :meth:`RedisCache.call` and the async one with
:meth:`RedisCache.acall`, the one breaker-guarded pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

try:
    import redis
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster
    from redis.crc import key_slot
    from redis.exceptions import RedisClusterException
except ImportError as error:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError('RedisCache needs the redis package: pip install "entitlegate[redis]"') from error

from entitlegate._fork import reset_after_fork
from entitlegate._meters import MeterEvent
from entitlegate.cache import _redis_format as stored
from entitlegate.cache._base import Binding, Entry, invalidated, replacement
from entitlegate.cache._breaker import Breaker
from entitlegate.cache._flow import DOWN, Flow, Run
from entitlegate.cache._local import LocalTier
from entitlegate.cache._redis_catalog import RedisCatalogStore
from entitlegate.cache._redis_clients import LoopClients, LoopConnection, build
from entitlegate.cache._redis_core import Keyed, RedisCommands
from entitlegate.cache._redis_listener import Invalidations, alisten, listen
from entitlegate.cache._redis_usage import RedisUsage
from entitlegate.errors import CacheUnavailable

__all__ = ["RedisCache"]

logger = logging.getLogger("entitlegate")

T = TypeVar("T")
_FIRST_POLL = 0.002
_LONGEST_POLL = 0.025
_ERRORS = (redis.RedisError, OSError, RedisClusterException)  # the last: a cluster with no node to ask
# redis-py 8.2's "no node of the cluster answered" (a RedisClusterException); older ones raise the base.
_CLUSTER_UNREACHABLE: tuple[type[BaseException], ...] = tuple(
    kind for kind in [getattr(redis.exceptions, "RedisClusterUnreachableError", None)] if kind is not None
)


class RedisCache:
    """Entries in Redis, shared by every process of every server, with short local copies.

    ``redis_url_or_client`` is a ``redis://``, ``rediss://`` or ``unix://`` URL, from which both a
    ``redis.Redis`` and (one per event loop) a ``redis.asyncio.Redis`` are built, each call timing
    out after ``socket_timeout`` (connecting: ``socket_connect_timeout``) seconds without retries.
    Or it is a ready ``redis.Redis``, whose own timeouts then apply and which serves the async
    twins from a worker thread unless ``async_client=`` (a ``redis.asyncio.Redis``) is given too;
    that one is used on the event loop that first uses it, the worker thread on any other.

    Keys are ``prefix:livemode:account:customer`` (``-`` for an unknown livemode or no Connect
    account), learnt from the resolver's source when it binds the cache; on a Redis Cluster
    (a ``redis+cluster://`` URL, or a ``redis.cluster.RedisCluster``) the customer is a hash tag,
    ``prefix:livemode:account:{customer}``, so a customer's entry and lease share a slot; a key
    lives for the entry's ``stale_ttl`` (five minutes at least). Writes compare stamps in Redis
    (see :func:`~entitlegate.cache.supersedes`), so an older event or fetch never overwrites a
    newer entry, whichever process writes it; fetches are judged by host time, so the hosts'
    clocks must agree (NTP). Concurrent misses in many processes make one source
    call: the first takes a lease, the others wait up to ``lease_timeout`` seconds for its answer.

    Copies read from Redis are kept in this process for ``local_ttl`` seconds (0: none), so most
    checks never leave it. A webhook, an invalidation or a changed set published on
    ``prefix:invalidations`` drops every process's copy at once; a listener (a daemon thread, or a
    task on each event loop that uses the cache) reconnects by itself and forgets every copy after
    a gap. When Redis fails, a warning is logged (at most one per 30 s), Redis is left alone for
    ``retry_after`` seconds and nothing is raised: a copy this process holds answers for as long as
    its entry is fresh (the resolver's ``ttl``, not ``local_ttl``), a miss goes to the source (once
    per customer, however many threads ask) and its answer is kept the same way, so an outage
    costs the source about one call per customer per ``ttl``; writes to Redis are skipped. The
    copies kept so are dropped once Redis answers again, as it may hold newer entries.
    ``clock``/``wall_clock`` (monotonic and epoch seconds) keep time for a cache used on its own;
    a :class:`~entitlegate.Resolver` binding the cache brings its own (one cache, one resolver's
    clocks). Thread-safe, and usable from any number of event loops.

    It is also a :class:`~entitlegate.usage.UsageStore`: usage counters and the meter events not
    yet sent live in Redis under ``prefix:usage:livemode:account:`` (see :mod:`._redis_usage`), so
    counts are exact across processes and a crashed process's events are sent by another; those
    calls raise :class:`~entitlegate.CacheUnavailable` while Redis is unavailable, and
    :meth:`clear` keeps them.
    """

    peek: Callable[[str], Entry | None]

    def __init__(
        self,
        redis_url_or_client: str | redis.Redis | RedisCluster,
        *,
        prefix: str = "entitlegate",
        local_ttl: float = 2.0,
        local_maxsize: int = 100_000,
        async_client: redis.asyncio.Redis | AsyncRedisCluster | None = None,
        socket_timeout: float = 0.25,
        socket_connect_timeout: float = 0.25,
        retry_after: float = 1.0,
        lease_timeout: float = 2.0,
        heartbeat: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(prefix, str) or not prefix.strip():
            raise ValueError(f"RedisCache prefix must be a non-blank string, got {prefix!r}")
        if isinstance(local_ttl, bool) or not isinstance(local_ttl, (int, float)) or not local_ttl >= 0:
            raise ValueError(f"RedisCache local_ttl must be a number of seconds >= 0, got {local_ttl!r}")
        for name, value in (
            ("socket_timeout", socket_timeout),
            ("socket_connect_timeout", socket_connect_timeout),
            ("retry_after", retry_after),
            ("lease_timeout", lease_timeout),
            ("heartbeat", heartbeat),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"RedisCache {name} must be a number of seconds > 0, got {value!r}")
        if isinstance(local_maxsize, bool) or not isinstance(local_maxsize, int) or local_maxsize < 1:
            raise ValueError(f"RedisCache local_maxsize must be a positive integer, got {local_maxsize!r}")

        clients = build(
            redis_url_or_client,
            async_client=async_client,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
        )
        self._sync, self._owns_client, self.location = clients.sync, clients.owned, clients.location
        self._client: redis.Redis | RedisCluster = clients.sync.redis
        self._password = clients.password
        self.cluster = clients.cluster
        if self.cluster and ("{" in prefix or "}" in prefix):
            raise ValueError(
                f"RedisCache prefix must hold no braces on a Redis Cluster (they make a hash tag), got {prefix!r}"
            )
        self.prefix = prefix
        self.lease_timeout = float(lease_timeout)
        self._clock = clock
        self._wall_clock = wall_clock
        self._binding: Binding | None = None
        self._redis = RedisCommands(prefix, tagged=self.cluster)
        self._usage = RedisUsage(self._redis)
        self._local = LocalTier(float(local_ttl), local_maxsize, self._now)
        self.peek = self._local.peek  # the hot path: a bound dict.get
        self._breaker = self._new_breaker(f"Redis at {self.location}", float(retry_after))
        self._node_breakers: dict[str, Breaker] = {}
        self._pick = self._breaker_of if self.cluster else None
        self._invalidations = Invalidations(
            self._local,
            self._redis.channel,
            lambda: self._redis.namespace,
            heartbeat=float(heartbeat),
            clock=self._now,
            answered=lambda: self._breaker.succeeded(),  # the breaker is replaced in a forked child
            tagged=self.cluster,
        )
        self._clients = LoopClients(clients.async_factory, async_client, self._alisten if self._local.ttl > 0 else None)
        self._listener: threading.Thread | None = None
        self._listener_lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = False
        reset_after_fork(self._after_fork)

    def __repr__(self) -> str:
        return f"RedisCache({self.location!r}, prefix={self.prefix!r}, local_ttl={self.local_ttl})"

    @property
    def local_ttl(self) -> float:
        """How long (seconds) a copy read from Redis answers checks in this process."""
        return self._local.ttl

    def catalog_store(self, keep: float) -> RedisCatalogStore:
        """A store for the account's feature catalog in this cache's Redis, kept ``keep`` seconds.

        The :class:`~entitlegate.Resolver` uses it for its catalog, so one process's fetch of the
        account's features serves every process. Its key is namespaced like the entries:
        ``prefix:catalog:livemode:account:``.
        """
        tail = self.namespace[len(self.prefix) + 1 :]
        return RedisCatalogStore(
            self._client, f"{self.prefix}:catalog:{tail}", keep=keep, unavailable=lambda: self.unavailable
        )

    @property
    def unavailable(self) -> bool:
        """Whether a Redis outage is being remembered now (checks then go to the source without Redis)."""
        return self._breaker.down

    @property
    def listening(self) -> bool:
        """Whether a listener is subscribed to invalidations now, so this process hears every change."""
        return self._invalidations.listening > 0

    @property
    def namespace(self) -> str:
        """The prefix of this cache's keys: ``prefix:livemode:account:``."""
        return self._redis.namespace

    def key(self, customer: str) -> str:
        """The Redis key of the customer's entry: ``namespace + customer`` (``{customer}`` on a cluster)."""
        return self._redis.key(customer)

    @property
    def _loops(self) -> dict[asyncio.AbstractEventLoop, LoopConnection]:
        return self._clients.by_loop

    def bind(self, binding: Binding) -> None:
        """Serve a resolver: namespace keys by its livemode and account, and keep time by its clocks.

        The Resolver calls this. Raises ``ValueError`` when the cache already serves another
        livemode or account (keys of test and live mode, or of two connected accounts, must never
        meet) or a resolver with other clocks (the entries' times would mean nothing to one of them).
        """
        bound = self._binding
        if bound is not None and (bound.livemode, bound.stripe_account) != (binding.livemode, binding.stripe_account):
            raise ValueError(
                f"this RedisCache already serves livemode={bound.livemode!r}, stripe_account={bound.stripe_account!r}; "
                "give each Resolver of another mode or account its own RedisCache"
            )
        if bound is not None and bound != binding:
            raise ValueError(
                "this RedisCache already serves a Resolver with other clocks; give each Resolver its own RedisCache"
            )
        self._binding = binding
        self._clock, self._wall_clock = binding.clock, binding.wall_clock
        if self._redis.name(binding.livemode, binding.stripe_account):
            self._local.clear()

    # -- the twins: each runs one flow ----------------------------------------------------------

    def get(self, customer: str) -> Entry | None:
        """The customer's entry in Redis (this process's copy while Redis is unavailable)."""
        return self.call(self._get(customer))

    async def aget(self, customer: str) -> Entry | None:
        """Async twin of :meth:`get`."""
        return await self.acall(self._get(customer))

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Store ``entry`` unless Redis holds a newer one; True if stored.

        While Redis is unavailable the entry is only kept in this process, if it is newer there;
        for an event's entry that raises :class:`~entitlegate.CacheUnavailable` (after keeping it).
        """
        return self.call(self._put(customer, entry, event))

    async def aput(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Async twin of :meth:`put`."""
        return await self.acall(self._put(customer, entry, event))

    def invalidate(self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None) -> None:
        """Make the customer's entry stale at ``version`` and host time ``as_of``, in Redis and every process.

        ``ended``: nothing of the old set is kept to serve during an outage. While Redis is
        unavailable it is done in this process only and raises :class:`~entitlegate.CacheUnavailable`.
        """
        self.call(self._invalidate(customer, version, ended, version if as_of is None else as_of))

    async def ainvalidate(
        self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None
    ) -> None:
        """Async twin of :meth:`invalidate`."""
        await self.acall(self._invalidate(customer, version, ended, version if as_of is None else as_of))

    def lease(self, customer: str) -> _Lease:
        """Claim the miss of ``customer``, or wait up to ``lease_timeout`` for whoever did.

        Yields the entry the claimant stored (fresh), or None: fetch now and :meth:`put` before
        leaving. A lease held is let go on leaving, so a failed fetch does not keep others waiting.
        """
        return _Lease(self, customer)

    def alease(self, customer: str) -> _Lease:
        """Async twin of :meth:`lease`."""
        return _Lease(self, customer)

    def clear(self) -> None:
        """Drop every entry of this namespace, in Redis and in every process's local copies."""
        self._local.clear()
        try:
            self._redis.clear()(self._sync)
        except _ERRORS as error:
            self._breaker.failed(error)

    # -- usage (entitlegate.usage.UsageStore): the flows are in ._redis_usage --------------------

    def add_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Count ``value`` and queue ``event`` in one script unless that passes ``limit``: (admitted, total).

        ``None`` when the counter is cold (nothing changed). Atomic across processes; raises
        :class:`~entitlegate.CacheUnavailable` when Redis does not answer.
        """
        return self.call(self._usage.add(customer, meter, period, value, event, limit))

    async def aadd_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Async twin of :meth:`add_usage`."""
        return await self.acall(self._usage.add(customer, meter, period, value, event, limit))

    def usage_total(self, customer: str, meter: str, period: int) -> int | None:
        """The counter's total, or ``None`` when it is cold; CacheUnavailable when Redis does not answer."""
        return self.call(self._usage.total(customer, meter, period))

    async def ausage_total(self, customer: str, meter: str, period: int) -> int | None:
        """Async twin of :meth:`usage_total`."""
        return await self.acall(self._usage.total(customer, meter, period))

    def seed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Set the counter to ``total`` if it is cold (kept a year and a week from ``period``); the counter."""
        return self.call(self._usage.seed(customer, meter, period, total))

    async def aseed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Async twin of :meth:`seed_usage`."""
        return await self.acall(self._usage.seed(customer, meter, period, total))

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]:
        """Up to ``n`` pending events of any process, leased for ``lease_seconds`` (by Redis's clock)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"claim n must be a whole number >= 0, got {n!r}")
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) or not lease_seconds > 0:
            raise ValueError(f"claim lease_seconds must be a number of seconds > 0, got {lease_seconds!r}")
        return self.call(self._usage.claim(n, lease_seconds)) if n else []

    def ack(self, events: list[MeterEvent]) -> None:
        """Forget ``events`` (Stripe took them); CacheUnavailable when some could not be forgotten."""
        self.call(self._usage.ack(events))

    # -- the one guarded call, sync and async -----------------------------------------------------

    def call(self, flow: Flow[T]) -> T:
        """Run ``flow`` here: its commands on the sync client, guarded by the breaker; its pauses slept."""
        self._ensure_listener()
        run = Run(flow, self._breaker, self._pick)
        while not run.done:
            try:
                reply = run.step(self._sync) if callable(run.step) else _slept(run.step)
            except _ERRORS as error:
                run.failed(error, self._unreachable(error))
            else:
                run.replied(reply)
        return run.result

    async def acall(self, flow: Flow[T]) -> T:
        """Async twin of :meth:`call`, on the running loop's client (else :meth:`call` in a worker thread)."""
        connection = self._clients.running()
        if connection is None:
            return await asyncio.to_thread(self.call, flow)
        run = Run(flow, self._breaker, self._pick)
        while not run.done:
            try:
                reply = await (run.step(connection) if callable(run.step) else asyncio.sleep(run.step))
            except _ERRORS as error:
                run.failed(error, self._unreachable(error))
            else:
                run.replied(reply)
        return run.result

    # -- the flows: what each operation decides around its one command ----------------------------

    def _get(self, customer: str) -> Flow[Entry | None]:
        generation = self._local.generation  # before the call: a recovery's release wins
        reply = yield self._redis.get(customer)
        if reply is DOWN:
            return self._local.held(customer, generation)
        return self._received(customer, reply, generation)

    def _put(self, customer: str, entry: Entry, event: bool) -> Flow[bool]:
        generation = self._local.generation
        value = stored.dump(entry, self._wall_clock() - self._clock())
        reply = yield self._redis.put(customer, value, event=event, keep_for=entry.stale_until - self._clock())
        if reply is DOWN:
            return self._put_here(customer, entry, event, generation)
        if reply == 1:
            self._local.keep(customer, entry, generation)
            return True
        if isinstance(reply, list):  # stored, keeping a stamp of the entry it replaced
            self._received(customer, reply[1], generation)
            return True
        self._received(customer, reply, generation)  # the newer entry Redis holds
        return False

    def _invalidate(self, customer: str, version: float, ended: bool, as_of: float) -> Flow[None]:
        held = self._local.peek(customer)
        self._local.drop(customer)
        generation = self._local.generation
        reply = yield self._redis.invalidate(customer, version, as_of, ended=ended)
        if reply is DOWN:
            # Never fresh, so it answers nothing; it keeps the set to serve if the source fails too.
            self._local.keep(customer, invalidated(held, version, ended=ended, as_of=as_of), generation)
            raise CacheUnavailable(f"Redis is unavailable: {customer!r} is invalidated in this process only")
        self._received(customer, reply, generation)

    def _claim(self, customer: str, token: str) -> Flow[tuple[bool, Entry | None]]:
        """Take the lease (True), or wait with growing pauses for the entry its holder stores."""
        generation, pauses = self._local.generation, self._pauses()
        while True:
            now = self._wall_clock()
            reply = yield self._redis.lease(customer, token, timeout=self.lease_timeout, now=now)
            if reply is DOWN:
                return False, None
            if reply == 1:
                return True, None
            if reply != 0:  # whoever held it stored this
                return False, self._received(customer, reply, generation)
            pause = next(pauses, None)
            if pause is None:
                return False, None
            yield pause

    def _release(self, customer: str, token: str) -> Flow[None]:
        yield self._redis.release(customer, token)  # unanswered: the lease expires by itself

    def _pauses(self) -> Iterator[float]:
        """The waits between lease attempts, growing, until ``lease_timeout`` from now is spent."""
        deadline = self._clock() + self.lease_timeout  # from now, not from the first pause

        def pauses() -> Iterator[float]:
            pause = _FIRST_POLL
            while self._clock() + pause <= deadline:
                yield pause
                pause = min(pause * 1.5, _LONGEST_POLL)

        return pauses()

    def _received(self, customer: str, data: object, generation: int) -> Entry | None:
        """The entry in bytes read from Redis, translated to this process's clock, and copied here."""
        entry = stored.load(data, self._wall_clock() - self._clock())
        if entry is not None:
            self._local.keep(customer, entry, generation)
        return entry

    def _put_here(self, customer: str, entry: Entry, event: bool, generation: int) -> bool:
        """Redis is unavailable: keep ``entry`` in this process only, by the same rule.

        A fetched answer is kept whole, fresh for its own ttl, so the outage costs the source one
        call per customer per ttl. A webhook's change raises CacheUnavailable once kept: the
        other processes never saw it, so it must come again (Stripe redelivers on a 503).
        """
        kept = replacement(entry, self._local.peek(customer), event=event)
        if kept is not None:
            # A fetch read before a drop must not undo it; a webhook's set is kept regardless, as
            # this process has taken it (Stripe's redelivery then makes it every process's).
            self._local.hold(customer, kept, self._local.generation if event else generation)
        if event:
            raise CacheUnavailable(f"Redis is unavailable: the change for {customer!r} holds in this process only")
        return kept is not None

    def _unreachable(self, error: BaseException) -> Breaker | None:
        # redis-py says so when no node of a cluster answered its topology refresh: up to 8.1 with
        # this bare exception, from 8.2 with its subclass RedisClusterUnreachableError. Then the
        # whole cluster is down, and one request per retry_after pays for finding it out.
        if self.cluster and (type(error) is RedisClusterException or isinstance(error, _CLUSTER_UNREACHABLE)):
            return self._breaker
        return None

    def _node_failed(self, breaker: _NodeBreaker, error: BaseException) -> None:
        """Record ``error`` on the node's breaker, or on the cluster's if no other primary is up.

        redis-py 8.2 refreshes the slot map at most once a second, so a cluster that went down
        whole fails node by node: this keeps it from then costing one probe per node per
        retry_after (and ``unavailable`` from saying no while every node is down).
        """
        breakers = self._node_breakers
        assert isinstance(self._client, RedisCluster)
        for node in list(self._client.nodes_manager.nodes_cache.values()):
            if node.server_type == "primary" and node.name != breaker.node:
                other = breakers.get(node.name)
                if other is None or not other.down:
                    Breaker.failed(breaker, error)
                    return
        self._breaker.failed(error)

    def _breaker_of(self, command: object) -> Breaker:
        """On a cluster, the breaker of the node that serves the command's key: one node down
        sends its customers to the source and leaves every other node's customers on Redis."""
        if not isinstance(command, Keyed) or self._breaker.down:
            return self._breaker
        assert isinstance(self._client, RedisCluster)
        try:
            node = self._client.nodes_manager.get_node_from_slot(key_slot(command.key.encode()))
        except _ERRORS:  # no node known for the slot: the cluster's own breaker
            return self._breaker
        breaker = self._node_breakers.get(node.name)
        if breaker is None:
            breaker = self._node_breakers.setdefault(node.name, _NodeBreaker(self, node.name))
        return breaker

    def _now(self) -> float:
        # The clock read through the cache, so that the one a binding brings reaches every part.
        return self._clock()

    def _describe(self, error: BaseException) -> str:
        message = str(error)
        return message.replace(self._password, "***") if self._password else message

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close the connections this cache opened (a client handed in stays open).

        Async clients are closed by their loop's listener task; call :meth:`aclose` on a loop
        that keeps running to close its client now.
        """
        self._closed = True
        self._stopping.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=self._invalidations.heartbeat + 1.0)
        self._clients.close()
        if self._owns_client:
            self._client.close()
        self._local.clear()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`: also closes the running loop's async client before returning."""
        connection = self._loops.get(asyncio.get_running_loop())
        self.close()
        if connection is not None and connection.keeper is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await connection.keeper

    def _ensure_listener(self) -> None:
        """Start the daemon thread that keeps local copies true, once, if there are any to keep."""
        if self._listener is not None or self._local.ttl <= 0 or self._closed:
            return
        with self._listener_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(
                    target=listen,
                    args=(self._client, self._invalidations, self._stopping),
                    name="entitlegate-redis-listener",
                    daemon=True,
                )
                self._listener.start()

    async def _alisten(self, client: redis.asyncio.Redis) -> None:
        await alisten(client, self._invalidations)

    def _after_fork(self) -> None:
        # A forked child has none of its parent's threads, and copies it can no longer trust.
        self._local.after_fork()
        self._invalidations.after_fork()
        self._clients.after_fork()
        self._listener_lock = threading.Lock()
        self._listener = None
        self._stopping = threading.Event()
        self._breaker = self._new_breaker(self._breaker.name, self._breaker.retry_after)
        self._node_breakers = {}

    def _new_breaker(self, name: str, retry_after: float) -> Breaker:
        # Back from an outage, Redis may hold newer entries than those this process kept meanwhile.
        return Breaker(
            name, retry_after=retry_after, clock=self._now, describe=self._describe, on_recovery=self._local.release
        )


class _NodeBreaker(Breaker):
    """The breaker of one node of a cluster; the failure of the last primary up is the cluster's."""

    def __init__(self, cache: RedisCache, node: str) -> None:
        template = cache._breaker
        super().__init__(
            f"Redis node {node} of {cache.location}",
            retry_after=template.retry_after,
            clock=cache._now,
            describe=cache._describe,
            on_recovery=cache._local.release,
        )
        self.node = node
        self._cache = cache

    def failed(self, error: BaseException) -> None:
        self._cache._node_failed(self, error)


class _Lease:
    """A claim on one customer's miss, entered with ``with`` or ``async with`` (see :meth:`RedisCache.lease`)."""

    def __init__(self, cache: RedisCache, customer: str) -> None:
        self._cache = cache
        self._customer = customer
        self._token = uuid.uuid4().hex
        self._held = False

    def __enter__(self) -> Entry | None:
        return self._cache.call(self._claim())

    def __exit__(self, *exc_info: object) -> None:
        self._cache.call(self._release())

    async def __aenter__(self) -> Entry | None:
        return await self._cache.acall(self._claim())

    async def __aexit__(self, *exc_info: object) -> None:
        await self._cache.acall(self._release())

    def _claim(self) -> Flow[Entry | None]:
        self._held, entry = yield from self._cache._claim(self._customer, self._token)
        return entry

    def _release(self) -> Flow[None]:
        if self._held:
            yield from self._cache._release(self._customer, self._token)


def _slept(seconds: float) -> float:
    time.sleep(seconds)
    return seconds  # the reply to a pause, which a flow ignores
