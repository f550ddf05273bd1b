"""An in-process cache: a plain dict read without a lock, bounded by cachetools on writes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import cachetools

from entitlegate.cache._base import Entry, invalidated, replacement

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
    """

    peek: Callable[[str], Entry | None]

    def __init__(self, maxsize: int = 100_000) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"MemoryCache maxsize must be a positive integer, got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: dict[str, Entry] = {}
        self._order = _Evictor(maxsize, self._entries.pop)
        self._lock = threading.Lock()
        # The hot path: a bound dict.get, no Python frame in between.
        self.peek = self._entries.get

    def __repr__(self) -> str:
        return f"MemoryCache(maxsize={self.maxsize}, size={len(self._entries)})"

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
