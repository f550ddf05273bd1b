"""Coming back from the Customer Portal: one refresh, so the page shows the upgrade at once.

A denied handler sends the customer to the portal with a ``return_url`` that carries
:data:`RETURN_MARKER`. The first request that comes back with it refreshes that customer's
entitlements (one Stripe call, before the webhook arrives) and is redirected to the same URL
without the marker. The decisions live here, once; each adapter only reads its request and
redirects.

The once-a-minute limit is kept per process, in memory: the refresh's *answer* goes to the
resolver's cache (shared on :class:`~entitlegate.RedisCache`, so every process sees the upgrade),
and only the right to ask Stripe again is local. Reloading a marked URL can then cost at most one
Stripe call per customer per minute per process, a bound set by the deployment, not the visitor,
and no Redis round trip is added to a return.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from entitlegate.errors import SourceUnavailable
from entitlegate.resolver import Resolver

__all__ = [
    "REFRESH_EVERY",
    "RETURN_MARKER",
    "ReturnLimiter",
    "arefresh_on_return",
    "is_return",
    "limiter_of",
    "marked",
    "refresh_on_return",
    "unmarked",
]

logger = logging.getLogger("entitlegate")

#: The query parameter that marks a ``return_url`` as a way back from the portal.
RETURN_MARKER = "entitlegate_return"
#: Seconds before the same customer may trigger another return refresh (in this process).
REFRESH_EVERY = 60.0
_REMEMBERED = 100_000  # customers the limiter remembers; the oldest are forgotten first


def marked(url: str) -> str:
    """``url`` with :data:`RETURN_MARKER` added to its query: the ``return_url`` for the portal."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != RETURN_MARKER]
    query.append((RETURN_MARKER, "1"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_return(query_string: str) -> bool:
    """Whether a request's raw query string carries the marker: a substring test, cheap per request."""
    return RETURN_MARKER in query_string and any(
        name == RETURN_MARKER for name, _ in parse_qsl(query_string, keep_blank_values=True)
    )


def unmarked(path: str, query_string: str) -> str:
    """The URL (path and query) to redirect a returning request to: the same, without the marker."""
    query = [(name, value) for name, value in parse_qsl(query_string, keep_blank_values=True) if name != RETURN_MARKER]
    return f"{path}?{urlencode(query)}" if query else path


class ReturnLimiter:
    """Admits one return refresh per customer per ``every`` seconds. Thread-safe.

    ``clock`` is a monotonic clock (tests move it instead of sleeping).
    """

    def __init__(self, every: float = REFRESH_EVERY, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._last: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, customer: str) -> bool:
        """True (and remembered) when ``customer`` has not refreshed in the last ``every`` seconds."""
        now = self._clock()
        with self._lock:
            last = self._last.get(customer)
            if last is not None and now - last < self.every:
                return False
            self._last[customer] = now
            self._last.move_to_end(customer)
            while len(self._last) > _REMEMBERED:
                self._last.popitem(last=False)
            return True


_limiters: weakref.WeakKeyDictionary[Resolver, ReturnLimiter] = weakref.WeakKeyDictionary()
_limiters_lock = threading.Lock()


def limiter_of(resolver: Resolver) -> ReturnLimiter:
    """The return limiter of ``resolver`` (one per resolver, made on first use)."""
    with _limiters_lock:
        limiter = _limiters.get(resolver)
        if limiter is None:
            limiter = _limiters[resolver] = ReturnLimiter()
        return limiter


def refresh_on_return(resolver: Resolver, customer: str | None) -> bool:
    """Refresh ``customer``'s entitlements for a return from the portal, if the limit allows.

    Returns whether Stripe was asked. No customer, or one who refreshed less than a minute ago,
    asks nothing. An outage is logged and swallowed: the page then shows what the cache has,
    and the webhook brings the upgrade.
    """
    if customer is None or not limiter_of(resolver).admit(customer):
        return False
    try:
        resolver.refresh(customer)
    except SourceUnavailable as error:
        logger.warning("entitlegate could not refresh customer %r back from the portal: %s", customer, error)
    return True


async def arefresh_on_return(resolver: Resolver, customer: str | None) -> bool:
    """Async twin of :func:`refresh_on_return`."""
    if customer is None or not limiter_of(resolver).admit(customer):
        return False
    try:
        await resolver.arefresh(customer)
    except SourceUnavailable as error:
        logger.warning("entitlegate could not refresh customer %r back from the portal: %s", customer, error)
    return True
