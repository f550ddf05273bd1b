"""Usage against Stripe Billing Meters: which period a counter belongs to, and where counters live.

The period is the customer's current billing period when the source can read it from their
subscription (:class:`~entitlegate._meters.UsageSource`), else the calendar month in UTC. Its
start (unix seconds) is part of every counter's key, so a new period starts a new counter.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Protocol, runtime_checkable

from entitlegate._meters import MeterEvent, UsageSource

__all__ = ["UsageStore", "calendar_month", "period_of"]


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
