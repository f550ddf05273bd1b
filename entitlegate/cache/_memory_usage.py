"""Usage counters and pending meter events in one process (MemoryCache's UsageStore).

One lock guards both, so an admission and its queued event are one step: a counter never says
more than the events queued for it. Exact across threads; a process's counters are its own.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from entitlegate._fork import reset_after_fork
from entitlegate._meters import MeterEvent

__all__ = ["MemoryUsage"]


class MemoryUsage:
    """Per-(customer, meter, period) counters and the events not yet sent, thread-safe.

    A counter is cold until it is seeded or counted here. Only the newest period of each
    (customer, meter) is kept once a newer one is seeded: periods only move forward, so an older
    counter has nobody left to ask it. Pending events keep their order; a claimed one is leased
    (not claimable again) until it is acked or its lease lapses. ``clock`` is monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], dict[int, int]] = {}
        self._ready: dict[str, MeterEvent] = {}  # identifier → event, oldest first, claimable now
        self._leased: dict[str, tuple[MeterEvent, float]] = {}  # identifier → (event, lease end)
        reset_after_fork(self._after_fork)

    def __repr__(self) -> str:
        return f"MemoryUsage(counters={len(self._totals)}, pending={self.pending})"

    @property
    def pending(self) -> int:
        """How many events wait to be sent (leased ones included)."""
        return len(self._ready) + len(self._leased)

    def _after_fork(self) -> None:
        # The parent still holds these events and sends them; a child sending them too would
        # only be de-duplicated by Stripe. The child keeps the counters (a copy of the parent's).
        self._lock = threading.Lock()
        self._ready = {}
        self._leased = {}

    # -- counters ---------------------------------------------------------------------------

    def add_usage(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, *, limit: int | None = None
    ) -> tuple[bool, int] | None:
        """Add ``value`` and queue ``event`` unless that passes ``limit``; ``None`` when cold."""
        with self._lock:
            periods = self._totals.get((customer, meter))
            if periods is None:
                return None
            total = periods.get(period)
            if total is None:
                return None
            if limit is not None and total + value > limit:
                return False, total
            total += value
            periods[period] = total
            self._ready[event.identifier] = event
            return True, total

    def usage_total(self, customer: str, meter: str, period: int) -> int | None:
        """The counter's total, or ``None`` when it is cold."""
        periods = self._totals.get((customer, meter))
        return None if periods is None else periods.get(period)

    def seed_usage(self, customer: str, meter: str, period: int, total: int) -> int:
        """Set the counter to ``total`` if it is cold; answer the counter's total."""
        with self._lock:
            periods = self._totals.setdefault((customer, meter), {})
            held = periods.get(period)
            if held is not None:
                return held
            for older in [start for start in periods if start < period]:
                del periods[older]
            periods[period] = total
            return total

    def queue(self, event: MeterEvent) -> None:
        """Queue ``event`` without counting it (its counter could not be seeded)."""
        with self._lock:
            self._ready[event.identifier] = event

    # -- pending events ---------------------------------------------------------------------

    def pending_value(self, customer: str, meter: str, start: int, end: int) -> int:
        """The sum of the pending events of ``customer`` on ``meter`` stamped in ``[start, end)``."""
        with self._lock:
            events = [*self._ready.values(), *(event for event, _ in self._leased.values())]
        return sum(
            e.value for e in events if e.customer == customer and e.event_name == meter and start <= e.timestamp < end
        )

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]:
        """Up to ``n`` pending events not leased now, oldest first, leased for ``lease_seconds``."""
        now = self._clock()
        with self._lock:
            if self._leased:
                lapsed = {key: event for key, (event, until) in self._leased.items() if until <= now}
                if lapsed:
                    for key in lapsed:
                        del self._leased[key]
                    # Back in front of the queue: they are older than anything in it.
                    self._ready = {**lapsed, **self._ready}
            claimed: list[MeterEvent] = []
            until = now + lease_seconds
            ready = self._ready
            for key in list(itertools.islice(ready, n)):
                event = ready.pop(key)
                self._leased[key] = (event, until)
                claimed.append(event)
            return claimed

    def ack(self, events: list[MeterEvent]) -> None:
        """Forget ``events``: Stripe has taken them."""
        with self._lock:
            for event in events:
                self._leased.pop(event.identifier, None)
                self._ready.pop(event.identifier, None)
