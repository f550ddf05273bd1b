"""Usage against Stripe Billing Meters: which period a counter belongs to, and where counters live.

The period is the customer's current billing period when the source can read it from their
subscription (:class:`~entitlegate._meters.UsageSource`), else the calendar month in UTC. Its
start (unix seconds) is part of every counter's key, so a new period starts a new counter.

The engine (:class:`UsageEngine`, behind ``Resolver.record_usage``) counts in the cache and
queues each meter event there; a thread sends the queue (:mod:`entitlegate._usage_flush`). What
can be lost, and when:

- Stripe down or refusing a meter: nothing; the events stay pending and are retried (a refused
  meter every minute, logged once).
- The process ends: on MemoryCache, what is still pending after the exit's few seconds of
  sending (logged by ``close()``); on RedisCache nothing, another process claims the events once
  their lease lapses.
- Redis down while recording: the event is counted and queued in this process and sent from
  here, so it is lost only if this process also ends before Stripe takes it; Redis's counter
  does not include it (Stripe's total does, once a cold counter is seeded).
- A cold counter that Stripe cannot seed (Stripe down, or no such meter yet): the event is queued
  uncounted in this process and sent; the counter, seeded later here, adds what is still unsent
  here to Stripe's total, so it has the event either way (unless Stripe took it but has not
  aggregated it yet: its summaries lag behind the events).
- A fresh counter's seed misses what Stripe has taken but not yet aggregated (its summaries lag).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime
import itertools
import logging
import math
import secrets
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from entitlegate._fork import reset_after_fork
from entitlegate._meters import AsyncUsageSource, MeterEvent, MeterRejected, UsageSource
from entitlegate._usage_flush import Flusher
from entitlegate.cache._breaker import Breaker
from entitlegate.cache._memory_usage import MemoryUsage
from entitlegate.errors import CacheUnavailable, SourceUnavailable
from entitlegate.sources import DEFAULT_TIMEOUT

__all__ = ["UsageEngine", "UsageStore", "calendar_month", "period_of"]

logger = logging.getLogger("entitlegate")


def calendar_month(now: float) -> tuple[int, int]:
    """The calendar month in UTC holding ``now`` (epoch seconds): (start, end) in unix seconds."""
    day = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)
    start = datetime.datetime(day.year, day.month, 1, tzinfo=datetime.timezone.utc)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    end = datetime.datetime(year, month, 1, tzinfo=datetime.timezone.utc)
    return calendar.timegm(start.timetuple()), calendar.timegm(end.timetuple())


def period_of(source: object, customer: str, now: float) -> tuple[int, int]:
    """The usage period of ``customer``: the source's billing period if it has one, else the UTC month."""
    if isinstance(source, UsageSource):
        period = source.billing_period(customer)
        if period is not None:
            return period
    return calendar_month(now)


@runtime_checkable
class UsageStore(Protocol):
    """A cache that keeps usage counters and the meter events not yet sent to Stripe.

    ``add_usage`` is atomic: on a warm counter it adds ``value`` and queues ``event`` only if
    ``limit`` is None or the total stays within it, and answers (admitted, total); on a cold one
    it changes nothing and answers ``None``, so the request path costs one call when warm.
    Thread-safe; on a cache shared by processes (RedisCache) atomic and exact across them too.
    A store that cannot answer (Redis down) raises :class:`~entitlegate.CacheUnavailable`; it never guesses a total.
    """

    def add_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Add ``value`` and queue ``event`` unless that passes ``limit``: (admitted, total).

        ``None`` when the counter is cold: nothing is counted or queued, since only the source
        knows the period's total so far; seed it (:meth:`seed_usage`) and add again.
        """
        ...

    def usage_total(self, customer: str, meter: str, period: int) -> int | None:
        """The counter's total, or ``None`` when it is cold (never seeded or counted here)."""
        ...

    def seed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Set the counter to ``total`` if it is cold; answer the counter's total."""
        ...

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]:
        """Up to ``n`` pending events, leased: unacked after ``lease_seconds`` they are claimable again."""
        ...

    def ack(self, events: list[MeterEvent]) -> None:
        """Forget ``events``: Stripe has taken them."""
        ...

    # The request path's three in async: a store with async I/O (RedisCache) awaits its own
    # client; one without answers from memory. claim/ack run in the flusher's thread only.

    async def aadd_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Async twin of :meth:`add_usage`."""
        ...

    async def ausage_total(self, customer: str, meter: str, period: int) -> int | None:
        """Async twin of :meth:`usage_total`."""
        ...

    async def aseed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Async twin of :meth:`seed_usage`."""
        ...


# -- the engine behind Resolver.record_usage / consume_usage / usage ---------------------------


def check_meter(meter: object) -> str:
    """``meter`` if it is a non-blank string (a meter's event_name), else ``ValueError``."""
    if not isinstance(meter, str) or not meter.strip():
        raise ValueError(f"meter_event_name must be a non-blank string (a Stripe meter's event_name), got {meter!r}")
    return meter


def check_value(value: object) -> int:
    """``value`` if it is a whole number >= 1 (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"usage value must be a whole number >= 1, got {value!r}")
    return value


def check_identifier(identifier: object) -> str | None:
    """``identifier`` if it is ``None`` or a non-blank string, else ``ValueError``."""
    if identifier is not None and (not isinstance(identifier, str) or not identifier.strip()):
        raise ValueError(f"usage identifier must be a non-blank string or None, got {identifier!r}")
    return identifier


def check_limit(limit: object) -> int | None:
    """A usage limit as a store takes it: an int >= 0, or ``None`` for ``math.inf`` (unlimited)."""
    if isinstance(limit, float) and limit == math.inf:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"usage limit must be a whole number >= 0 or math.inf, got {limit!r}")
    return limit


def usage_source(source: object) -> UsageSource:
    """``source`` as a :class:`~entitlegate._meters.UsageSource`, or ``TypeError`` naming what it lacks."""
    missing = [name for name in _SOURCE_METHODS if not callable(getattr(source, name, None))]
    if missing:
        raise TypeError(
            f"usage needs a source that reports meter events (entitlegate._meters.UsageSource, as StripeSource "
            f"is); {source!r} has no {', '.join(missing)}"
        )
    assert isinstance(source, UsageSource)
    return source


def usage_store(cache: object) -> UsageStore:
    """``cache`` as a :class:`UsageStore`, or ``TypeError`` saying it cannot keep usage."""
    missing = [name for name in _STORE_METHODS if not callable(getattr(cache, name, None))]
    if missing:
        raise TypeError(
            f"the resolver's cache {cache!r} cannot keep usage counters (entitlegate.usage.UsageStore: it has no "
            f"{', '.join(missing)}); use MemoryCache or RedisCache for usage"
        )
    assert isinstance(cache, UsageStore)
    return cache


_SOURCE_METHODS = ("send_meter_event", "meter_total", "billing_period")
_STORE_METHODS = (
    "add_usage",
    "usage_total",
    "seed_usage",
    "claim",
    "ack",
    "aadd_usage",
    "ausage_total",
    "aseed_usage",
)
_PERIODS_KEPT = 100_000  # customers whose period is remembered; past that the oldest is forgotten
_STALE_PERIOD_RECHECK = 60  # seconds a billing period already over is still used before asking again
_SEED_LOCKS = 64


class UsageEngine:
    """Counts usage in a :class:`UsageStore` and queues the meter events it reports.

    Made by a :class:`~entitlegate.Resolver` at its first usage call; the resolver's methods say
    what a caller gets. The period of each customer is remembered until it ends, so a warm call is
    one store call and no Stripe call. A cold counter is seeded once from the source's total
    (concurrent seeds in this process make one source call). Reads of the source that fail are
    remembered for ``retry_after`` seconds, so an outage costs one caller a timeout, not each.
    """

    def __init__(
        self,
        source: object,
        cache: object,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        retry_after: float,
        batch: int,
        interval: float,
    ) -> None:
        self.source = usage_source(source)
        self.store = usage_store(cache)
        self._asource: AsyncUsageSource | None = source if isinstance(source, AsyncUsageSource) else None
        # Where an event goes when the store cannot take it (Redis down), or when its counter is
        # cold and cannot be seeded: kept and sent from this process, never dropped.
        self.fallback = MemoryUsage(clock)
        self._wall_clock = wall_clock
        self._periods: dict[str, tuple[int, int, float]] = {}  # customer → (start, end, trusted until)
        self._retry_after, self._clock = retry_after, clock
        self._reads = self._breaker()
        self._seed_locks = [threading.Lock() for _ in range(_SEED_LOCKS)]
        self._stem = f"eg_{secrets.token_hex(8)}_"  # of made identifiers: see _event
        self._serial = itertools.count()
        self._store_down = False
        self._uncounted_logged = False
        self._refused_logged: set[str] = set()  # meters whose total Stripe refused, said once each
        # A lease outlasts a send (the source's timeout covers its retries), so no other process
        # claims an event while this one is still sending it.
        lease = _LEASE_SENDS * float(getattr(source, "_timeout", DEFAULT_TIMEOUT))
        self.flusher = Flusher(
            self.source,
            (self.store, self.fallback),
            owner=self,
            batch=batch,
            interval=interval,
            lease=lease,
            clock=clock,
        )
        self.queued: Callable[[], None] = self.flusher.queued  # per queued event
        reset_after_fork(self._after_fork)

    def __repr__(self) -> str:
        return f"UsageEngine({self.source!r}, {self.store!r})"

    def _breaker(self) -> Breaker:
        return Breaker(
            f"the usage source {self.source!r}",
            retry_after=self._retry_after,
            clock=self._clock,
            meanwhile="cold usage counters raise SourceUnavailable and new events are queued uncounted",
        )

    def _after_fork(self) -> None:
        # A child must not make the parent's identifiers (each would be billed once for both),
        # nor wait on a lock a thread of the parent held at the fork.
        self._stem = f"eg_{secrets.token_hex(8)}_"  # of made identifiers: see _event
        self._serial = itertools.count()
        self._seed_locks = [threading.Lock() for _ in range(_SEED_LOCKS)]
        self._reads = self._breaker()

    # -- the calls ----------------------------------------------------------------------------

    def record(self, customer: str, meter: str, value: int, identifier: str | None) -> None:
        """Count ``value`` and queue its event; never loses the event (see the module's notes)."""
        event = self._event(customer, meter, value, identifier)
        try:
            self._add(self.store, event, None)
        except CacheUnavailable:
            self._cache_failed()
            try:
                self._add(self.fallback, event, None)
            except (SourceUnavailable, MeterRejected):
                self._keep_uncounted(event)
            return
        except (SourceUnavailable, MeterRejected):
            self._keep_uncounted(event)
            return
        if self._store_down:  # _cache_answered's test, inlined on the request path
            self._cache_answered()

    def consume(
        self, customer: str, meter: str, limit: int | None, value: int, identifier: str | None
    ) -> tuple[bool, int]:
        """Count ``value`` and queue its event only if the total stays within ``limit``."""
        event = self._event(customer, meter, value, identifier)
        try:
            answer = self._add(self.store, event, limit)
        except CacheUnavailable as error:
            self._cache_failed()
            raise _store_down(customer, meter, error) from None
        self._cache_answered()
        return answer

    def usage(self, customer: str, meter: str) -> int:
        """This period's total of ``meter`` for ``customer``."""
        start, end = self._period(customer)
        try:
            total = self.store.usage_total(customer, meter, start)
            if total is None:
                total = self._seed(self.store, customer, meter, start, end)
        except CacheUnavailable as error:
            self._cache_failed()
            raise _store_down(customer, meter, error) from None
        self._cache_answered()
        return total

    async def arecord(self, customer: str, meter: str, value: int, identifier: str | None) -> None:
        """Async twin of :meth:`record`."""
        event = self._event(customer, meter, value, identifier)
        try:
            await self._aadd(self.store, event, None)
        except CacheUnavailable:
            self._cache_failed()
            try:
                await self._aadd(self.fallback, event, None)
            except (SourceUnavailable, MeterRejected):
                self._keep_uncounted(event)
            return
        except (SourceUnavailable, MeterRejected):
            self._keep_uncounted(event)
            return
        self._cache_answered()

    async def aconsume(
        self, customer: str, meter: str, limit: int | None, value: int, identifier: str | None
    ) -> tuple[bool, int]:
        """Async twin of :meth:`consume`."""
        event = self._event(customer, meter, value, identifier)
        try:
            answer = await self._aadd(self.store, event, limit)
        except CacheUnavailable as error:
            self._cache_failed()
            raise _store_down(customer, meter, error) from None
        self._cache_answered()
        return answer

    async def ausage(self, customer: str, meter: str) -> int:
        """Async twin of :meth:`usage`."""
        start, end = await self._aperiod(customer)
        try:
            total = await self.store.ausage_total(customer, meter, start)
            if total is None:
                total = await self._aseed(self.store, customer, meter, start, end)
        except CacheUnavailable as error:
            self._cache_failed()
            raise _store_down(customer, meter, error) from None
        self._cache_answered()
        return total

    # -- counting -----------------------------------------------------------------------------

    def _event(self, customer: str, meter: str, value: int, identifier: str | None) -> MeterEvent:
        if identifier is None:
            # A random prefix per process (made again in a forked child) and a serial: unique
            # without a uuid4 per event, whose urandom read costs more than the rest of the call.
            identifier = f"{self._stem}{next(self._serial)}"
        # tuple.__new__ is what MeterEvent(...) calls, less the generated __new__'s Python frame.
        return tuple.__new__(MeterEvent, (meter, customer, value, identifier, int(self._wall_clock())))

    def _add(self, store: UsageStore | MemoryUsage, event: MeterEvent, limit: int | None) -> tuple[bool, int]:
        customer, meter, value = event.customer, event.event_name, event.value
        held = self._periods.get(customer)  # the warm path: the period remembered, one store call
        if held is not None and event.timestamp < held[2]:
            start, end = held[0], held[1]
        else:
            start, end = self._period(customer)
        answer = store.add_usage(customer, meter, start, value, event, limit=limit)
        if answer is not None:  # a warm counter: the request path's case
            if answer[0]:
                self.queued()
            return answer
        for _ in range(_SEED_TRIES):
            self._seed(store, customer, meter, start, end)
            answer = store.add_usage(customer, meter, start, value, event, limit=limit)
            if answer is not None:
                if answer[0]:
                    self.queued()
                return answer
        raise _still_cold(customer, meter)

    async def _aadd(self, store: UsageStore | MemoryUsage, event: MeterEvent, limit: int | None) -> tuple[bool, int]:
        customer, meter, value = event.customer, event.event_name, event.value
        start, end = await self._aperiod(customer)
        if isinstance(store, MemoryUsage):
            answer = store.add_usage(customer, meter, start, value, event, limit=limit)
        else:
            answer = await store.aadd_usage(customer, meter, start, value, event, limit=limit)
        for _ in range(_SEED_TRIES):
            if answer is not None:
                if answer[0]:
                    self.queued()
                return answer
            await self._aseed(store, customer, meter, start, end)
            if isinstance(store, MemoryUsage):
                answer = store.add_usage(customer, meter, start, value, event, limit=limit)
            else:
                answer = await store.aadd_usage(customer, meter, start, value, event, limit=limit)
        raise _still_cold(customer, meter)

    def _seed(self, store: UsageStore | MemoryUsage, customer: str, meter: str, start: int, end: int) -> int:
        """Seed a cold counter from the source's total; one source call per counter in this process.

        Plus the events this process holds unsent (queued while the counter could not be
        seeded, or while the store was down): Stripe's total cannot have them yet. They are read
        before Stripe's total, so one sent in between is in both only if Stripe aggregates it
        at once, which its summaries' lag makes unlikely; read after, it would be in neither.
        """
        with self._seed_locks[hash((customer, meter)) % _SEED_LOCKS]:
            held = store.usage_total(customer, meter, start)  # another thread may have seeded it meanwhile
            if held is not None:
                return held
            self._may_read(customer, meter)
            unsent = self.fallback.pending_value(customer, meter, start, end)  # see _unsent
            try:
                total = self.source.meter_total(customer, meter, start, end)
            except SourceUnavailable as error:
                self._reads.failed(error)
                raise _cold(customer, meter, error) from None
            except MeterRejected as error:
                total = self._refused_total(customer, meter, error)
            self._reads.succeeded()
            return store.seed_usage(customer, meter, start, total + unsent)

    async def _aseed(self, store: UsageStore | MemoryUsage, customer: str, meter: str, start: int, end: int) -> int:
        self._may_read(customer, meter)
        unsent = self.fallback.pending_value(customer, meter, start, end)
        try:
            if self._asource is not None:
                total = await self._asource.ameter_total(customer, meter, start, end)
            else:
                total = await asyncio.to_thread(self.source.meter_total, customer, meter, start, end)
        except SourceUnavailable as error:
            self._reads.failed(error)
            raise _cold(customer, meter, error) from None
        except MeterRejected as error:
            total = self._refused_total(customer, meter, error)
        self._reads.succeeded()
        if isinstance(store, MemoryUsage):
            return store.seed_usage(customer, meter, start, total + unsent)
        return await store.aseed_usage(customer, meter, start, total + unsent)

    def _refused_total(self, customer: str, meter: str, error: MeterRejected) -> int:
        """Stripe's total of a meter it has no such meter (or customer) for: none, said once per meter.

        Stripe cannot hold events of a meter that does not exist, so the counter starts at 0 and
        the gate goes on counting; the events stay pending, and the flusher says why at its first
        send. A request is never answered with an error for a meter set up wrong.
        """
        if meter not in self._refused_logged:
            self._refused_logged.add(meter)
            logger.error(
                "entitlegate: Stripe refused to total meter %r for customer %r (%s): counting from 0 in the "
                "cache; its events are kept until Stripe takes them (create the meter in the Stripe Dashboard)",
                meter,
                customer,
                error,
            )
        return 0

    def _may_read(self, customer: str, meter: str) -> None:
        if not self._reads.allows():
            raise SourceUnavailable(
                f"the usage counter of customer {customer!r} on meter {meter!r} is cold and the usage source is "
                f"down (retrying in at most {self._reads.retry_after:.1f} s)",
                customer=customer,
            )

    # -- the period ---------------------------------------------------------------------------

    def _period(self, customer: str) -> tuple[int, int]:
        now = self._wall_clock()
        held = self._periods.get(customer)
        if held is not None and now < held[2]:
            return held[0], held[1]
        if not self._reads.allows():
            raise SourceUnavailable(
                f"the billing period of customer {customer!r} is not known here and the usage source is down",
                customer=customer,
            )
        try:
            billing = self.source.billing_period(customer)
        except SourceUnavailable as error:
            self._reads.failed(error)
            raise _no_period(customer, error) from None
        self._reads.succeeded()
        return self._remember(customer, billing, now)

    async def _aperiod(self, customer: str) -> tuple[int, int]:
        now = self._wall_clock()
        held = self._periods.get(customer)
        if held is not None and now < held[2]:
            return held[0], held[1]
        if not self._reads.allows():
            raise SourceUnavailable(
                f"the billing period of customer {customer!r} is not known here and the usage source is down",
                customer=customer,
            )
        try:
            if self._asource is not None:
                billing = await self._asource.abilling_period(customer)
            else:
                billing = await asyncio.to_thread(self.source.billing_period, customer)
        except SourceUnavailable as error:
            self._reads.failed(error)
            raise _no_period(customer, error) from None
        self._reads.succeeded()
        return self._remember(customer, billing, now)

    def _remember(self, customer: str, billing: tuple[int, int] | None, now: float) -> tuple[int, int]:
        start, end = billing if billing is not None else calendar_month(now)
        # A subscription whose period is over but not yet renewed: asked again in a minute.
        until = end if end > now else now + _STALE_PERIOD_RECHECK
        periods = self._periods
        if len(periods) >= _PERIODS_KEPT and customer not in periods:
            periods.pop(next(iter(periods)), None)
        periods[customer] = (start, end, until)
        return start, end

    def report_unsent(self) -> None:
        """Log what stays unsent in this process's memory (lost when it ends), if anything."""
        left = self.fallback.pending + int(getattr(self.store, "pending_usage", 0))  # MemoryCache's
        if left:
            logger.warning(
                "entitlegate: %d usage event(s) are still not sent to Stripe (down, or refusing their meter) and "
                "are held in this process only: they are lost if it ends now",
                left,
            )

    # -- outages ------------------------------------------------------------------------------

    def _cache_failed(self) -> None:
        if not self._store_down:
            self._store_down = True
            logger.warning(
                "entitlegate: the cache %r cannot keep usage now; new events are counted and queued in this "
                "process and sent from here, and usage/consume_usage raise SourceUnavailable",
                self.store,
            )

    def _cache_answered(self) -> None:
        if self._store_down:
            self._store_down = False
            logger.info("entitlegate: the cache %r keeps usage again", self.store)

    def _keep_uncounted(self, event: MeterEvent) -> None:
        """An event whose counter is cold and cannot be seeded: queued to send, not counted."""
        self.fallback.queue(event)
        self.queued()
        if not self._uncounted_logged:
            self._uncounted_logged = True
            logger.warning(
                "entitlegate: usage of meter %r by customer %r could not be counted (its counter is cold and the "
                "source cannot give the period's total); the event is queued and will be sent to Stripe, whose "
                "total will seed the counter",
                event.event_name,
                event.customer,
            )


def _cold(customer: str, meter: str, error: Exception) -> SourceUnavailable:
    return SourceUnavailable(
        f"the usage counter of customer {customer!r} on meter {meter!r} is cold (a fresh process or a flushed "
        f"cache) and the source cannot give the period's total: {error}",
        customer=customer,
    )


def _no_period(customer: str, error: Exception) -> SourceUnavailable:
    return SourceUnavailable(
        f"the billing period of customer {customer!r} (which keys their usage counters) cannot be read: {error}",
        customer=customer,
    )


def _still_cold(customer: str, meter: str) -> SourceUnavailable:
    return SourceUnavailable(
        f"the usage counter of customer {customer!r} on meter {meter!r} stayed cold after seeding it "
        f"(is the cache dropping keys?)",
        customer=customer,
    )


def _store_down(customer: str, meter: str, error: Exception) -> SourceUnavailable:
    return SourceUnavailable(
        f"the shared cache is down, so the usage of customer {customer!r} on meter {meter!r} cannot be counted "
        f"exactly ({type(error).__name__})",
        customer=customer,
    )


_SEED_TRIES = 3
_LEASE_SENDS = 5  # a claim's lease, in sends (the source's timeout)
