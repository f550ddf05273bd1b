"""portal_redirect, the built-in denied handler: an upgrade trip through the Stripe Customer Portal."""

from __future__ import annotations

import pytest
from flask import Flask

from entitlegate import Resolver, StaticSource
from entitlegate_flask import Entitlements, portal_redirect
from tests.fake_stripe import PORTAL_SESSIONS, FakeStripe
from tests.flask.conftest import AppFactory, header_customer


@pytest.fixture
def portal_app(make_app: AppFactory) -> Flask:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    entitlements.denied_handler(portal_redirect)
    return make_app(entitlements)


def portal_requests(fake_stripe: FakeStripe) -> list[dict[str, str]]:
    with fake_stripe.lock:
        return [r.params for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]


def test_denied_customer_is_sent_to_a_portal_session(portal_app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    response = portal_app.test_client().get("/seats?from=menu", headers={"X-Customer": "cus_1"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://billing.stripe.test/p/session/")


def test_portal_returns_the_customer_to_the_page_they_asked_for(portal_app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    portal_app.test_client().get("/seats?from=menu", headers={"X-Customer": "cus_1"})
    assert portal_requests(fake_stripe) == [
        {"customer": "cus_1", "return_url": "http://localhost/seats?from=menu&entitlegate_return=1"}
    ]


def test_async_view_denial_goes_to_the_portal_too(portal_app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    response = portal_app.test_client().get("/async-seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 303


def test_customer_with_the_feature_never_sees_the_portal(portal_app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert portal_app.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    assert portal_requests(fake_stripe) == []


def test_portal_unreachable_leaves_the_403(portal_app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = portal_app.test_client()
    client.get("/reports", headers={"X-Customer": "cus_1"})  # the customer's set is now cached
    fake_stripe.always_fail = 401
    # Issue 13: a portal session Stripe cannot make leaves the denial standing (was a 503).
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403


def test_portal_redirect_registered_after_init_app_on_a_static_source_denies_with_a_logged_reason(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    entitlements = Entitlements(resolver=Resolver(StaticSource({"cus_1": []})))
    entitlements.customer_loader(header_customer)
    app = make_app(entitlements, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)
    entitlements.denied_handler(portal_redirect)
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 403
    assert "portal_redirect needs a StripeSource" in caplog.text


def test_portal_redirect_answers_an_outage_denial_as_unavailable_not_as_an_upsell(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    # ENTITLEGATE_ON_UNAVAILABLE="deny" during an outage: a paying customer must not be sent to upgrade.
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    entitlements.denied_handler(portal_redirect)
    app = make_app(entitlements, ENTITLEGATE_ON_UNAVAILABLE="deny")
    fake_stripe.always_fail = 500

    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})

    assert response.status_code == 503
    assert portal_requests(fake_stripe) == []
