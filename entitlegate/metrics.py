"""OpenTelemetry metrics of every resolver and webhook handler, on a meter named ``entitlegate``.

Installed with the ``otel`` extra (``pip install "entitlegate[otel]"``, which brings
``opentelemetry-api``); without it entitlegate never imports this module and a check does
nothing it would not do otherwise. With it, every :class:`~entitlegate.Resolver` is observed from
the moment it is made, on whatever meter provider the application sets (until it sets one, the
API's no-op provider records nothing). Instruments:

- ``entitlegate.hits``, ``.misses``, ``.source_calls``, ``.stale_served``, ``.errors``,
  ``.coalesced``: counters read from :attr:`Resolver.stats` when the reader collects, so a check
  costs not one instruction more (the hit path is untouched); attribute ``entitlegate.resolver``,
  a number per resolver of the process (most have one).
- ``entitlegate.source.duration`` (seconds): a histogram of each source call the resolver makes
  (a miss, a refresh); a hit makes none.
- ``entitlegate.webhooks``: a counter of webhook deliveries handled, by ``action`` (applied,
  invalidated, ignored, stale, duplicate).
- ``entitlegate.source.unavailable`` and ``entitlegate.cache.unavailable``: how many resolvers
  remember an outage of their source, and how many Redis caches one of Redis, at collection
  time (an up-down counter: 1 while it lasts, 0 after).
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

try:
    from opentelemetry import metrics
except ImportError:  # pragma: no cover - the resolver imports this module only when it is there
    raise ImportError('entitlegate.metrics needs OpenTelemetry: pip install "entitlegate[otel]"') from None


class Observed(Protocol):
    """What this module reads of a :class:`~entitlegate.Resolver` (a protocol: the resolver imports
    this module, so this module does not import it back)."""

    @property
    def stats(self) -> Any: ...

    @property
    def source_down(self) -> bool: ...

    @property
    def cache(self) -> object: ...

    _time_source: Callable[[float], None] | None


__all__ = ["METER_NAME", "observe", "webhook_handled"]

METER_NAME = "entitlegate"

_STATS = ("hits", "misses", "source_calls", "stale_served", "errors", "coalesced")
_DESCRIPTIONS = {
    "hits": "checks answered from a fresh cache entry",
    "misses": "checks that found no fresh entry",
    "source_calls": "calls to the source (Stripe) on a miss or a refresh",
    "stale_served": "answers served from a stale entry while the source was down",
    "errors": "source calls that failed",
    "coalesced": "misses answered by another caller's source call",
}

_lock = threading.Lock()
_observed: weakref.WeakKeyDictionary[Observed, dict[str, str]] = weakref.WeakKeyDictionary()
_numbers = itertools.count(1)
_instruments: _Instruments | None = None


class _Instruments:
    """The meter's instruments, made once per process on the first resolver."""

    def __init__(self) -> None:
        meter = metrics.get_meter(METER_NAME)
        for name in _STATS:
            meter.create_observable_counter(
                f"entitlegate.{name}",
                callbacks=[_reader(name)],
                unit="1",
                description=_DESCRIPTIONS[name],
            )
        self.duration = meter.create_histogram(
            "entitlegate.source.duration",
            unit="s",
            description="how long a miss's source call took, storing its answer included",
        )
        self.webhooks = meter.create_counter(
            "entitlegate.webhooks", unit="1", description="webhook deliveries handled, by action"
        )
        meter.create_observable_up_down_counter(
            "entitlegate.source.unavailable",
            callbacks=[_source_outages],
            unit="1",
            description="resolvers remembering an outage of their source now",
        )
        meter.create_observable_up_down_counter(
            "entitlegate.cache.unavailable",
            callbacks=[_cache_outages],
            unit="1",
            description="Redis caches remembering an outage of Redis now",
        )


def _live() -> list[tuple[Observed, dict[str, str]]]:
    with _lock:
        return list(_observed.items())


def _reader(name: str) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
    def read(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [metrics.Observation(getattr(resolver.stats, name), labels) for resolver, labels in _live()]

    return read


def _source_outages(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    return [metrics.Observation(int(resolver.source_down), labels) for resolver, labels in _live()]


@runtime_checkable
class _SharedCache(Protocol):
    """A cache that can be unavailable (RedisCache): one whose outage is worth counting."""

    @property
    def unavailable(self) -> bool: ...


def _cache_outages(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    caches = {id(cache): cache for resolver, _ in _live() if isinstance(cache := resolver.cache, _SharedCache)}
    return [metrics.Observation(sum(1 for cache in caches.values() if cache.unavailable))]


def observe(resolver: Observed) -> None:
    """Report ``resolver``'s counters and source-call durations (the Resolver calls this when made)."""
    global _instruments
    with _lock:
        if _instruments is None:
            _instruments = _Instruments()
        labels = {"entitlegate.resolver": str(next(_numbers))}
        _observed[resolver] = labels
    duration = _instruments.duration

    def timed(seconds: float) -> None:
        duration.record(seconds, labels)

    # An attribute every resolver has (None until here), so observing changes no instance's shape.
    resolver._time_source = timed


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def webhook_handled(action: str) -> None:
    """Count one webhook delivery handled with ``action`` (the WebhookHandler calls this)."""
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    _instruments.webhooks.add(1, {"action": action})
