"""The test helpers the Flask guide documents work with an app's resolver."""

from __future__ import annotations

from flask import Flask

from entitlegate import Resolver, StaticSource
from entitlegate.testing import override_features
from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer


def test_override_features_pins_a_customers_features_in_an_app(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 401  # Stripe is never asked
    with override_features(app.extensions["entitlegate"].resolver, {"cus_1": {"seats-feature"}}):
        response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_a_static_source_resolver_gates_an_app_without_stripe(make_app: AppFactory) -> None:
    entitlements = Entitlements(resolver=Resolver(StaticSource({"cus_1": ["seats-feature"]})))
    entitlements.customer_loader(header_customer)
    app = make_app(
        entitlements,
        ENTITLEGATE_STRIPE_API_KEY=...,
        ENTITLEGATE_STRIPE_API_BASE=...,
        ENTITLEGATE_WEBHOOK_URL=None,
        ENTITLEGATE_WEBHOOK_SECRET=...,
    )
    client = app.test_client()
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    assert client.get("/seats", headers={"X-Customer": "cus_2"}).status_code == 403
