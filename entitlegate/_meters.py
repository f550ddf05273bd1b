"""What entitlegate sends to Stripe Billing Meters, and what a source must offer to take it.

A leaf module (it imports only :mod:`entitlegate.errors`), so the usage engine, the caches that
keep pending events and the sources that send them share one shape without importing each other.
The shape follows Stripe's ``POST /v1/billing/meter_events`` (``event_name``, ``identifier``,
``timestamp``, ``payload.stripe_customer_id``, ``payload.value``) and
``GET /v1/billing/meters/{id}/event_summaries``.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from entitlegate.errors import EntitlegateError

__all__ = ["AsyncUsageSource", "MeterEvent", "MeterRejected", "UsageSource"]


class MeterEvent(NamedTuple):
    """One usage report: ``value`` of the meter ``event_name`` by ``customer`` at ``timestamp``.

    ``identifier`` is unique per report: Stripe de-duplicates on it (for at least 24 hours), so an
    event sent twice, after a retry or by a second process, is billed once. A named tuple, not a
    frozen dataclass: one is made on every ``record_usage``, and a frozen dataclass's ``__init__``
    (an ``object.__setattr__`` per field) cost three times as much there.
    """

    event_name: str
    customer: str
    value: int
    identifier: str
    timestamp: int  # unix seconds


class MeterRejected(EntitlegateError):
    """Stripe refused a meter event for good: no meter has that event name, the customer is
    unknown, or the event is invalid. Retrying cannot help; the event is kept, not dropped.

    The message names the meter (and the customer), never a key.
    """

    def __init__(self, message: str, *, event_name: str, code: str | None = None) -> None:
        super().__init__(message)
        self.event_name = event_name
        self.code = code


@runtime_checkable
class UsageSource(Protocol):
    """A source that takes meter events and reads their totals back (``StripeSource`` does).

    Failures that a retry may cure (5xx, 429, network, timeout) raise
    :class:`~entitlegate.SourceUnavailable`; permanent ones raise :class:`MeterRejected`. An event
    whose ``identifier`` Stripe has already taken counts as sent.
    """

    def send_meter_event(self, event: MeterEvent) -> None:
        """Report ``event`` to Stripe."""
        ...

    def meter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """The sum Stripe holds for ``customer`` on the meter ``event_name`` in ``[start, end)``."""
        ...

    def billing_period(self, customer: str) -> tuple[int, int] | None:
        """The customer's current billing period (unix start, end), or ``None`` when none is known."""
        ...


@runtime_checkable
class AsyncUsageSource(Protocol):
    """The async twin of :class:`UsageSource`, for sources with their own async I/O."""

    async def asend_meter_event(self, event: MeterEvent) -> None:
        """Async twin of :meth:`UsageSource.send_meter_event`."""
        ...

    async def ameter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """Async twin of :meth:`UsageSource.meter_total`."""
        ...

    async def abilling_period(self, customer: str) -> tuple[int, int] | None:
        """Async twin of :meth:`UsageSource.billing_period`."""
        ...
