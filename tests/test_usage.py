"""The usage period: the source's billing period when it has one, else the calendar month in UTC."""

from __future__ import annotations

from entitlegate._meters import MeterEvent
from entitlegate.usage import calendar_month, period_of


class _PeriodSource:
    """A usage source whose customers have a fixed billing period, and that records events."""

    def __init__(self, period: tuple[int, int] | None) -> None:
        self.period = period
        self.sent: list[MeterEvent] = []

    def send_meter_event(self, event: MeterEvent) -> None:
        self.sent.append(event)

    def meter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        return sum(e.value for e in self.sent if e.customer == customer and e.event_name == event_name)

    def billing_period(self, customer: str) -> tuple[int, int] | None:
        return self.period


def test_calendar_month_in_utc_spans_the_month_holding_now() -> None:
    assert calendar_month(1_765_000_000) == (1_764_547_200, 1_767_225_600)  # Dec 2025


def test_the_source_billing_period_wins_over_the_calendar_month() -> None:
    assert period_of(_PeriodSource((100, 200)), "cus_1", 1_765_000_000) == (100, 200)


def test_a_source_without_a_billing_period_falls_back_to_the_month() -> None:
    assert period_of(_PeriodSource(None), "cus_1", 1_765_000_000) == calendar_month(1_765_000_000)
    assert period_of(object(), "cus_1", 1_765_000_000) == calendar_month(1_765_000_000)
