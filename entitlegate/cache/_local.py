"""Short-lived copies of shared entries in this process, dropped the moment they are superseded."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from entitlegate.cache._base import Entry

__all__ = ["LocalTier"]


class LocalTier:
    """Copies of entries read from a shared cache, fresh for at most ``ttl`` seconds each.

    A read is one ``dict.get`` with no lock: a copy's ``expires`` is cut to ``ttl`` from when it
    was made, so the resolver's own freshness check retires it. Whatever drops copies (a message
    that a customer changed, a lost connection) bumps :attr:`generation`; a copy read from the
    shared cache before such a drop is not kept (:meth:`keep` is given the generation seen before
    the read), so a drop can never be undone by a read that was already on its way. Holds at most
    ``maxsize`` customers, forgetting the least recently written. ``ttl`` 0 keeps nothing.
    """

    peek: Callable[[str], Entry | None]

    def __init__(self, ttl: float, maxsize: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self.generation = 0
        self._clock = clock
        self._entries: dict[str, Entry] = {}
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
            entry = dataclasses.replace(entry, expires=until)
        with self._lock:
            if generation != self.generation:
                return
            # Re-inserted, so the dict's order is the order of writes and its first key the oldest.
            self._entries.pop(customer, None)
            self._entries[customer] = entry
            if len(self._entries) > self.maxsize:
                del self._entries[next(iter(self._entries))]

    def drop(self, customer: str) -> None:
        """Forget ``customer``'s copy, and any copy of it being read right now."""
        with self._lock:
            self.generation += 1
            self._entries.pop(customer, None)

    def clear(self) -> None:
        """Forget every copy, and any copy being read right now."""
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def after_fork(self) -> None:
        """In a forked child: forget every copy, and the lock a parent's thread may have held."""
        self._lock = threading.Lock()
        self.generation += 1
        self._entries.clear()
