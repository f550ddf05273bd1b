"""An in-process cache: a plain dict read without a lock, bounded by cachetools on writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cachetools

from entitlegate._meters import MeterEvent
from entitlegate.cache._base import Entry, invalidated, replacement
from entitlegate.cache._memory_usage import MemoryUsage

__all__ = ["MemoryCache"]


class _Evictor(cachetools.LRUCache[str, None]):
    """Tracks write order for eviction; calls back so the read dict drops the same customer."""

    def __init__(self, maxsize: int, on_evict: Callable[[str], object]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, None]:
        customer, value = super().popitem()
        self._on_evict(customer)
        return customer, value


class MemoryCache:
    """Entries for one process, thread-safe, holding at most ``maxsize`` customers.

    A hit is one ``dict.get`` with no lock (the GIL, or the free-threaded build's per-dict
    locking, makes that read atomic). Writes take a lock and evict the least recently *written*
    customer when full: recency is not tracked on reads, which keeps bookkeeping off the hot
    path; every entry is rewritten once per TTL anyway while its customer is active.

    It is also a :class:`~entitlegate.usage.UsageStore`: usage counters and the meter events not
    yet sent, exact across threads, kept for this process only (see
    :class:`~entitlegate.cache._memory_usage.MemoryUsage`); :meth:`clear` leaves them alone.
    """

    peek: Callable[[str], Entry | None]

    def __init__(self, maxsize: int = 100_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"MemoryCache maxsize must be a positive integer, got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: dict[str, Entry] = {}
        self._order = _Evictor(maxsize, self._entries.pop)
        self._lock = threading.Lock()
        # The hot path: a bound dict.get, no Python frame in between.
        self.peek = self._entries.get
        self._usage = MemoryUsage(clock)  # clock: monotonic seconds, for the leases of claimed events

    def __repr__(self) -> str:
        return f"MemoryCache(maxsize={self.maxsize}, size={len(self._entries)})"

    # -- usage (entitlegate.usage.UsageStore), kept in this process -----------------------------

    def add_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Add ``value`` and queue ``event`` unless that passes ``limit``: (admitted, total); ``None`` when cold."""
        return self._usage.add_usage(customer, meter, period, value, event, limit=limit)

    async def aadd_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Async twin of :meth:`add_usage` (no I/O, so no thread)."""
        return self._usage.add_usage(customer, meter, period, value, event, limit=limit)

    def usage_total(self, customer: str, meter: str, period: int) -> int | None:
        """The counter's total, or ``None`` when it is cold (never seeded or counted here)."""
        return self._usage.usage_total(customer, meter, period)

    async def ausage_total(self, customer: str, meter: str, period: int) -> int | None:
        """Async twin of :meth:`usage_total`."""
        return self._usage.usage_total(customer, meter, period)

    def seed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Set the counter to ``total`` if it is cold; answer the counter's total."""
        return self._usage.seed_usage(customer, meter, period, total)

    async def aseed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Async twin of :meth:`seed_usage`."""
        return self._usage.seed_usage(customer, meter, period, total)

    @property
    def pending_usage(self) -> int:
        """How many meter events wait here to be sent to Stripe."""
        return self._usage.pending

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]:
        """Up to ``n`` pending events not leased now, leased for ``lease_seconds``."""
        return self._usage.claim(n, lease_seconds)

    def ack(self, events: list[MeterEvent]) -> None:
        """Forget ``events``: Stripe has taken them."""
        self._usage.ack(events)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, customer: str) -> Entry | None:
        """The entry for ``customer``, or ``None``."""
        return self._entries.get(customer)

    async def aget(self, customer: str) -> Entry | None:
        """Async twin of :meth:`get` (no I/O, so no thread)."""
        return self._entries.get(customer)

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Store ``entry`` unless the held one is newer (see :func:`~entitlegate.cache.supersedes`).

        True if stored; what is stored keeps the held stamps where they are later.
        """
        with self._lock:
            stored = replacement(entry, self._entries.get(customer), event=event)
            if stored is None:
                return False
            self._store(customer, stored)
            return True

    async def aput(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Async twin of :meth:`put`."""
        return self.put(customer, entry, event=event)

    def invalidate(self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None) -> None:
        """Make the customer's entry stale; it stays servable during an outage unless ``ended``."""
        with self._lock:
            self._store(customer, invalidated(self._entries.get(customer), version, ended=ended, as_of=as_of))

    async def ainvalidate(
        self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None
    ) -> None:
        """Async twin of :meth:`invalidate`."""
        self.invalidate(customer, version, ended=ended, as_of=as_of)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._order.clear()
            self._entries.clear()

    def _store(self, customer: str, entry: Entry) -> None:
        # Write the order first: if it evicts, it evicts someone else before this one lands.
        self._order[customer] = None
        self._entries[customer] = entry
