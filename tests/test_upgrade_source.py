"""StripeSource's portal sessions for the upgrade flow: flows, options, and Stripe's refusals."""

from __future__ import annotations

import asyncio
import logging

import pytest
import stripe

from entitlegate import SourceUnavailable, StripeSource
from entitlegate.upgrade import ReturnLimiter, is_return, marked, unmarked
from tests.fake_stripe import PORTAL_SESSIONS, SUBSCRIPTIONS, FakeStripe


@pytest.fixture
def source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


def posted(fake: FakeStripe) -> dict[str, str]:
    (request,) = [r for r in fake.requests if r.path == PORTAL_SESSIONS]
    return request.params


def test_subscription_update_opens_the_active_subscriptions_plan_page(
    source: StripeSource, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_subscription("cus_1", "sub_old", status="canceled")
    fake_stripe.set_subscription("cus_1", "sub_1")
    source.create_portal_session("cus_1", "https://app.test/pro", flow="subscription_update")
    (listing,) = [r for r in fake_stripe.requests if r.path == SUBSCRIPTIONS]
    assert listing.params["customer"] == "cus_1"
    assert listing.params["status"] == "active"
    params = posted(fake_stripe)
    assert params["flow_data[type]"] == "subscription_update"
    assert params["flow_data[subscription_update][subscription]"] == "sub_1"
    assert params["flow_data[after_completion][redirect][return_url]"] == "https://app.test/pro"


def test_subscription_update_without_a_subscription_opens_the_portal_home(
    source: StripeSource, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    url = source.create_portal_session("cus_1", "https://app.test/pro", flow="subscription_update")
    assert url.startswith("https://billing.stripe.test/")
    assert not any(name.startswith("flow_data") for name in posted(fake_stripe))


def test_configuration_and_locale_reach_stripe(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    source.create_portal_session("cus_1", "https://app.test/", configuration="bpc_123", locale="fr")
    assert posted(fake_stripe) == {
        "customer": "cus_1",
        "return_url": "https://app.test/",
        "configuration": "bpc_123",
        "locale": "fr",
    }


def test_async_twin_opens_the_same_flow_on_the_async_client(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_subscription("cus_1", "sub_1")

    async def main() -> str:
        try:
            return await source.acreate_portal_session("cus_1", "https://app.test/", flow="subscription_update")
        finally:
            await source.aclose()

    assert asyncio.run(main()).startswith("https://billing.stripe.test/")
    assert posted(fake_stripe)["flow_data[subscription_update][subscription]"] == "sub_1"


def test_a_portal_not_configured_is_logged_by_cause_without_the_key(
    source: StripeSource, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.portal_configured = False
    with caplog.at_level(logging.WARNING, "entitlegate"), pytest.raises(SourceUnavailable) as raised:
        source.create_portal_session("cus_1", "https://app.test/")
    assert "Customer Portal configured" in caplog.text
    assert "HTTP 400" in caplog.text
    assert fake_stripe.api_key not in caplog.text
    assert fake_stripe.api_key not in str(raised.value)


def test_async_portal_refusal_raises_source_unavailable_too(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.portal_configured = False

    async def main() -> None:
        try:
            await source.acreate_portal_session("cus_1", "https://app.test/")
        finally:
            await source.aclose()

    with pytest.raises(SourceUnavailable, match="no Customer Portal session"):
        asyncio.run(main())


def test_an_unknown_flow_is_a_value_error_before_any_call(source: StripeSource, fake_stripe: FakeStripe) -> None:
    with pytest.raises(ValueError, match="portal flow"):
        source.create_portal_session("cus_1", "https://app.test/", flow="upsell")  # type: ignore[arg-type]
    assert fake_stripe.requests == []


# -- the fake refuses what Stripe refuses -------------------------------------------------------


def test_fake_stripe_refuses_a_portal_session_without_customer(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="Missing required param: customer") as raised:
        stripe_client.v1.billing_portal.sessions.create({"return_url": "https://app.test/"})
    assert raised.value.http_status == 400
    assert raised.value.param == "customer"


def test_fake_stripe_refuses_an_unknown_flow_type(stripe_client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    with pytest.raises(stripe.InvalidRequestError, match="Invalid flow_data") as raised:
        stripe_client.v1.billing_portal.sessions.create(
            {"customer": "cus_1", "flow_data": {"type": "upsell"}}  # type: ignore[typeddict-item]
        )
    assert raised.value.http_status == 400
    assert raised.value.param == "flow_data[type]"


def test_fake_stripe_refuses_a_subscription_update_without_its_subscription(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    with pytest.raises(stripe.InvalidRequestError, match="flow_data\\[subscription_update\\]\\[subscription\\]"):
        stripe_client.v1.billing_portal.sessions.create(
            {"customer": "cus_1", "flow_data": {"type": "subscription_update"}}
        )  # type: ignore[typeddict-item]


def test_fake_stripe_lists_subscriptions_by_status(stripe_client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_subscription("cus_1", "sub_a")
    fake_stripe.set_subscription("cus_1", "sub_c", status="canceled")
    fake_stripe.set_subscription("cus_2", "sub_b")
    active = stripe_client.v1.subscriptions.list({"customer": "cus_1", "status": "active"})
    assert [sub.id for sub in active.data] == ["sub_a"]
    everything = stripe_client.v1.subscriptions.list({"customer": "cus_1", "status": "all"})
    assert [sub.id for sub in everything.data] == ["sub_a", "sub_c"]
    with pytest.raises(stripe.InvalidRequestError, match="Invalid status"):
        stripe_client.v1.subscriptions.list({"status": "happy"})  # type: ignore[typeddict-item]


# -- the return marker and its limit --------------------------------------------------------------


def test_marked_return_url_is_recognised_and_unmarked_keeps_the_rest_of_the_query() -> None:
    url = marked("https://app.test/pro?tab=2")
    query = url.split("?", 1)[1]
    assert is_return(query)
    assert unmarked("/pro", query) == "/pro?tab=2"
    assert not is_return("tab=2&x_entitlegate_return=1")


def test_a_customer_may_trigger_one_return_refresh_a_minute() -> None:
    now = [1000.0]
    limiter = ReturnLimiter(clock=lambda: now[0])
    assert limiter.admit("cus_1")
    now[0] += 59
    assert not limiter.admit("cus_1")
    assert limiter.admit("cus_2")
    now[0] += 1
    assert limiter.admit("cus_1")
