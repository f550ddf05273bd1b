"""The Jinja globals has_feature(name) and features: right answers, and never a broken page."""

from __future__ import annotations

from flask import Flask, render_template_string

from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory


def test_page_shows_the_customers_features(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "analytics"])
    response = app.test_client().get("/page", headers={"X-Customer": "cus_1"})
    assert response.text == "seats=True sso=False features=analytics,seats-feature count=2"


def test_features_supports_membership_tests(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.get("/menu")
    def menu() -> str:
        return render_template_string("{% if 'analytics' in features %}reports{% else %}upsell{% endif %}")

    fake_stripe.set_customer("cus_1", ["analytics"])
    client = app.test_client()
    assert client.get("/menu", headers={"X-Customer": "cus_1"}).text == "reports"
    assert client.get("/menu", headers={"X-Customer": "cus_2"}).text == "upsell"


def test_page_without_a_customer_shows_no_features(app: Flask, fake_stripe: FakeStripe) -> None:
    response = app.test_client().get("/page")
    assert (response.status_code, response.text) == (200, "seats=False sso=False features= count=0")
    assert fake_stripe.calls() == 0


def test_outage_never_breaks_the_page(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 401
    response = app.test_client().get("/page", headers={"X-Customer": "cus_1"})
    assert (response.status_code, response.text) == (200, "seats=False sso=False features= count=0")


def test_outage_under_allow_policy_answers_has_feature_true(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app = make_app(ENTITLEGATE_ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 401
    response = app.test_client().get("/page", headers={"X-Customer": "cus_1"})
    assert response.text == "seats=True sso=True features= count=0"


def test_template_rendered_outside_a_request_shows_no_features(app: Flask, fake_stripe: FakeStripe) -> None:
    with app.app_context():
        text = render_template_string("{{ has_feature('seats-feature') }} {{ features|length }}")
    assert text == "False 0"
    assert fake_stripe.calls() == 0


def test_template_that_uses_neither_global_asks_nothing(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.get("/plain")
    def plain() -> str:
        return render_template_string("plain")

    fake_stripe.always_fail = 401
    assert app.test_client().get("/plain", headers={"X-Customer": "cus_1"}).text == "plain"
    assert fake_stripe.calls() == 0
