"""What a cache holds (:class:`Entry`), what it must do (:class:`Cache`), and which write wins."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Bindable", "Binding", "Cache", "Entry", "Leasing", "invalidated", "replacement", "supersedes"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One customer's cached active entitlements, and two stamps that say which write may replace it.

    ``version`` is the latest Stripe time (epoch seconds) the set is known to reflect, and judges
    events only. An event's set is versioned at the end of the second its ``created`` names (the
    change may have happened at any moment of it); a fetch at the moment it started, and an
    invalidation at the moment it happened, each less the resolver's ``clock_skew`` (this host's
    clock may be ahead of Stripe's). ``as_of`` is the host's wall-clock time (epoch seconds) at
    which the set was learnt, and judges fetches only: for a fetch the moment it *started*, for an
    event the moment it was received (applied), for an invalidation the moment it happened. It
    defaults to ``version``, for a writer that knows no host time. Both only ever grow for a
    customer (see :func:`replacement`). Comparing ``as_of`` across processes needs their hosts'
    clocks to agree (NTP).

    ``expires`` and ``stale_until`` are readings of the resolver's monotonic clock: before
    ``expires`` the entry answers checks; before ``stale_until`` it may be served while the
    source is down. An invalidated entry keeps its set for that purpose but is never fresh.
    """

    features: frozenset[str]
    version: float
    expires: float
    stale_until: float
    as_of: float = math.nan  # NaN: not given, so version (set below)

    def __post_init__(self) -> None:
        if self.as_of != self.as_of:  # NaN
            object.__setattr__(self, "as_of", self.version)


def supersedes(stamp: float, current: Entry | None, *, event: bool) -> bool:
    """Whether a write stamped ``stamp`` may replace ``current``.

    An **event** (``stamp`` its version, or its ``created``) replaces the entry unless it falls
    before the second ``current.version`` lies in: Stripe's ``created`` has one-second resolution,
    so a tie applies the event, and the skew folded into fetch versions means an event is never
    taken for older than a fetch that may not reflect it. A **fetch** (``stamp`` its ``as_of``,
    the host time it started) replaces the entry only if it started at or after ``current.as_of``:
    a fetch that started before a webhook was received (or an invalidation happened) may have read
    Stripe before that change, so it never overwrites it; one that started after it reflects it,
    since Stripe sends an event after the change it reports. Host clock against host clock, so no
    skew margin is needed, and a fetch right after an invalidation is kept at once. Across
    processes that holds as far as their clocks agree: a host whose clock is behind another's has
    its fetches refused for that long after the other's webhook (more calls to Stripe, never a
    wrong answer); one whose clock is ahead may, within that gap, write back a read older than the
    webhook (until the next ttl or webhook).
    """
    if current is None:
        return True
    if event:
        return stamp >= math.floor(current.version)
    return stamp >= current.as_of


def replacement(entry: Entry, current: Entry | None, *, event: bool) -> Entry | None:
    """What a write of ``entry`` leaves in place of ``current``: None if refused (see :func:`supersedes`).

    Stored, its stamps are at least the replaced entry's: a fetch that replaces an event's set
    reflects that event, so it keeps the event's version (an older event stays stale after it);
    an event keeps the replaced entry's ``as_of``, so a fetch that started before either never
    writes back.
    """
    if current is None:
        return entry
    if not supersedes(entry.version if event else entry.as_of, current, event=event):
        return None
    if event:
        if entry.as_of >= current.as_of:
            return entry
        return Entry(entry.features, entry.version, entry.expires, entry.stale_until, current.as_of)
    if entry.version >= current.version:
        return entry
    return Entry(entry.features, current.version, entry.expires, entry.stale_until, entry.as_of)


def invalidated(current: Entry | None, version: float, *, ended: bool = False, as_of: float | None = None) -> Entry:
    """The entry that replaces ``current`` when the customer is invalidated at ``version``, ``as_of``.

    It is never fresh, so the next check asks the source; it keeps the old set (and how long that
    may be served in an outage) so an invalidation never turns an outage into a denial, unless
    ``ended`` says the customer's access may have ended (a subscription deleted): then nothing is
    kept to serve and an outage is answered by the resolver's ``on_unavailable``. Its stamps are at
    least the old ones, so an invalidation is never stale. ``as_of`` defaults to ``version``.
    """
    stamp = version if as_of is None else as_of
    if current is None:
        return Entry(frozenset(), version, -math.inf, -math.inf, stamp)
    version, stamp = max(version, current.version), max(stamp, current.as_of)
    if ended:
        return Entry(frozenset(), version, -math.inf, -math.inf, stamp)
    return Entry(current.features, version, -math.inf, current.stale_until, stamp)


@runtime_checkable
class Cache(Protocol):
    """Where a :class:`~entitlegate.Resolver` keeps entries. Implementations must be thread-safe.

    ``peek`` is the hot path: it reads what this process holds, with no I/O and no lock. The other
    methods may do I/O; the ``a``-prefixed twins must not block the event loop.

    A cache shared by many processes may also be :class:`Bindable` (told whose answers it keeps)
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

    def invalidate(self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None) -> None:
        """Make the customer's entry stale at ``version`` and host time ``as_of`` (see :func:`invalidated`).

        ``ended`` is passed (as True) only when the customer's access may have ended: the old set
        must then no longer be served during an outage.
        """
        ...

    async def ainvalidate(
        self, customer: str, version: float, *, ended: bool = False, as_of: float | None = None
    ) -> None:
        """Async twin of :meth:`invalidate`."""
        ...

    def clear(self) -> None:
        """Drop every entry."""
        ...


@dataclass(frozen=True, slots=True)
class Binding:
    """What a :class:`~entitlegate.Resolver` tells the cache it serves: whose answers, and its clocks.

    ``livemode`` and ``stripe_account`` are the source's (None: not known, or no Connect account):
    a cache shared with other resolvers keeps their entries apart by them. ``clock`` (monotonic
    seconds) is what an entry's ``expires`` and ``stale_until`` are readings of, and ``wall_clock``
    (epoch seconds) what its ``as_of`` is a reading of.
    """

    livemode: bool | None
    stripe_account: str | None
    clock: Callable[[], float]
    wall_clock: Callable[[], float]

    @classmethod
    def of(cls, source: object, *, clock: Callable[[], float], wall_clock: Callable[[], float]) -> Binding:
        """The binding of a resolver over ``source``, with its ``livemode``/``stripe_account`` if it has them.

        Raises ``TypeError`` for a livemode other than True, False or None, or an account that is
        neither a string nor None.
        """
        livemode = getattr(source, "livemode", None)  # optional on a user's own source
        account = getattr(source, "stripe_account", None)
        if livemode is not None and not isinstance(livemode, bool):
            raise TypeError(f"{source!r}.livemode must be True, False or None, got {livemode!r}")
        if account is not None and not isinstance(account, str):
            raise TypeError(f"{source!r}.stripe_account must be a string or None, got {account!r}")
        return cls(livemode, account, clock, wall_clock)


@runtime_checkable
class Bindable(Protocol):
    """A cache that needs to know whose answers it keeps, and by which clocks (a :class:`Binding`).

    The :class:`~entitlegate.Resolver` calls :meth:`bind` once, from its constructor; a cache
    without ``bind`` is used as it is.
    """

    def bind(self, binding: Binding) -> None:
        """Serve a resolver: its source's livemode and Stripe account, and its clocks."""
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
