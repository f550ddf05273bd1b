"""StripeSource and StaticSource as usage sources (issue 14): the real SDK over HTTP, the fake's Billing Meters."""

from __future__ import annotations

import asyncio
import time

import pytest

from entitlegate import SourceUnavailable
from entitlegate._meters import AsyncUsageSource, MeterEvent, MeterRejected, UsageSource
from entitlegate.sources import StaticSource, StripeSource
from tests.fake_stripe import METER_EVENTS, FakeStripe

METER = "api_calls"


def _source(fake: FakeStripe, **options: object) -> StripeSource:
    return StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0, **options)  # type: ignore[arg-type]


def _event(identifier: str, value: int = 1, *, customer: str = "cus_1", name: str = METER) -> MeterEvent:
    return MeterEvent(name, customer, value, identifier, int(time.time()) - 1)


def _window() -> tuple[int, int]:
    now = int(time.time())
    return now - 3600, now + 60


@pytest.fixture
def metered(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.add_meter(METER)
    return fake_stripe


def test_both_sources_are_usage_sources(metered: FakeStripe) -> None:
    for source in (_source(metered), StaticSource({})):
        assert isinstance(source, UsageSource)
        assert isinstance(source, AsyncUsageSource)


def test_sent_events_land_and_are_summed(metered: FakeStripe) -> None:
    source = _source(metered)
    source.send_meter_event(_event("ev-1", 3))
    source.send_meter_event(_event("ev-2", 4))
    assert metered.identifiers(METER) == {"ev-1", "ev-2"}
    assert source.meter_total("cus_1", METER, *_window()) == 7
    assert source.meter_total("cus_2", METER, *_window()) == 0


def test_a_repeated_identifier_is_billed_once_and_is_no_error(metered: FakeStripe) -> None:
    source = _source(metered)
    source.send_meter_event(_event("ev-1", 5))
    source.send_meter_event(_event("ev-1", 5))  # Stripe refuses it as already taken: sent
    assert source.meter_total("cus_1", METER, *_window()) == 5
    assert metered.calls(METER_EVENTS) == 2


def test_events_younger_than_the_lag_are_not_in_the_totals_yet(metered: FakeStripe) -> None:
    metered.summary_lag = 3600
    source = _source(metered)
    source.send_meter_event(_event("ev-1", 2))
    assert source.meter_total("cus_1", METER, *_window()) == 0
    metered.summary_lag = 0
    assert source.meter_total("cus_1", METER, *_window()) == 2


def test_the_meter_id_is_looked_up_once(metered: FakeStripe) -> None:
    source = _source(metered)
    source.meter_total("cus_1", METER, *_window())
    source.meter_total("cus_1", METER, *_window())
    assert metered.calls("/v1/billing/meters") == 1


def test_an_unknown_meter_is_rejected_naming_it(metered: FakeStripe) -> None:
    source = _source(metered)
    with pytest.raises(MeterRejected) as raised:
        source.meter_total("cus_1", "nope", *_window())
    assert raised.value.event_name == "nope"
    assert "nope" in str(raised.value)
    with pytest.raises(MeterRejected) as sent:
        source.send_meter_event(_event("ev-1", name="nope"))
    assert sent.value.event_name == "nope"
    assert metered.api_key not in str(sent.value)


def test_an_unknown_customer_is_rejected(metered: FakeStripe) -> None:
    with pytest.raises(MeterRejected) as raised:
        _source(metered).send_meter_event(_event("ev-1", customer="cus_ghost"))
    assert raised.value.code == "resource_missing"
    assert "cus_ghost" in str(raised.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_outages_are_source_unavailable(metered: FakeStripe, status: int) -> None:
    metered.always_fail = status
    source = _source(metered)
    with pytest.raises(SourceUnavailable) as raised:
        source.send_meter_event(_event("ev-1"))
    assert not isinstance(raised.value, MeterRejected)
    assert metered.api_key not in str(raised.value)


def test_a_wrong_key_is_no_meter_refusal_and_is_not_quoted(metered: FakeStripe) -> None:
    source = StripeSource(api_key="sk_test_wrong_key_9999", api_base=metered.url, max_retries=0)
    with pytest.raises(SourceUnavailable) as raised:
        source.send_meter_event(_event("ev-1"))
    assert not isinstance(raised.value, MeterRejected)
    assert "wrong_key" not in str(raised.value)


def test_a_fail_rate_fails_some_sends_and_retries_land_each_event_once(metered: FakeStripe) -> None:
    metered.fail_rate[METER_EVENTS] = 0.5
    source = _source(metered)
    failures = 0
    for number in range(20):
        while True:
            try:
                source.send_meter_event(_event(f"ev-{number}"))
                break
            except SourceUnavailable:
                failures += 1
    assert failures > 0
    metered.fail_rate.clear()
    assert len(metered.identifiers(METER)) == 20
    assert source.meter_total("cus_1", METER, *_window()) == 20


def test_billing_period_is_read_from_the_subscription_item(metered: FakeStripe) -> None:
    source = _source(metered)
    assert source.billing_period("cus_1") is None
    metered.set_subscription("cus_1", "sub_1", period=(1_700_000_000, 1_702_592_000))
    assert source.billing_period("cus_1") == (1_700_000_000, 1_702_592_000)


def test_the_async_twins_agree(metered: FakeStripe) -> None:
    source = _source(metered)

    async def main() -> tuple[int, tuple[int, int] | None]:
        await source.asend_meter_event(_event("ev-1", 6))
        return await source.ameter_total("cus_1", METER, *_window()), await source.abilling_period("cus_1")

    assert asyncio.run(main()) == (6, None)


def test_static_source_keeps_and_sums_events() -> None:
    source = StaticSource({"cus_1": []})
    source.send_meter_event(_event("ev-1", 2))
    source.send_meter_event(_event("ev-1", 2))
    source.send_meter_event(_event("ev-2", 3))
    source.send_meter_event(_event("ev-3", 9, customer="cus_2"))
    assert source.meter_total("cus_1", METER, *_window()) == 5
    assert source.meter_total("cus_1", METER, 0, 10) == 0
    assert source.billing_period("cus_1") is None
    assert asyncio.run(source.ameter_total("cus_2", METER, *_window())) == 9
