"""What a cache holds (:class:`Entry`), what it must do (:class:`Cache`), and which write wins."""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from entitlegate.sources import Source

__all__ = ["Bindable", "Cache", "Entry", "Leasing", "supersedes"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One customer's cached active entitlements.

    ``version`` is the latest Stripe time (epoch seconds) the set is known to reflect. An event's
    set is versioned at the end of the second its ``created`` names (the change may have happened
    at any moment of it); a fetch at the moment it started, and an invalidation at the moment it
    happened, each less the resolver's ``clock_skew`` (this host's clock may be ahead of Stripe's).
    ``expires`` and ``stale_until`` are readings of the resolver's monotonic clock: before
    ``expires`` the entry answers checks; before ``stale_until`` it may be served while the
    source is down. An invalidated entry keeps its set for that purpose but is never fresh.
    """

    features: frozenset[str]
    version: float
    expires: float
    stale_until: float


def supersedes(version: float, current: Entry | None, *, event: bool) -> bool:
    """Whether a write versioned ``version`` may replace ``current``.

    Stripe's ``created`` has one-second resolution, so an event is older than the entry only when
    it falls before the second the entry's version lies in (a tie applies the event). Other writes
    compare exactly. With versions as :class:`Entry` sets them, that reads: an event replaces a
    fetch unless ``created < floor(started - skew)`` (a fetch may not reflect an event of its own
    second or of the skew before it); a fetch replaces an event only when ``started - skew >=
    created + 1`` (it surely started after the event's whole second), so a slow fetch that read
    Stripe before a change never undoes its webhook; a fetch loses to a fetch or an invalidation
    that started after it.
    """
    if current is None:
        return True
    if event:
        return version >= math.floor(current.version)
    return version >= current.version


def invalidated(current: Entry | None, version: float, *, ended: bool = False) -> Entry:
    """The entry that replaces ``current`` when the customer is invalidated at ``version``.

    It is never fresh, so the next check asks the source; it keeps the old set (and how long that
    may be served in an outage) so an invalidation never turns an outage into a denial, unless
    ``ended`` says the customer's access may have ended (a subscription deleted): then nothing is
    kept to serve and an outage is answered by the resolver's ``on_unavailable``. Its version is
    at least the old one, so an invalidation is never stale.
    """
    if current is None or ended:
        return Entry(frozenset(), version if current is None else max(version, current.version), -math.inf, -math.inf)
    return Entry(current.features, max(version, current.version), -math.inf, current.stale_until)


@runtime_checkable
class Cache(Protocol):
    """Where a :class:`~entitlegate.Resolver` keeps entries. Implementations must be thread-safe.

    ``peek`` is the hot path: it reads what this process holds, with no I/O and no lock. The other
    methods may do I/O; the ``a``-prefixed twins must not block the event loop.

    A cache shared by many processes may also be :class:`Bindable` (told which source it serves)
    and :class:`Leasing` (coalesces misses across processes); the Resolver uses either when present.
    """

    def peek(self, customer: str) -> Entry | None:
        """The entry held in this process, or ``None``; never does I/O."""
        ...

    def get(self, customer: str) -> Entry | None:
        """The entry for ``customer`` from wherever the cache keeps it."""
        ...

    async def aget(self, customer: str) -> Entry | None:
        """Async twin of :meth:`get`."""
        ...

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Store ``entry`` unless the held one is newer (see :func:`supersedes`); True if stored."""
        ...

    async def aput(self, customer: str, entry: Entry, *, event: bool) -> bool:
        """Async twin of :meth:`put`."""
        ...

    def invalidate(self, customer: str, version: float, *, ended: bool = False) -> None:
        """Make the customer's entry stale at ``version`` (see :func:`invalidated`).

        ``ended`` is passed (as True) only when the customer's access may have ended: the old set
        must then no longer be served during an outage.
        """
        ...

    async def ainvalidate(self, customer: str, version: float, *, ended: bool = False) -> None:
        """Async twin of :meth:`invalidate`."""
        ...

    def clear(self) -> None:
        """Drop every entry."""
        ...


@runtime_checkable
class Bindable(Protocol):
    """A cache that namespaces what it keeps by the source it serves (livemode, Stripe account).

    The :class:`~entitlegate.Resolver` calls :meth:`bind` once, from its constructor.
    """

    def bind(self, source: Source) -> None:
        """Serve ``source``'s answers: its ``livemode`` and, if it has one, its ``stripe_account``."""
        ...


@runtime_checkable
class Leasing(Protocol):
    """A cache that coalesces misses across processes, around the one source call they need.

    On a miss, the :class:`~entitlegate.Resolver` enters ``lease(customer)`` before asking the
    source. It yields the entry another process stored while this one waited its turn (answer from
    it if fresh, without asking the source), or ``None``: ask the source now, and store the answer
    before leaving the block. It never raises for the cache's own failures and never waits long.
    """

    def lease(self, customer: str) -> AbstractContextManager[Entry | None]:
        """Claim the miss of ``customer``, or wait briefly for the process that claimed it."""
        ...

    def alease(self, customer: str) -> AbstractAsyncContextManager[Entry | None]:
        """Async twin of :meth:`lease`."""
        ...
