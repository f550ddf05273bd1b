"""Short-lived copies of shared entries in this process, dropped the moment they are superseded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from entitlegate.cache._base import Entry

__all__ = ["LocalTier"]


@dataclass(frozen=True, slots=True)
class _Copy(Entry):
    """A copy whose ``expires`` was cut to the tier's ttl; ``fresh_until`` is the entry's own."""

    fresh_until: float = field(kw_only=True)


class LocalTier:
    """Copies of entries read from a shared cache, fresh for at most ``ttl`` seconds each.

    A read is one ``dict.get`` with no lock: a copy's ``expires`` is cut to ``ttl`` from when it
    was made, so the resolver's own freshness check retires it. Whatever drops copies (a message
    that a customer changed, a listener subscribing again) bumps :attr:`generation`; a copy read from the
    shared cache before such a drop is not kept (:meth:`keep` is given the generation seen before
    the read), so a drop can never be undone by a read that was already on its way. Holds at most
    ``maxsize`` customers, forgetting the least recently written. ``ttl`` 0 keeps nothing.

    While the shared cache is unavailable nothing can be read again every ``ttl``: :meth:`held`
    and :meth:`hold` then keep an entry whole (fresh for its own ttl), and :meth:`release` drops
    every copy kept so once the shared cache answers again, since it may hold newer entries.
    """

    peek: Callable[[str], Entry | None]

    def __init__(self, ttl: float, maxsize: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self.generation = 0
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._whole: set[str] = set()  # customers kept whole during an outage; empty otherwise
        self._lock = threading.Lock()
        self.peek = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, customer: str, entry: Entry, generation: int) -> None:
        """Keep a copy of ``entry``, unless something was dropped since ``generation`` was read."""
        if self.ttl <= 0:
            return
        until = self._clock() + self.ttl
        if entry.expires > until:
            # Only a cut copy pays for the extra slot; the entry's own expiry is its last field.
            entry = _Copy(
                entry.features, entry.version, until, entry.stale_until, entry.as_of, fresh_until=entry.expires
            )
        self._store(customer, entry, generation, whole=False)

    def hold(self, customer: str, entry: Entry, generation: int) -> None:
        """Keep ``entry`` whole, fresh for its own ttl: the shared cache is unavailable."""
        if self.ttl > 0:
            self._store(customer, entry, generation, whole=True)

    def held(self, customer: str, generation: int) -> Entry | None:
        """The customer's entry as the shared cache last gave it, while that cache is unavailable.

        A copy cut to ``ttl`` but still fresh by its own expiry is kept whole from now on, so the
        next checks are hits again rather than calls to the source.
        """
        copy = self._entries.get(customer)
        if not isinstance(copy, _Copy) or copy.fresh_until <= self._clock():
            return copy
        whole = Entry(copy.features, copy.version, copy.fresh_until, copy.stale_until, copy.as_of)
        with self._lock:
            if generation == self.generation and self._entries.get(customer) is copy:
                self._entries[customer] = whole
                self._whole.add(customer)
        return whole

    def release(self) -> None:
        """The shared cache answers again: drop every copy kept whole while it did not."""
        with self._lock:
            # Bumped even with none to drop: a copy fetched in the outage may be on its way here.
            self.generation += 1
            for customer in self._whole:
                self._entries.pop(customer, None)
            self._whole.clear()

    def _store(self, customer: str, entry: Entry, generation: int, *, whole: bool) -> None:
        with self._lock:
            if generation != self.generation:
                return
            # Re-inserted, so the dict's order is the order of writes and its first key the oldest.
            self._entries.pop(customer, None)
            self._entries[customer] = entry
            if whole:
                self._whole.add(customer)
            elif self._whole:
                self._whole.discard(customer)
            if len(self._entries) > self.maxsize:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self._whole.discard(oldest)

    def drop(self, customer: str) -> None:
        """Forget ``customer``'s copy, and any copy of it being read right now."""
        with self._lock:
            self.generation += 1
            self._entries.pop(customer, None)
            self._whole.discard(customer)

    def clear(self) -> None:
        """Forget every copy, and any copy being read right now."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._whole.clear()

    def after_fork(self) -> None:
        """In a forked child: forget every copy, and the lock a parent's thread may have held."""
        self._lock = threading.Lock()
        self.generation += 1
        self._entries.clear()
        self._whole.clear()
