"""The question every gated request asks: which features does this customer have?"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Literal, get_args

from entitlegate._fork import reset_after_fork
from entitlegate._values import OnUnavailable
from entitlegate.cache._base import Bindable, Binding, Cache, Entry, Leasing, supersedes
from entitlegate.cache._breaker import Breaker
from entitlegate.cache.memory import MemoryCache
from entitlegate.catalog import (
    NO_CATALOG,
    NOT_CARRIED,
    Catalog,
    CatalogSnapshot,
    CatalogSource,
    CatalogStoring,
    Limit,
)
from entitlegate.errors import SourceUnavailable
from entitlegate.sources import AsyncSource, RefusedAnswer, Source
from entitlegate.usage import UsageEngine, check_identifier, check_limit, check_meter, check_value

_observe_metrics: Callable[[Resolver], None] | None
try:  # the otel extra: every resolver's counters, read when metrics are collected
    from entitlegate.metrics import observe
except ImportError:
    _observe_metrics = None
else:
    _observe_metrics = observe

__all__ = ["Decision", "DecisionSource", "OnUnavailable", "Resolver", "ResolverStats", "answer_in_outage"]

logger = logging.getLogger("entitlegate")

_POLICIES = get_args(OnUnavailable)


@dataclass(frozen=True, slots=True)
class ResolverStats:
    """A snapshot of a resolver's counters since it was made."""

    hits: int
    misses: int
    source_calls: int
    stale_served: int
    errors: int
    coalesced: int


class _Counter:
    """A thread-safe counter for the miss path (misses, source calls, errors, ...)."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def incr(self) -> None:
        with self._lock:
            self.value += 1

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread of the parent may have held it


class _Flight:
    """One fetch in progress in a thread, that other threads asking for the customer wait on."""

    __slots__ = ("done", "error", "features")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.features: frozenset[str] | None = None
        self.error: BaseException | None = None


def answer_in_outage(on_unavailable: OnUnavailable, error: SourceUnavailable) -> bool:
    """What ``has_feature`` answers when the source is down: raise ``error``, or False/True."""
    if on_unavailable == "raise":
        raise error
    return on_unavailable == "allow"


def _end_of_second(created: float) -> float:
    """The version of an event's set: the last moment of the second ``created`` names.

    Stripe's ``created`` is whole seconds, so the change may have happened at any moment of that
    second; a fetch must have started after all of it to be sure it reflects the change. The floor
    is still ``created``, so two events of one second tie (and the later delivery applies).
    """
    return math.nextafter(math.floor(created) + 1, 0)


def _is_stale(created: float, current: Entry | None) -> bool:
    """Whether an event created at ``created`` is older than the entry held (see :func:`supersedes`)."""
    return not supersedes(float(created), current, event=True)


def _check_customer(customer: object) -> str:
    if not isinstance(customer, str) or not customer.strip():
        raise ValueError(f"customer must be a non-blank Stripe customer id string, got {customer!r}")
    return customer


def _check_record(customer: object, meter: object, value: object, identifier: object) -> None:
    # record_usage's four checks in one call, the common case first (one Python call, not four,
    # on the request path); anything unusual goes through each check, which says what is wrong.
    if (
        type(customer) is str
        and type(meter) is str
        and type(value) is int
        and value >= 1
        and (identifier is None or (type(identifier) is str and identifier.strip()))
        and customer.strip()
        and meter.strip()
    ):
        return
    _check_customer(customer)
    check_meter(meter)
    check_value(value)
    check_identifier(identifier)


class Resolver:
    """Answers ``has_feature`` from a cache, asking the source only on a miss.

    ``ttl`` is how long (seconds) an answer is trusted without asking the source; ``stale_ttl`` is
    how long it may still be served while the source is down. ``on_unavailable`` decides what
    :meth:`has_feature` answers when the source is down and nothing usable is cached: ``"raise"``
    (the default) raises :class:`~entitlegate.SourceUnavailable`, ``"deny"`` answers False and
    ``"allow"`` answers True. :meth:`features` always raises. After the source fails, the outage
    is remembered for ``retry_after`` seconds: a miss meanwhile is answered at once (stale, or as
    above) without asking the source, then one call asks again; the outage and the recovery are
    logged. A source's answer that is not lookup_keys (non-empty strings) is refused, logged and
    not cached (:class:`~entitlegate.sources.RefusedAnswer`, a ``SourceUnavailable``).

    Concurrent misses for one customer make one source call, across threads and across the tasks
    of one event loop, and across processes when the cache can coalesce them
    (:class:`~entitlegate.cache.Leasing`, as :class:`~entitlegate.RedisCache` does). Thread-safe;
    the ``a``-prefixed twins never block the event loop.
    ``clock_skew`` (seconds, default 2) is how far this host's clock may be from Stripe's: a
    fetch or an invalidation is versioned that much earlier than this host's clock says, so an
    event is never taken for older than a fetch that may not reflect it. A fetch that started
    before a webhook was applied (or an invalidation made) never overwrites it, and one that
    started after it does at once; that compares host times, which must agree across processes
    sharing a cache (see :class:`~entitlegate.cache.Entry`).
    ``clock`` (monotonic seconds) and ``wall_clock`` (epoch seconds, comparable with Stripe's
    event times) can be replaced in tests.
    Usage (:meth:`record_usage`) is reported to Stripe from a background thread that sends the
    queued meter events every ``usage_interval`` seconds (default 1), or as soon as
    ``usage_batch`` events (default 100) are waiting; :meth:`close` sends what is left.
    """

    def __init__(
        self,
        source: Source,
        cache: Cache | None = None,
        *,
        ttl: float = 300.0,
        stale_ttl: float = 86400.0,
        on_unavailable: OnUnavailable = "raise",
        clock_skew: float = 2.0,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        usage_batch: int = 100,
        usage_interval: float = 1.0,
    ) -> None:
        if not isinstance(source, Source) or not callable(source.fetch):
            raise TypeError(
                f"Resolver source must have a fetch(customer) method and a livemode attribute "
                f"(see entitlegate.Source), got {source!r}"
            )
        for name, value in (("ttl", ttl), ("stale_ttl", stale_ttl), ("clock_skew", clock_skew)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Resolver {name} must be a number of seconds >= 0, got {value!r}")
        if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or not retry_after >= 0:
            raise ValueError(f"Resolver retry_after must be a number of seconds >= 0, got {retry_after!r}")
        if stale_ttl < ttl:
            raise ValueError(f"Resolver stale_ttl ({stale_ttl!r}) must be at least ttl ({ttl!r})")
        if on_unavailable not in _POLICIES:
            raise ValueError(f"Resolver on_unavailable must be one of {_POLICIES}, got {on_unavailable!r}")
        if isinstance(usage_batch, bool) or not isinstance(usage_batch, int) or usage_batch < 1:
            raise ValueError(f"Resolver usage_batch must be a whole number of events >= 1, got {usage_batch!r}")
        if (
            isinstance(usage_interval, bool)
            or not isinstance(usage_interval, (int, float))
            or not 0 < usage_interval < math.inf
        ):
            raise ValueError(f"Resolver usage_interval must be a number of seconds > 0, got {usage_interval!r}")
        self.usage_batch = usage_batch
        self.usage_interval = float(usage_interval)
        self._source = source
        # Read once: they name what the cache and the webhooks serve, which must not drift.
        self._livemode: bool | None = source.livemode
        # Optional (a Connect source's): a plain attribute a protocol cannot mark as optional.
        self._stripe_account: str | None = getattr(source, "stripe_account", None)
        # Decided once: the async twins await the source's own afetch, or run fetch in a thread.
        self._source_afetch: Callable[[str], Awaitable[Iterable[str]]] = (
            source.afetch if isinstance(source, AsyncSource) else self._fetch_in_thread
        )
        self._cache: Cache = cache if cache is not None else MemoryCache()
        self.ttl = float(ttl)
        self.stale_ttl = float(stale_ttl)
        self.on_unavailable: OnUnavailable = on_unavailable
        self.clock_skew = float(clock_skew)
        self._clock = clock
        self._wall_clock = wall_clock
        if isinstance(self._cache, Bindable):
            self._cache.bind(Binding.of(source, clock=clock, wall_clock=wall_clock))
        # A cache shared by processes coalesces their misses too; the others have nothing to do.
        self._lease: Callable[[str], AbstractContextManager[Entry | None]] | None = None
        self._alease: Callable[[str], AbstractAsyncContextManager[Entry | None]] | None = None
        if isinstance(self.cache, Leasing):
            self._lease, self._alease = self.cache.lease, self.cache.alease
        self._peek = self.cache.peek
        self._overrides: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._aflights: dict[str, asyncio.Task[frozenset[str]]] = {}
        # Hits are counted with a plain += on the hot path: under the GIL no thread switch can fall
        # between its load and store (CPython checks for switches only at calls and backward jumps),
        # so it is exact there, and it costs half of a thread-safe counter. Free-threaded builds
        # may undercount hits under contention. The rarer counters use _Counter.
        self._hits = 0
        self._misses = _Counter()
        self._source_calls = _Counter()
        self._stale_served = _Counter()
        self._errors = _Counter()
        self._coalesced = _Counter()
        self.retry_after = float(retry_after)
        self._outage = self._breaker()
        # Customers whose last answer was refused, and until when (monotonic) that is remembered.
        self._refused: dict[str, tuple[float, str]] = {}
        reset_after_fork(self._after_fork)
        self._catalog: Catalog | None = None
        self._catalog_now: CatalogSnapshot = NO_CATALOG  # the catalog's current snapshot, for the limit hit
        # Set on every resolver, so an observed one has the same attributes (and the same fast
        # attribute reads on the hit path) as any other; entitlegate.metrics replaces it.
        self._time_source: Callable[[float], None] | None = None
        if _observe_metrics is not None:
            _observe_metrics(self)

    def _breaker(self) -> Breaker:
        meanwhile = {
            "raise": "serving cached answers younger than stale_ttl, SourceUnavailable (503) otherwise",
            "deny": 'serving cached answers younger than stale_ttl, and denying otherwise (on_unavailable="deny")',
            "allow": 'serving cached answers younger than stale_ttl, and ALLOWING otherwise (on_unavailable="allow")',
        }[self.on_unavailable]
        return Breaker(
            f"the source {self._source!r}", retry_after=self.retry_after, clock=self._clock, meanwhile=meanwhile
        )

    def _after_fork(self) -> None:
        # A forked child has only the thread that forked: a flight another thread was leading
        # would never land, and a lock it held would never be released.
        self._lock = threading.Lock()
        self._flights = {}
        self._aflights = {}
        for counter in (self._misses, self._source_calls, self._stale_served, self._errors, self._coalesced):
            counter.after_fork()
        self._outage = self._breaker()

    def __repr__(self) -> str:
        return (
            f"Resolver({self._source!r}, {self.cache!r}, ttl={self.ttl}, stale_ttl={self.stale_ttl}, "
            f"on_unavailable={self.on_unavailable!r})"
        )

    @property
    def source(self) -> Source:
        """Where answers come from; fixed for the resolver's life."""
        return self._source

    @property
    def livemode(self) -> bool | None:
        """Whether the source serves Stripe live-mode data (``None``: unknown), as it said when given."""
        return self._livemode

    @property
    def stripe_account(self) -> str | None:
        """The Stripe Connect account the source reads on behalf of, or ``None`` (the platform's own)."""
        return self._stripe_account

    @property
    def cache(self) -> Cache:
        """Where answers are kept; fixed for the resolver's life, since its hot path holds the cache's ``peek``."""
        return self._cache

    @property
    def source_down(self) -> bool:
        """Whether an outage of the source is being remembered (see ``retry_after``)."""
        return self._outage.down

    @property
    def stats(self) -> ResolverStats:
        """Counters: hits, misses, source_calls, stale_served, errors, coalesced."""
        return ResolverStats(
            hits=self._hits,
            misses=self._misses.value,
            source_calls=self._source_calls.value,
            stale_served=self._stale_served.value,
            errors=self._errors.value,
            coalesced=self._coalesced.value,
        )

    # -- the hot path ---------------------------------------------------------------------------
    #
    # A hit is a peek, a clock read, the hit count and a membership test. The peek and the clock
    # are instance attributes that are called: CPython 3.11+ cannot specialise ``self._peek(...)``
    # (LOAD_METHOD finds no method on the class and takes its slow path), while ``peek =
    # self._peek`` is a specialised attribute load; that is ~25 ns of a ~200 ns hit here
    # (``python -m bench`` section 1). The count stays a plain ``+=``, exact under the GIL (see ``__init__``).

    def has_feature(self, customer: str, lookup_key: str) -> bool:
        """Whether ``customer`` holds the feature ``lookup_key``.

        Raises ``ValueError`` for a customer that is not a non-blank string, and
        :class:`~entitlegate.SourceUnavailable` in an outage under ``on_unavailable="raise"``.
        """
        peek, clock = self._peek, self._clock  # see "the hot path" above
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; the miss path says so
            entry = None
        if entry is not None and entry.expires > clock():
            self._hits += 1
            return lookup_key in entry.features
        try:
            return lookup_key in self._resolve(customer)
        except SourceUnavailable as error:
            return answer_in_outage(self.on_unavailable, error)

    def features(self, customer: str) -> frozenset[str]:
        """The lookup_keys of every feature ``customer`` holds.

        Raises ``ValueError`` for a bad customer and :class:`~entitlegate.SourceUnavailable` when
        the source is down and nothing younger than ``stale_ttl`` is cached.
        """
        peek, clock = self._peek, self._clock  # see "the hot path" above
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; the miss path says so
            entry = None
        if entry is not None and entry.expires > clock():
            self._hits += 1
            return entry.features
        return self._resolve(customer)

    def cached_features(self, customer: str) -> frozenset[str] | None:
        """The lookup_keys ``customer`` holds if a fresh answer is at hand (a hit, counted), else None.

        Never does I/O and never asks the source: for code in an event loop that would otherwise
        await :meth:`afeatures` (a coroutine) for what is nearly always a hit. On None, await
        :meth:`afeatures`. With RedisCache, "at hand" is its in-process tier.
        """
        peek, clock = self._peek, self._clock  # see "the hot path" above
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; afeatures says so
            return None
        if entry is not None and entry.expires > clock():
            self._hits += 1
            return entry.features
        return None

    async def ahas_feature(self, customer: str, lookup_key: str) -> bool:
        """Async twin of :meth:`has_feature`."""
        peek, clock = self._peek, self._clock  # see "the hot path" above
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; the miss path says so
            entry = None
        if entry is not None and entry.expires > clock():
            self._hits += 1
            return lookup_key in entry.features
        try:
            return lookup_key in await self._aresolve(customer)
        except SourceUnavailable as error:
            return answer_in_outage(self.on_unavailable, error)

    async def afeatures(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`features`."""
        peek, clock = self._peek, self._clock  # see "the hot path" above
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; the miss path says so
            entry = None
        if entry is not None and entry.expires > clock():
            self._hits += 1
            return entry.features
        return await self._aresolve(customer)

    # -- changes --------------------------------------------------------------------------------

    def invalidate(self, customer: str, *, ended: bool = False) -> None:
        """Make the next check for ``customer`` ask the source.

        The old set stays available to serve during an outage, unless ``ended=True`` says the
        customer's access may have ended (a subscription deleted): then an outage is answered by
        ``on_unavailable``. A fetch already in flight cannot write back what it read before this
        call. Raises :class:`~entitlegate.CacheUnavailable` when a shared cache cannot take it (it
        then holds in this process only).
        """
        customer = _check_customer(customer)
        version, as_of = self._stamps()
        if ended:
            self.cache.invalidate(customer, version, ended=True, as_of=as_of)
        else:  # a user's own cache may not know `ended`: it is passed only when it matters
            self.cache.invalidate(customer, version, as_of=as_of)

    async def ainvalidate(self, customer: str, *, ended: bool = False) -> None:
        """Async twin of :meth:`invalidate`."""
        customer = _check_customer(customer)
        version, as_of = self._stamps()
        if ended:
            await self.cache.ainvalidate(customer, version, ended=True, as_of=as_of)
        else:
            await self.cache.ainvalidate(customer, version, as_of=as_of)

    def refresh(self, customer: str) -> frozenset[str]:
        """Ask the source now, bypassing the cache, and store the answer."""
        _check_customer(customer)
        return self._fetch_and_store(customer)

    async def arefresh(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`refresh`."""
        _check_customer(customer)
        return await self._afetch_and_store(customer)

    def apply_event(self, customer: str, lookup_keys: Iterable[str], created: float, *, complete: bool = True) -> bool:
        """Replace the customer's set with the one a Stripe event created at ``created`` carries.

        ``complete=False`` says ``lookup_keys`` is only the start of the set (Stripe sends at most
        10 in a summary event): the whole set is read from the source now and stored as of the
        event. Returns False, changing nothing (and asking no source), when the cached entry is
        newer than the event. Raises :class:`~entitlegate.SourceUnavailable` when an incomplete
        event cannot be re-read (the customer is then invalidated, so the older cached set never
        passes for fresh), and :class:`~entitlegate.CacheUnavailable` when a shared cache cannot
        take the change (it then holds in this process only).
        """
        customer = _check_customer(customer)
        if _is_stale(created, self.cache.get(customer)):
            return False
        if complete:
            return self.cache.put(
                customer, self._entry(lookup_keys, (_end_of_second(created), self._wall_clock())), event=True
            )
        try:
            features = self._fetch_and_store(customer)
        except SourceUnavailable:
            self.invalidate(customer)
            raise
        # The fetch is stored quietly wherever it can be; stored as the event's set, a shared
        # cache must confirm it for every process (or raise CacheUnavailable: Stripe redelivers).
        self.cache.put(customer, self._entry(features, (_end_of_second(created), self._wall_clock())), event=True)
        return True

    async def aapply_event(
        self, customer: str, lookup_keys: Iterable[str], created: float, *, complete: bool = True
    ) -> bool:
        """Async twin of :meth:`apply_event`."""
        customer = _check_customer(customer)
        if _is_stale(created, await self.cache.aget(customer)):
            return False
        if complete:
            return await self.cache.aput(
                customer, self._entry(lookup_keys, (_end_of_second(created), self._wall_clock())), event=True
            )
        try:
            features = await self._afetch_and_store(customer)
        except SourceUnavailable:
            await self.ainvalidate(customer)
            raise
        await self.cache.aput(
            customer, self._entry(features, (_end_of_second(created), self._wall_clock())), event=True
        )
        return True

    # -- decisions both twins share ---------------------------------------------------------------

    def _stamps(self) -> tuple[float, float]:
        """``(version, as_of)`` of a fetch starting now, or of an invalidation now (see :class:`Entry`).

        The version is the earliest Stripe time it may be now; ``as_of`` is this host's time.
        """
        now = self._wall_clock()
        return now - self.clock_skew, now

    def _entry(self, lookup_keys: Iterable[str], stamps: tuple[float, float]) -> Entry:
        """The entry of a set stamped ``(version, as_of)``."""
        version, as_of = stamps
        now = self._clock()
        # Interned: every customer holding a feature shares one copy of its lookup_key, rather
        # than one per customer decoded from each Stripe response or event.
        features = self._interned_set(frozenset(sys.intern(key) if type(key) is str else key for key in lookup_keys))
        return Entry(features, float(version), now + self.ttl, now + self.stale_ttl, float(as_of))

    def _fresh(self, entry: Entry | None) -> frozenset[str] | None:
        """The answer a miss-path lookup gives without the source, counting it; or None.

        Overrides need no branch here: they are pinned in front of ``peek``, so an overridden
        customer is always a hit and never reaches the miss path.
        """
        if entry is not None and entry.expires > self._clock():
            self._hits += 1
            return entry.features
        self._misses.incr()
        return None

    def _borrowed(self, entry: Entry | None) -> frozenset[str] | None:
        """The answer another process's fetch left in a lease, counted as coalesced; or None."""
        if entry is not None and entry.expires > self._clock():
            self._coalesced.incr()
            return entry.features
        return None

    def _fallback(self, entry: Entry | None, error: SourceUnavailable) -> frozenset[str]:
        """What to answer when the source failed: a stale entry if young enough, else raise."""
        if entry is not None and entry.stale_until > self._clock():
            self._stale_served.incr()
            return entry.features
        raise error

    def _skip_while_down(self, customer: str) -> None:
        """Raise at once while an outage of the source is remembered, unless this call probes it.

        Likewise for one customer whose answer was refused (malformed data, a list that never
        ends): asking again at once would page through the same bad answer on every request.
        Only the miss path skips: ``refresh`` (a webhook's re-read, a return from the portal) is
        asked for on purpose, and always asks.
        """
        if not self._outage.allows():
            raise SourceUnavailable(
                f"{self._outage.name} is unavailable (remembered for up to {self.retry_after:g} s); "
                f"not asked for customer {customer!r}",
                customer=customer,
            )
        refused = self._refused.get(customer)
        if refused is not None:
            until, message = refused
            if until > self._clock():
                raise RefusedAnswer(f"{message} (remembered for up to {self.retry_after:g} s)", customer=customer)
            self._refused.pop(customer, None)

    def _source_answered(self, customer: str) -> None:
        if self._refused:
            self._refused.pop(customer, None)
        if self._outage.down:
            self._outage.succeeded()

    def _source_failed(self, customer: str, error: Exception) -> SourceUnavailable:
        self._errors.incr()
        if isinstance(error, SourceUnavailable):
            failure = error
        else:
            # A user's source raised something of its own: count it, log it, and report an outage
            # rather than let it surface as a server error in every gated view.
            logger.error("entitlegate source %r failed for customer %r", self._source, customer, exc_info=error)
            failure = SourceUnavailable(
                f"source failed for customer {customer!r}: {type(error).__name__}", customer=customer
            )
            failure.__cause__ = error
        if isinstance(failure, RefusedAnswer):  # one customer's bad answer is no outage
            if len(self._refused) >= _REFUSALS_KEPT:
                self._refused.pop(next(iter(self._refused)), None)
            self._refused[customer] = (self._clock() + self.retry_after, str(failure))
        else:
            self._outage.failed(failure)
        return failure

    def _checked(self, customer: str, lookup_keys: Iterable[str]) -> Iterable[str]:
        """The source's answer, if it is lookup_keys; else :class:`RefusedAnswer`, logged."""
        if isinstance(lookup_keys, (str, bytes)) or not isinstance(lookup_keys, Iterable):
            problem = f"it returned {type(lookup_keys).__name__}, not an iterable of lookup_keys"
        else:
            keys = lookup_keys if isinstance(lookup_keys, (frozenset, set, tuple, list)) else tuple(lookup_keys)
            wrong = [key for key in keys if type(key) is not str or not key]
            if not wrong:
                return keys
            problem = f"lookup_keys must be non-empty strings, got {sorted(map(repr, wrong))[:5]}"
        logger.error("entitlegate source %r answered wrongly for customer %r: %s", self._source, customer, problem)
        raise RefusedAnswer(f"source answered wrongly for customer {customer!r}: {problem}", customer=customer)

    # -- sync I/O -------------------------------------------------------------------------------

    def _resolve(self, customer: str) -> frozenset[str]:
        entry = self.cache.get(_check_customer(customer))
        answer = self._fresh(entry)
        if answer is not None:
            return answer
        try:
            self._skip_while_down(customer)
            return self._coalesced_fetch(customer)
        except SourceUnavailable as error:
            return self._fallback(self.cache.get(customer), error)

    def _coalesced_fetch(self, customer: str) -> frozenset[str]:
        with self._lock:
            flight = self._flights.get(customer)
            leader = flight is None
            if flight is None:
                flight = self._flights[customer] = _Flight()
        if not leader:
            self._coalesced.incr()
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.features is not None
            return flight.features
        try:
            flight.features = self._fetch_once(customer)
            return flight.features
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[customer]
            flight.done.set()

    def _fetch_once(self, customer: str) -> frozenset[str]:
        """The leading thread's fetch; with a leasing cache, the first process's serves the rest."""
        if self._lease is None:
            return self._fetch_and_store(customer)
        with self._lease(customer) as entry:
            answer = self._borrowed(entry)
            return answer if answer is not None else self._fetch_and_store(customer)

    def _fetch_and_store(self, customer: str) -> frozenset[str]:
        started = self._stamps()
        self._source_calls.incr()
        try:
            entry = self._entry(self._checked(customer, self._fetch(customer)), started)
        except Exception as error:
            failure = self._source_failed(customer, error)
        else:
            self._source_answered(customer)
            self.cache.put(customer, entry, event=False)
            return entry.features
        raise failure  # outside the handler, so the source's own chain is the only one shown

    # -- async I/O ------------------------------------------------------------------------------

    async def _aresolve(self, customer: str) -> frozenset[str]:
        entry = await self.cache.aget(_check_customer(customer))
        answer = self._fresh(entry)
        if answer is not None:
            return answer
        try:
            self._skip_while_down(customer)
            return await self._acoalesced_fetch(customer)
        except SourceUnavailable as error:
            return self._fallback(await self.cache.aget(customer), error)

    async def _acoalesced_fetch(self, customer: str) -> frozenset[str]:
        loop = asyncio.get_running_loop()
        with self._lock:
            flight = self._aflights.get(customer)
            if flight is not None and flight.get_loop() is loop:
                self._coalesced.incr()
            else:
                # The fetch runs in a task of its own, so a caller that is cancelled (a client
                # that hung up) does not cancel it for every other caller waiting on it.
                flight = loop.create_task(self._afetch_once(customer))
                self._aflights[customer] = flight
                flight.add_done_callback(lambda task: self._land(customer, task))
        return await asyncio.shield(flight)

    def _land(self, customer: str, task: asyncio.Task[frozenset[str]]) -> None:
        with self._lock:
            if self._aflights.get(customer) is task:
                del self._aflights[customer]
        if not task.cancelled():
            task.exception()  # retrieved here, so a flight every caller left is not reported as lost

    async def _afetch_once(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`_fetch_once`."""
        if self._alease is None:
            return await self._afetch_and_store(customer)
        async with self._alease(customer) as entry:
            answer = self._borrowed(entry)
            return answer if answer is not None else await self._afetch_and_store(customer)

    async def _afetch_and_store(self, customer: str) -> frozenset[str]:
        started = self._stamps()
        self._source_calls.incr()
        try:
            entry = self._entry(self._checked(customer, await self._afetch(customer)), started)
        except Exception as error:
            failure = self._source_failed(customer, error)
        else:
            self._source_answered(customer)
            await self.cache.aput(customer, entry, event=False)
            return entry.features
        raise failure

    async def _fetch_in_thread(self, customer: str) -> Iterable[str]:
        """The async fetch of a source that has only the sync side: off the event loop."""
        return await asyncio.to_thread(self._source.fetch, customer)

    def _fetch(self, customer: str) -> Iterable[str]:
        timer = self._time_source
        if timer is None:
            return self._source.fetch(customer)
        began = time.perf_counter()
        try:
            return self._source.fetch(customer)
        finally:
            timer(time.perf_counter() - began)

    async def _afetch(self, customer: str) -> Iterable[str]:
        timer = self._time_source
        if timer is None:
            return await self._source_afetch(customer)
        began = time.perf_counter()
        try:
            return await self._source_afetch(customer)
        finally:
            timer(time.perf_counter() - began)

    # -- usage against Stripe Billing Meters (entitlegate.usage) --------------------------------
    #
    # Counted in the cache (a UsageStore: MemoryCache, RedisCache), reported to Stripe as meter
    # events from the queue the cache keeps. The engine is made at the first usage call, so a
    # resolver whose source or cache cannot keep usage still answers features.

    _usage: UsageEngine | None = None

    def _usage_engine(self) -> UsageEngine:
        engine = self._usage
        if engine is not None:
            return engine
        with self._lock:
            if self._usage is None:
                self._usage = UsageEngine(
                    self._source,
                    self._cache,
                    clock=self._clock,
                    wall_clock=self._wall_clock,
                    retry_after=self.retry_after,
                    batch=self.usage_batch,
                    interval=self.usage_interval,
                )
            return self._usage

    def record_usage(
        self, customer: str, meter_event_name: str, value: int = 1, *, identifier: str | None = None
    ) -> None:
        """Count ``value`` of the meter ``meter_event_name`` for ``customer`` now, and report it to Stripe.

        The count is at once (exact across threads, and across processes on RedisCache); the meter
        event is queued and sent in the background, with ``identifier`` (one is made when ``None``)
        so a retry is billed once. Never loses the event: with the cache down, or a cold counter
        the source cannot seed, it is queued in this process and sent from here (logged once).
        Raises ``ValueError`` for a bad customer, meter name, value (a whole number >= 1) or
        identifier, and ``TypeError`` when the source cannot report meter events or the cache
        cannot keep usage.
        """
        _check_record(customer, meter_event_name, value, identifier)
        (self._usage or self._usage_engine()).record(customer, meter_event_name, value, identifier)

    async def arecord_usage(
        self, customer: str, meter_event_name: str, value: int = 1, *, identifier: str | None = None
    ) -> None:
        """Async twin of :meth:`record_usage`."""
        _check_record(customer, meter_event_name, value, identifier)
        await (self._usage or self._usage_engine()).arecord(customer, meter_event_name, value, identifier)

    def consume_usage(
        self, customer: str, meter_event_name: str, limit: Limit, value: int = 1, *, identifier: str | None = None
    ) -> tuple[bool, int]:
        """Record ``value`` only if this period's total stays within ``limit``: (admitted, total after).

        Atomic: of concurrent calls (threads; processes on RedisCache) no more are admitted than
        ``limit`` allows. A denied call counts and sends nothing. ``limit`` is a whole number >= 0
        or ``math.inf``. Raises :class:`~entitlegate.SourceUnavailable` when no exact answer is
        possible (a cold counter the source cannot seed, or the shared cache down),
        :class:`~entitlegate.MeterRejected` when Stripe has no meter ``meter_event_name`` to
        seed a cold counter from, and as :meth:`record_usage` for bad arguments.
        """
        engine = self._usage or self._usage_engine()
        return engine.consume(
            _check_customer(customer),
            check_meter(meter_event_name),
            check_limit(limit),
            check_value(value),
            check_identifier(identifier),
        )

    async def aconsume_usage(
        self, customer: str, meter_event_name: str, limit: Limit, value: int = 1, *, identifier: str | None = None
    ) -> tuple[bool, int]:
        """Async twin of :meth:`consume_usage`."""
        engine = self._usage or self._usage_engine()
        return await engine.aconsume(
            _check_customer(customer),
            check_meter(meter_event_name),
            check_limit(limit),
            check_value(value),
            check_identifier(identifier),
        )

    def usage(self, customer: str, meter_event_name: str) -> int:
        """This period's total of ``meter_event_name`` for ``customer``.

        The period is the customer's billing period when the source reads one, else the calendar
        month in UTC (:func:`entitlegate.usage.period_of`). A cold counter (a fresh process, a
        flushed Redis) is seeded once from Stripe's event summaries. Raises
        :class:`~entitlegate.SourceUnavailable` when that read fails or the shared cache is down,
        and :class:`~entitlegate.MeterRejected` when Stripe has no such meter to read.
        """
        engine = self._usage or self._usage_engine()
        return engine.usage(_check_customer(customer), check_meter(meter_event_name))

    async def ausage(self, customer: str, meter_event_name: str) -> int:
        """Async twin of :meth:`usage`."""
        engine = self._usage or self._usage_engine()
        return await engine.ausage(_check_customer(customer), check_meter(meter_event_name))

    def flush_usage(self) -> int:
        """Send the pending meter events now, in this thread; answer how many Stripe took.

        Stops at the first outage (the rest stay pending, retried in the background with
        back-off). Events of a meter Stripe refused stay pending and are retried every minute
        (the refusal is logged once). Raises ``TypeError`` as :meth:`record_usage`.
        """
        engine = self._usage or self._usage_engine()
        return engine.flusher.flush()

    async def aflush_usage(self) -> int:
        """Async twin of :meth:`flush_usage` (the sends run in a worker thread)."""
        engine = self._usage or self._usage_engine()
        return await asyncio.to_thread(engine.flusher.flush)

    def close(self) -> None:
        """Send the pending meter events (as :meth:`flush_usage`), then stop the thread sending them.

        Also run at interpreter exit, which gives the pending events a few seconds. What is still
        pending after it (Stripe down, a refused meter) is kept in a RedisCache for another
        process to send, and lost with this process on a MemoryCache (logged). Recording again
        starts the thread again.
        """
        engine = self._usage
        if engine is None:
            return
        engine.flusher.flush()
        engine.flusher.stop(timeout=_STOP_SECONDS)
        engine.report_unsent()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`; also closes the source's async connections on this loop."""
        await asyncio.to_thread(self.close)
        close_source = getattr(self._source, "aclose", None)
        if close_source is not None:
            await close_source()

    # -- overrides (entitlegate.testing) -------------------------------------------------------

    def _set_overrides(self, overrides: Mapping[str, frozenset[str]]) -> None:
        """Install ``overrides`` in front of the cache (used by ``override_features``)."""
        self._overrides = dict(overrides)
        if self._overrides:
            far = math.inf
            pinned = {customer: Entry(keys, far, far, far) for customer, keys in self._overrides.items()}
            peek = self.cache.peek

            def _peek(customer: str) -> Entry | None:
                pinned_entry = pinned.get(customer)
                return pinned_entry if pinned_entry is not None else peek(customer)

            self._peek = _peek
        else:
            self._peek = self.cache.peek

    # -- limits from Feature metadata (entitlegate.catalog) ---------------------------------------
    #
    # A customer's limits are a function of their set of lookup_keys and the catalog; the
    # catalog's snapshot memoises them per set. A hit is the entry's freshness check, the
    # snapshot's, and two dict lookups: the sets are interned (_interned_set), so the memo's
    # lookup meets the very set object it stored and skips comparing the sets' members.

    _sets: dict[frozenset[str], frozenset[str]] | None = None

    @property
    def catalog(self) -> Catalog:
        """The feature catalog limits come from; built from the source on first use.

        Raises ``TypeError`` when the source cannot list features (see
        :class:`~entitlegate.catalog.CatalogSource`) and no catalog was set.
        """
        catalog = self._catalog
        if catalog is not None:
            return catalog
        source = self.source
        if not isinstance(source, CatalogSource):
            raise TypeError(f"{source!r} cannot list features, so it has no limits; give the resolver a catalog")
        with self._lock:
            if self._catalog is None:
                # A cache shared by processes shares the catalog too: one process's fetch serves all.
                store = self._cache.catalog_store(self.stale_ttl) if isinstance(self._cache, CatalogStoring) else None
                self._follow(
                    Catalog(
                        source,
                        ttl=self.ttl,
                        stale_ttl=self.stale_ttl,
                        store=store,
                        clock=self._clock,
                        wall_clock=self._wall_clock,
                    )
                )
            assert self._catalog is not None
            return self._catalog

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        if not isinstance(catalog, Catalog):
            raise TypeError(f"Resolver catalog must be a Catalog, got {catalog!r}")
        self._follow(catalog)

    def _follow(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._catalog_now = catalog.current
        # The catalog hands each new snapshot to this resolver, so a limit hit reads one attribute.
        catalog.follow(self._adopt_catalog)

    def _adopt_catalog(self, snapshot: CatalogSnapshot) -> None:
        self._catalog_now = snapshot

    def limit(self, customer: str, name: str, default: Limit = 0) -> Limit:
        """The highest ``metadata[name]`` over the features ``customer`` holds; ``default`` if none carries it.

        ``"unlimited"`` is ``math.inf``. Raises ``ValueError`` for a bad customer or a ``name``
        that is not a non-blank string, and :class:`~entitlegate.SourceUnavailable` when the
        customer's features or the catalog cannot be read (a stale one is served first).
        """
        peek, clock = self._peek, self._clock
        try:
            entry = peek(customer)
        except TypeError:  # unhashable: not a customer id; the miss path says so
            entry = None
        snapshot = self._catalog_now
        # Both the entry and the catalog fresh, in one chained comparison. Then subscripts, not
        # .get(): a KeyError means a set or a name the memo has not seen (each set once per
        # catalog; a name no feature carries, which check reports).
        if entry is not None and entry.expires > clock() < snapshot.expires:
            try:
                value = snapshot.memo[entry.features][name]
            except (KeyError, TypeError):
                pass
            else:
                self._hits += 1
                return default if value is NOT_CARRIED else value
        return self.limits(customer).get(_check_limit_name(name), default)

    def limits(self, customer: str) -> Mapping[str, Limit]:
        """Every limit ``customer`` has, by name (read-only). Raises as :meth:`limit`."""
        features = self.features(customer)
        return self.catalog.limits_for(features)

    def within_limit(self, customer: str, name: str, need: int) -> bool:
        """Whether ``need`` (an int >= 0) is at most the customer's limit ``name`` (default 0).

        Raises ``ValueError`` for a bad ``need`` and as :meth:`limit` otherwise: an outage is
        never answered with a number.
        """
        _check_need(need)
        return need <= self.limit(customer, name)

    async def alimit(self, customer: str, name: str, default: Limit = 0) -> Limit:
        """Async twin of :meth:`limit`."""
        peek, clock = self._peek, self._clock
        try:
            entry = peek(customer)
        except TypeError:
            entry = None
        snapshot = self._catalog_now
        if entry is not None and entry.expires > clock() < snapshot.expires:
            try:
                value = snapshot.memo[entry.features][name]
            except (KeyError, TypeError):
                pass
            else:
                self._hits += 1
                return default if value is NOT_CARRIED else value
        return (await self.alimits(customer)).get(_check_limit_name(name), default)

    async def alimits(self, customer: str) -> Mapping[str, Limit]:
        """Async twin of :meth:`limits`."""
        features = await self.afeatures(customer)
        return await self.catalog.alimits_for(features)

    async def awithin_limit(self, customer: str, name: str, need: int) -> bool:
        """Async twin of :meth:`within_limit`."""
        _check_need(need)
        return need <= await self.alimit(customer, name)

    def _interned_set(self, features: frozenset[str]) -> frozenset[str]:
        """One shared copy of each distinct set of lookup_keys (most customers hold one of a few)."""
        sets = self._sets
        if sets is None:
            sets = self._sets = {}
        interned = sets.get(features)
        if interned is not None:
            return interned
        if len(sets) < _INTERNED_SETS_MAX:
            sets[features] = features
        return features

    # -- explained decisions (entitlegate inspect, logs of denials) -----------------------------
    #
    # The same path as has_feature, step by step, so the answer says which step gave it. It is
    # counted as the check it stands for: a hit, or a miss (and a source call, a stale serve).

    def explain(self, customer: str, lookup_key: str) -> Decision:
        """Answer ``has_feature(customer, lookup_key)`` and say where the answer came from.

        Counted in :attr:`stats` as one check, exactly as ``has_feature`` would count it. Raises
        as ``has_feature`` does: under ``on_unavailable="raise"`` an outage with nothing to serve
        raises :class:`~entitlegate.SourceUnavailable`.
        """
        customer = _check_customer(customer)
        decided = self._explained_without_io(customer, lookup_key, self._peek(customer))
        if decided is not None:
            return decided
        entry = self.cache.get(customer)
        decided = self._explained_from(customer, lookup_key, entry)
        if decided is not None:
            return decided
        try:
            self._skip_while_down(customer)
            features = self._coalesced_fetch(customer)
        except SourceUnavailable as error:
            return self._explained_outage(customer, lookup_key, self.cache.get(customer), error)
        return self._explained_fetch(customer, lookup_key, features)

    async def aexplain(self, customer: str, lookup_key: str) -> Decision:
        """Async twin of :meth:`explain`."""
        customer = _check_customer(customer)
        decided = self._explained_without_io(customer, lookup_key, self._peek(customer))
        if decided is not None:
            return decided
        entry = await self.cache.aget(customer)
        decided = self._explained_from(customer, lookup_key, entry)
        if decided is not None:
            return decided
        try:
            self._skip_while_down(customer)
            features = await self._acoalesced_fetch(customer)
        except SourceUnavailable as error:
            return self._explained_outage(customer, lookup_key, await self.cache.aget(customer), error)
        return self._explained_fetch(customer, lookup_key, features)

    def recall(self, customer: str, lookup_key: str) -> Decision:
        """Why a check just made for ``customer`` answered as it did, from what this process holds.

        For log lines (the adapters log each denial with it): no I/O, nothing counted. ``source``
        is ``"override"``, ``"cache"`` (a fresh entry), ``"stale"`` (an entry past its ttl, as an
        outage serves it) or ``"policy"`` (nothing held: the outage policy answered).
        """
        overridden = self._overrides.get(customer)
        if overridden is not None:
            return Decision(lookup_key in overridden, "override", None, None)
        held = self._peek(customer)
        if held is None:
            return Decision(False, "policy", None, None)
        return self._decision(lookup_key, "cache" if held.expires > self._clock() else "stale", held)

    def _explained_without_io(self, customer: str, lookup_key: str, held: Entry | None) -> Decision | None:
        overridden = self._overrides.get(customer)
        if overridden is not None:
            return Decision(lookup_key in overridden, "override", None, None)
        if held is not None and held.expires > self._clock():
            self._hits += 1
            return self._decision(lookup_key, "cache", held)
        return None

    def _explained_from(self, customer: str, lookup_key: str, entry: Entry | None) -> Decision | None:
        if self._fresh(entry) is None:
            return None
        assert entry is not None  # _fresh answers only from a fresh entry once overrides are out
        return self._decision(lookup_key, "cache", entry)

    def _explained_fetch(self, customer: str, lookup_key: str, features: frozenset[str]) -> Decision:
        stored = self.cache.peek(customer)
        if stored is not None and stored.features == features:
            return self._decision(lookup_key, "source", stored)
        return Decision(lookup_key in features, "source", 0.0, None)  # a cache that keeps no copy here

    def _explained_outage(
        self, customer: str, lookup_key: str, entry: Entry | None, error: SourceUnavailable
    ) -> Decision:
        try:
            self._fallback(entry, error)
        except SourceUnavailable as failure:
            return Decision(answer_in_outage(self.on_unavailable, failure), "policy", None, None)
        assert entry is not None  # _fallback answered from it
        return self._decision(lookup_key, "stale", entry)

    def _decision(self, lookup_key: str, source: DecisionSource, entry: Entry) -> Decision:
        # The age of what the set reflects: now less its version, a Stripe time (an event's second
        # ends after it was sent, so a fresh event's age is clamped at 0).
        age = max(self._wall_clock() - entry.version, 0.0) if math.isfinite(entry.version) else None
        return Decision(lookup_key in entry.features, source, age, entry.version)


DecisionSource = Literal["cache", "stale", "source", "override", "policy"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a check answered as it did (:meth:`Resolver.explain`).

    ``source`` is ``"cache"`` (a fresh entry), ``"stale"`` (an entry served while the source is
    down), ``"source"`` (asked just now), ``"override"`` (``entitlegate.testing``) or
    ``"policy"`` (an outage answered by ``on_unavailable``). ``version`` is the Stripe time (epoch
    seconds) the answer reflects and ``age`` how long ago that was; both ``None`` for an override
    or a policy.
    """

    allowed: bool
    source: DecisionSource
    age: float | None
    version: float | None


_INTERNED_SETS_MAX = 10_000
_STOP_SECONDS = 5.0  # how long close() waits for the sending thread to end
_REFUSALS_KEPT = 10_000  # customers whose refused answer is remembered; the oldest is forgotten first


def _check_limit_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a limit name must be a non-blank string, got {name!r}")
    return name


def _check_need(need: object) -> int:
    if isinstance(need, bool) or not isinstance(need, int) or need < 0:
        raise ValueError(f"need must be a whole number >= 0, got {need!r}")
    return need
