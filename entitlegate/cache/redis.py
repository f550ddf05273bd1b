"""A cache every process shares: entries in Redis, short local copies kept true over pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

try:
    import redis
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as error:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError('RedisCache needs the redis package: pip install "entitlegate[redis]"') from error

from entitlegate.cache import _redis_format as stored
from entitlegate.cache._base import Entry, invalidated, replacement
from entitlegate.cache._breaker import Breaker
from entitlegate.cache._local import LocalTier
from entitlegate.cache._redis_listener import Invalidations, alisten, listen
from entitlegate.errors import CacheUnavailable
from entitlegate.sources import Source

__all__ = ["RedisCache"]

logger = logging.getLogger("entitlegate")

# An entry's key outlives its stale_ttl by this much at least, so that its version still stops a
# fetch that started before it (a slow Stripe call) from writing back an older set.
_VERSION_KEPT = 300.0
_FIRST_POLL = 0.002
_LONGEST_POLL = 0.025
_ERRORS = (redis.RedisError, OSError)


class _Scripts:
    """The Lua scripts, registered on one client (Redis reloads them by hash after a restart)."""

    def __init__(self, client: redis.Redis | redis.asyncio.Redis) -> None:
        self.put = client.register_script(stored.PUT)
        self.invalidate = client.register_script(stored.INVALIDATE)
        self.lease = client.register_script(stored.LEASE)
        self.release = client.register_script(stored.RELEASE)


@dataclass(eq=False)
class _LoopClient:
    """The asyncio client one event loop uses, and the task that listens on it and closes it."""

    redis: redis.asyncio.Redis
    scripts: _Scripts
    owned: bool
    keeper: asyncio.Task[None] | None = field(default=None, repr=False)


class RedisCache:
    """Entries in Redis, shared by every process of every server, with short local copies.

    ``redis_url_or_client`` is a ``redis://``, ``rediss://`` or ``unix://`` URL, from which both a
    ``redis.Redis`` and (one per event loop) a ``redis.asyncio.Redis`` are built, each call timing
    out after ``socket_timeout`` (connecting: ``socket_connect_timeout``) seconds without retries.
    Or it is a ready ``redis.Redis``, whose own timeouts then apply and which serves the async
    twins from a worker thread unless ``async_client=`` (a ``redis.asyncio.Redis``) is given too;
    that one is used on the event loop that first uses it, the worker thread on any other.

    Keys are ``prefix:livemode:account:customer`` (``-`` for an unknown livemode or no Connect
    account), learnt from the source when a :class:`~entitlegate.Resolver` binds the cache; a key
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
    ``clock``/``wall_clock`` (monotonic and epoch seconds) must be the resolver's. Thread-safe,
    and usable from any number of event loops.
    """

    peek: Callable[[str], Entry | None]

    def __init__(
        self,
        redis_url_or_client: str | redis.Redis,
        *,
        prefix: str = "entitlegate",
        local_ttl: float = 2.0,
        local_maxsize: int = 100_000,
        async_client: redis.asyncio.Redis | None = None,
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
        if async_client is not None and not isinstance(async_client, redis.asyncio.Redis):
            raise TypeError(f"RedisCache async_client must be a redis.asyncio.Redis, got {type(async_client).__name__}")

        self._async_factory: Callable[[], redis.asyncio.Redis] | None = None
        target: object = redis_url_or_client  # checked as any object: callers are not all typed
        if isinstance(target, str):
            url = target
            try:
                self._client = redis.Redis.from_url(
                    url,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_connect_timeout,
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as error:  # redis-py's message names the problem, never the URL
                raise ValueError(f"RedisCache: {error}") from None
            self._async_factory = lambda: redis.asyncio.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                retry=AsyncRetry(NoBackoff(), 0),
            )
            self._owns_client = True
            self.location = _location_of_url(url)
        elif isinstance(target, redis.Redis):
            self._client = target
            self._owns_client = False
            self.location = _location_of_client(self._client)
        elif isinstance(target, redis.asyncio.Redis):
            raise TypeError(
                "RedisCache needs a redis URL or a redis.Redis; pass a redis.asyncio.Redis as async_client= "
                "beside it (a sync client cannot be served by an asyncio one)"
            )
        else:
            raise TypeError(f"RedisCache needs a redis URL or a redis.Redis, got {type(target).__name__}")
        self._password: str | None = self._client.connection_pool.connection_kwargs.get("password")
        clients = ((self._client, not self._owns_client), (async_client, True))
        for client, handed_in in clients:
            if client is None:
                continue
            if client.connection_pool.connection_kwargs.get("decode_responses"):
                raise ValueError("RedisCache stores bytes: give it a client with decode_responses=False")
            if handed_in:
                _warn_if_slow_to_fail(client)

        self.prefix = prefix
        self.lease_timeout = float(lease_timeout)
        self._clock = clock
        self._wall_clock = wall_clock
        self._bound: tuple[bool | None, str | None] | None = None
        self._namespace = self._lease_namespace = ""
        self._name(None, None)
        self._channel = f"{prefix}:invalidations"
        self._scripts = _Scripts(self._client)
        self._local = LocalTier(float(local_ttl), local_maxsize, clock)
        self.peek = self._local.peek  # the hot path: a bound dict.get
        self._breaker = self._new_breaker(f"Redis at {self.location}", float(retry_after))
        self._invalidations = Invalidations(
            self._local,
            self._channel,
            lambda: self._namespace,
            heartbeat=float(heartbeat),
            clock=clock,
            answered=lambda: self._breaker.succeeded(),  # the breaker is replaced in a forked child
        )
        self._async_client = async_client
        self._async_client_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._loops_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closed = False
        _CACHES.add(self)

    def __repr__(self) -> str:
        return f"RedisCache({self.location!r}, prefix={self.prefix!r}, local_ttl={self.local_ttl})"

    @property
    def local_ttl(self) -> float:
        """How long (seconds) a copy read from Redis answers checks in this process."""
        return self._local.ttl

    @property
    def listening(self) -> bool:
        """Whether a listener is subscribed to invalidations now, so this process hears every change."""
        return self._invalidations.listening > 0

    @property
    def namespace(self) -> str:
        """The prefix of this cache's keys: ``prefix:livemode:account:``."""
        return self._namespace

    def bind(self, source: Source) -> None:
        """Namespace keys by ``source``'s livemode and Stripe account (the Resolver calls this).

        Raises ``ValueError`` when the cache already serves another livemode or account: keys of
        test and live mode, or of two connected accounts, must never meet.
        """
        livemode = getattr(source, "livemode", None)
        account = getattr(source, "stripe_account", None)
        if livemode is not None and not isinstance(livemode, bool):
            raise TypeError(f"{source!r}.livemode must be True, False or None, got {livemode!r}")
        if account is not None and not isinstance(account, str):
            raise TypeError(f"{source!r}.stripe_account must be a string or None, got {account!r}")
        if self._bound is not None and self._bound != (livemode, account):
            raise ValueError(
                f"this RedisCache already serves livemode={self._bound[0]!r}, stripe_account={self._bound[1]!r}; "
                "give each Resolver of another mode or account its own RedisCache"
            )
        self._bound = (livemode, account)
        if self._name(livemode, account):
            self._local.clear()

    # -- reads ----------------------------------------------------------------------------------

    def get(self, customer: str) -> Entry | None:
        """The customer's entry in Redis (this process's copy while Redis is unavailable)."""
        self._ensure_listener()
        generation = self._local.generation  # before the breaker: a recovery's release wins
        if not self._breaker.allows():
            return self._local.held(customer, generation)
        try:
            data = self._client.get(self._namespace + customer)
        except _ERRORS as error:
            self._breaker.failed(error)
            return self._local.held(customer, generation)
        self._breaker.succeeded()
        return self._received(customer, data, generation)

    async def aget(self, customer: str) -> Entry | None:
        """Async twin of :meth:`get`."""
        client = self._client_for_running_loop()
        if client is None:
            return await asyncio.to_thread(self.get, customer)
        generation = self._local.generation
        if not self._breaker.allows():
            return self._local.held(customer, generation)
        try:
            data = await client.redis.get(self._namespace + customer)
        except _ERRORS as error:
            self._breaker.failed(error)
            return self._local.held(customer, generation)
        self._breaker.succeeded()
        return self._received(customer, data, generation)

    # -- writes ---------------------------------------------------------------------------------

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Store ``entry`` unless Redis holds a newer one; True if stored.

        While Redis is unavailable the entry is only kept in this process, if it is newer there;
        for an event's entry that raises :class:`~entitlegate.CacheUnavailable` (after keeping it).
        """
        self._ensure_listener()
        generation = self._local.generation
        if not self._breaker.allows():
            return self._put_here(customer, entry, event, generation)
        try:
            result = self._scripts.put(keys=[self._namespace + customer], args=self._put_args(entry, event))
        except _ERRORS as error:
            self._breaker.failed(error)
            return self._put_here(customer, entry, event, generation)
        self._breaker.succeeded()
        return self._put_done(customer, entry, result, generation)

    async def aput(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Async twin of :meth:`put`."""
        client = self._client_for_running_loop()
        if client is None:
            return await asyncio.to_thread(self.put, customer, entry, event=event)
        generation = self._local.generation
        if not self._breaker.allows():
            return self._put_here(customer, entry, event, generation)
        try:
            result = await client.scripts.put(keys=[self._namespace + customer], args=self._put_args(entry, event))
        except _ERRORS as error:
            self._breaker.failed(error)
            return self._put_here(customer, entry, event, generation)
        self._breaker.succeeded()
        return self._put_done(customer, entry, result, generation)

    def invalidate(self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None) -> None:
        """Make the customer's entry stale at ``version`` and host time ``as_of``, in Redis and every process.

        ``ended``: nothing of the old set is kept to serve during an outage. While Redis is
        unavailable it is done in this process only and raises :class:`~entitlegate.CacheUnavailable`.
        """
        self._ensure_listener()
        held = self._local.peek(customer)
        self._local.drop(customer)
        generation = self._local.generation
        if not self._breaker.allows():
            self._invalidate_here(customer, held, version, ended, as_of, generation)
            return
        try:
            value = self._scripts.invalidate(
                keys=[self._namespace + customer], args=self._invalidate_args(version, ended, as_of)
            )
        except _ERRORS as error:
            self._breaker.failed(error)
            self._invalidate_here(customer, held, version, ended, as_of, generation)
            return
        self._breaker.succeeded()
        self._received(customer, value, generation)

    async def ainvalidate(
        self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None
    ) -> None:
        """Async twin of :meth:`invalidate`."""
        client = self._client_for_running_loop()
        if client is None:
            await asyncio.to_thread(self.invalidate, customer, version, ended=ended, as_of=as_of)
            return
        held = self._local.peek(customer)
        self._local.drop(customer)
        generation = self._local.generation
        if not self._breaker.allows():
            self._invalidate_here(customer, held, version, ended, as_of, generation)
            return
        try:
            value = await client.scripts.invalidate(
                keys=[self._namespace + customer], args=self._invalidate_args(version, ended, as_of)
            )
        except _ERRORS as error:
            self._breaker.failed(error)
            self._invalidate_here(customer, held, version, ended, as_of, generation)
            return
        self._breaker.succeeded()
        self._received(customer, value, generation)

    def clear(self) -> None:
        """Drop every entry of this namespace, in Redis and in every process's local copies."""
        self._local.clear()
        pattern = _glob_escape(self._namespace) + "*"
        try:
            batch: list[str | bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)
            self._client.publish(self._channel, self._namespace)  # the bare namespace: forget them all
        except _ERRORS as error:
            self._breaker.failed(error)

    # -- coalescing misses across processes (entitlegate.cache.Leasing) --------------------------

    @contextlib.contextmanager
    def lease(self, customer: str) -> Iterator[Entry | None]:
        """Claim the miss of ``customer``, or wait up to ``lease_timeout`` for whoever did.

        Yields the entry the claimant stored (fresh), or None: fetch now and :meth:`put` before
        leaving. A lease held is let go on leaving, so a failed fetch does not keep others waiting.
        """
        self._ensure_listener()
        token = uuid.uuid4().hex
        held, entry = self._claim(customer, token)
        try:
            yield entry
        finally:
            if held:
                self._release(customer, token)

    @contextlib.asynccontextmanager
    async def alease(self, customer: str) -> AsyncIterator[Entry | None]:
        """Async twin of :meth:`lease`."""
        token = uuid.uuid4().hex
        client = self._client_for_running_loop()
        if client is None:
            held, entry = await asyncio.to_thread(self._claim, customer, token)
        else:
            held, entry = await self._aclaim(client, customer, token)
        try:
            yield entry
        finally:
            if held:
                if client is None:
                    await asyncio.to_thread(self._release, customer, token)
                else:
                    await self._arelease(client, customer, token)

    def _claim(self, customer: str, token: str) -> tuple[bool, Entry | None]:
        generation, pauses = self._local.generation, self._pauses()
        while self._breaker.allows():
            try:
                result = self._scripts.lease(keys=self._lease_keys(customer), args=self._lease_args(token))
            except _ERRORS as error:
                self._breaker.failed(error)
                break
            self._breaker.succeeded()
            answer = self._lease_answer(customer, result, generation)
            if answer is not None:
                return answer
            pause = next(pauses, None)
            if pause is None:
                break
            time.sleep(pause)
        return False, None

    async def _aclaim(self, client: _LoopClient, customer: str, token: str) -> tuple[bool, Entry | None]:
        generation, pauses = self._local.generation, self._pauses()
        while self._breaker.allows():
            try:
                result = await client.scripts.lease(keys=self._lease_keys(customer), args=self._lease_args(token))
            except _ERRORS as error:
                self._breaker.failed(error)
                break
            self._breaker.succeeded()
            answer = self._lease_answer(customer, result, generation)
            if answer is not None:
                return answer
            pause = next(pauses, None)
            if pause is None:
                break
            await asyncio.sleep(pause)
        return False, None

    def _lease_answer(self, customer: str, result: Any, generation: int) -> tuple[bool, Entry | None] | None:
        """What a LEASE reply means: claimed, whoever held it stored this, or None (held: wait)."""
        if result == 1:
            return True, None
        if result != 0:
            return False, self._received(customer, result, generation)
        return None

    def _pauses(self) -> Iterator[float]:
        """The waits between lease attempts, growing, until ``lease_timeout`` from now is spent."""
        deadline = self._clock() + self.lease_timeout  # from now, not from the first pause

        def pauses() -> Iterator[float]:
            pause = _FIRST_POLL
            while self._clock() + pause <= deadline:
                yield pause
                pause = min(pause * 1.5, _LONGEST_POLL)

        return pauses()

    def _release(self, customer: str, token: str) -> None:
        if not self._breaker.allows():
            return  # the lease expires by itself
        try:
            self._scripts.release(keys=self._lease_keys(customer)[1:], args=[token])
        except _ERRORS as error:
            self._breaker.failed(error)

    async def _arelease(self, client: _LoopClient, customer: str, token: str) -> None:
        if not self._breaker.allows():
            return
        try:
            await client.scripts.release(keys=self._lease_keys(customer)[1:], args=[token])
        except _ERRORS as error:
            self._breaker.failed(error)

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
        with self._loops_lock:
            loop_clients = list(self._loops.items())
        for loop, client in loop_clients:
            if client.keeper is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(client.keeper.cancel)
        if self._owns_client:
            self._client.close()
        self._local.clear()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`: also closes the running loop's async client before returning."""
        loop = asyncio.get_running_loop()
        client = self._loops.get(loop)
        self.close()
        if client is not None and client.keeper is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await client.keeper

    # -- decisions both twins share ---------------------------------------------------------------

    def _name(self, livemode: bool | None, account: str | None) -> bool:
        """Set the key prefixes for a livemode and account; True if they changed."""
        mode = "-" if livemode is None else "live" if livemode else "test"
        tail = f"{mode}:{account or '-'}:"
        namespace = f"{self.prefix}:{tail}"
        changed = namespace != self._namespace
        self._namespace, self._lease_namespace = namespace, f"{self.prefix}:lease:{tail}"
        return changed

    def _lease_keys(self, customer: str) -> list[str]:
        return [self._namespace + customer, self._lease_namespace + customer]

    def _lease_args(self, token: str) -> list[Any]:
        return [token, math.ceil(self.lease_timeout * 1000), self._wall_clock()]

    def _put_args(self, entry: Entry, event: bool) -> list[Any]:
        # Redis is shared by machines: monotonic readings mean nothing there, so store epoch times.
        now = self._wall_clock()
        offset = now - self._clock()
        stale_until = entry.stale_until + offset
        value = stored.encode(entry.features, entry.version, entry.expires + offset, stale_until, entry.as_of)
        key_ttl = max(stale_until - now, _VERSION_KEPT)
        milliseconds = math.ceil(key_ttl * 1000) if math.isfinite(key_ttl) else 0  # 0: kept for ever
        return [value, "1" if event else "0", milliseconds, self._channel]

    def _invalidate_args(self, version: float, ended: bool, as_of: float | None) -> list[Any]:
        return [
            stored.pack_version(version),
            math.ceil(_VERSION_KEPT * 1000),
            self._channel,
            "1" if ended else "0",
            stored.pack_version(version if as_of is None else as_of),
        ]

    def _received(self, customer: str, data: object, generation: int) -> Entry | None:
        """The entry in bytes read from Redis, translated to this process's clock, and copied here."""
        decoded = stored.decode(data) if isinstance(data, bytes) else None
        if decoded is None:
            return None
        features, version, expires, stale_until, as_of = decoded
        offset = self._clock() - self._wall_clock()
        entry = Entry(features, version, expires + offset, stale_until + offset, as_of)
        self._local.keep(customer, entry, generation)
        return entry

    def _put_done(self, customer: str, entry: Entry, result: Any, generation: int) -> bool:
        if result == 1:
            self._local.keep(customer, entry, generation)
            return True
        if isinstance(result, list):  # stored, keeping a stamp of the entry it replaced
            self._received(customer, result[1], generation)
            return True
        self._received(customer, result, generation)  # the newer entry Redis holds
        return False

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

    def _invalidate_here(
        self, customer: str, held: Entry | None, version: float, ended: bool, as_of: float | None, generation: int
    ) -> None:
        # Never fresh, so it answers nothing; it keeps the set to serve if the source fails too.
        self._local.keep(customer, invalidated(held, version, ended=ended, as_of=as_of), generation)
        raise CacheUnavailable(f"Redis is unavailable: {customer!r} is invalidated in this process only")

    def _describe(self, error: BaseException) -> str:
        message = str(error)
        return message.replace(self._password, "***") if self._password else message

    # -- listeners and event loops ----------------------------------------------------------------

    def _ensure_listener(self) -> None:
        """Start the daemon thread that keeps local copies true, once, if there are any to keep."""
        if self._listener is not None or self._local.ttl <= 0 or self._closed:
            return
        with self._loops_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(
                    target=listen,
                    args=(self._client, self._invalidations, self._stopping),
                    name="entitlegate-redis-listener",
                    daemon=True,
                )
                self._listener.start()

    def _client_for_running_loop(self) -> _LoopClient | None:
        """The running loop's asyncio client, or None: use the sync client in a worker thread."""
        loop = asyncio.get_running_loop()
        client = self._loops.get(loop)
        if client is not None:
            return client
        with self._loops_lock:
            client = self._loops.get(loop)
            if client is not None or self._closed:
                return client
            pinned = self._async_client_loop() if self._async_client_loop is not None else None
            if self._async_client is not None and pinned in (None, loop):
                self._async_client_loop = weakref.ref(loop)
                client = _LoopClient(self._async_client, _Scripts(self._async_client), owned=False)
            elif self._async_factory is not None:
                built = self._async_factory()
                client = _LoopClient(built, _Scripts(built), owned=True)
            else:
                return None
            for other in [other for other in self._loops if other.is_closed()]:
                del self._loops[other]  # a loop closed without cancelling its listener
            self._loops[loop] = client
        client.keeper = loop.create_task(self._keep(loop, client), name="entitlegate-redis-listener")
        return client

    async def _keep(self, loop: asyncio.AbstractEventLoop, client: _LoopClient) -> None:
        """A loop's listener; it also owns the loop's client, closing it when the loop shuts down."""
        try:
            if self._local.ttl > 0:
                await alisten(client.redis, self._invalidations)
            else:
                await loop.create_future()  # nothing to listen for: only hold the client until then
        finally:
            with self._loops_lock:
                if self._loops.get(loop) is client:
                    del self._loops[loop]
            if client.owned:
                await client.redis.aclose()

    def _after_fork(self) -> None:
        # A forked child has none of its parent's threads, and copies it can no longer trust.
        self._local.after_fork()
        self._invalidations.after_fork()
        self._loops_lock = threading.Lock()
        self._loops = {}
        self._listener = None
        self._stopping = threading.Event()
        self._breaker = self._new_breaker(self._breaker.name, self._breaker.retry_after)

    def _new_breaker(self, name: str, retry_after: float) -> Breaker:
        # Back from an outage, Redis may hold newer entries than those this process kept meanwhile.
        return Breaker(
            name, retry_after=retry_after, clock=self._clock, describe=self._describe, on_recovery=self._local.release
        )


_CACHES: weakref.WeakSet[RedisCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_CACHES):
        cache._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _warn_if_slow_to_fail(client: redis.Redis | redis.asyncio.Redis) -> None:
    """Warn when a client handed in could keep a request waiting on a hung Redis for long."""
    options = client.connection_pool.connection_kwargs
    timeout = options.get("socket_timeout")
    retry = options.get("retry")
    retries = max(int(getattr(retry, "_retries", 0)), 0) if retry is not None else 0
    if timeout is None or timeout * (retries + 1) > 1.0:
        longest = "for as long as it hangs" if timeout is None else f"up to {timeout * (retries + 1):g} s"
        logger.warning(
            "entitlegate: the %s given to RedisCache may hold a request %s when Redis hangs "
            "(socket_timeout=%s, %d retries); build it with socket_timeout=0.25 and "
            "retry=Retry(NoBackoff(), 0), or give RedisCache the URL",
            type(client).__name__,
            longest,
            timeout,
            retries,
        )


def _location_of_url(url: str) -> str:
    """Where a URL points, without its user, password or query (which may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _location_of_client(client: redis.Redis) -> str:
    options = client.connection_pool.connection_kwargs
    if options.get("path"):
        return f"unix://{options['path']}"
    return f"redis://{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
