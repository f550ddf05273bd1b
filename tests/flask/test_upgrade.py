"""The upgrade flow in Flask: portal_redirect's options, JSON for API clients, the return refresh."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from entitlegate_flask import Entitlements, portal_redirect
from entitlegate_flask.gating import requires_limit
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, PORTAL_SESSIONS, FakeStripe
from tests.flask.conftest import AppFactory, header_customer

CUSTOMER = {"X-Customer": "cus_1"}
API = {"X-Customer": "cus_1", "Accept": "application/json"}


def app_with(make_app: AppFactory, handler: object = portal_redirect, **config: object) -> Flask:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    entitlements.denied_handler(handler)  # type: ignore[arg-type]
    app = make_app(entitlements, **config)

    @app.get("/team-of-three")
    @requires_limit("seats", 3)
    def team_of_three() -> str:
        return "team of 3"

    return app


def test_portal_redirect_with_options_opens_the_plan_page_of_the_active_subscription(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    app = app_with(make_app, portal_redirect(flow="subscription_update", configuration="bpc_1", locale="fr"))
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_subscription("cus_1", "sub_1")

    response = app.test_client().get("/seats", headers=CUSTOMER)

    assert response.status_code == 303
    (session,) = [r for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]
    assert session.params["flow_data[subscription_update][subscription]"] == "sub_1"
    assert session.params["configuration"] == "bpc_1"
    assert session.params["locale"] == "fr"


def test_a_factory_made_portal_redirect_is_checked_at_init_app_too(make_app: AppFactory) -> None:
    from entitlegate import Resolver, StaticSource

    entitlements = Entitlements(resolver=Resolver(StaticSource({})))
    entitlements.denied_handler(portal_redirect(flow="subscription_update"))
    with pytest.raises(ValueError, match="portal_redirect needs"):
        make_app(entitlements, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)


@pytest.mark.parametrize("path", ["/seats", "/async-seats"])
def test_an_api_client_gets_a_json_403_with_the_upgrade_url(
    make_app: AppFactory, fake_stripe: FakeStripe, path: str
) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = app_with(make_app).test_client().get(path, headers=API)

    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "feature_required"
    assert body["feature"] == "seats-feature"
    assert body["upgrade_url"].startswith("https://billing.stripe.test/p/session/")


def test_a_limit_denial_names_the_limit_in_the_json_403(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("team", {"seats": "2"})
    fake_stripe.set_customer("cus_1", ["team"])

    response = app_with(make_app).test_client().get("/team-of-three", headers=API)

    body = response.get_json()
    assert response.status_code == 403
    assert body["limit"] == "seats"
    assert "upgrade_url" in body


def test_a_portal_not_configured_leaves_the_403_and_logs_the_cause(
    make_app: AppFactory, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.portal_configured = False
    client = app_with(make_app).test_client()

    with caplog.at_level(logging.WARNING, "entitlegate"):
        browser = client.get("/seats", headers=CUSTOMER)
        api = client.get("/seats", headers=API)

    assert browser.status_code == 403
    assert api.status_code == 403
    assert api.get_json() == {"error": "feature_required", "feature": "seats-feature"}
    assert "Customer Portal configured" in caplog.text
    assert fake_stripe.api_key not in caplog.text


def test_no_customer_still_gets_the_401(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    assert app_with(make_app).test_client().get("/seats").status_code == 401
    assert fake_stripe.calls(PORTAL_SESSIONS) == 0


@pytest.mark.parametrize("path", ["/seats", "/async-seats"])
def test_coming_back_from_the_portal_refreshes_the_customer_and_strips_the_marker(
    make_app: AppFactory, fake_stripe: FakeStripe, path: str
) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = app_with(make_app).test_client()
    assert client.get(path, headers=CUSTOMER).status_code == 303  # denied: off to the portal
    fake_stripe.set_customer("cus_1", ["seats-feature"])  # paid; the webhook is on its way

    back = client.get(f"{path}?tab=2&entitlegate_return=1", headers=CUSTOMER)

    assert back.status_code == 303
    assert back.headers["Location"] == f"{path}?tab=2"
    assert client.get(f"{path}?tab=2", headers=CUSTOMER).status_code == 200


def test_a_customer_triggers_at_most_one_return_refresh_a_minute(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = app_with(make_app).test_client()
    client.get("/seats", headers=CUSTOMER)
    asked = fake_stripe.calls(ACTIVE_ENTITLEMENTS)
    client.get("/seats?entitlegate_return=1", headers=CUSTOMER)
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked + 1

    for _ in range(5):
        assert client.get("/seats?entitlegate_return=1", headers=CUSTOMER).status_code == 303

    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked + 1
