"""The upgrade flow in ASGI: portal_upgrade as on_denied, JSON for API clients, the return refresh."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from entitlegate_asgi import portal_upgrade, requires_limit
from tests.asgi.support import default_routes
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, PORTAL_SESSIONS, FakeStripe

CUSTOMER = {"X-Customer": "cus_1"}
API = {"X-Customer": "cus_1", "Accept": "application/json"}


@requires_limit("seats", 3)
async def team_of_three(request: Request) -> PlainTextResponse:
    return PlainTextResponse("team of 3")


@pytest.fixture
def client(make_app: Callable[..., Starlette]) -> TestClient:
    routes = [*default_routes(), Route("/team-of-three", team_of_three)]
    return TestClient(make_app(routes, on_denied=portal_upgrade()), follow_redirects=False)


def test_a_denied_browser_is_sent_to_a_portal_session_that_comes_back_marked(
    client: TestClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = client.get("/pro?tab=2", headers=CUSTOMER)

    assert response.status_code == 303
    assert response.headers["location"].startswith("https://billing.stripe.test/p/session/")
    (session,) = [r for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]
    assert session.params["return_url"] == "http://testserver/pro?tab=2&entitlegate_return=1"


def test_portal_upgrade_options_open_the_plan_page_of_the_active_subscription(
    make_app: Callable[..., Starlette], fake_stripe: FakeStripe
) -> None:
    on_denied = portal_upgrade(flow="subscription_update", configuration="bpc_1", locale="fr")
    client = TestClient(make_app(on_denied=on_denied), follow_redirects=False)
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_subscription("cus_1", "sub_1")

    assert client.get("/pro", headers=CUSTOMER).status_code == 303

    (session,) = [r for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]
    assert session.params["flow_data[subscription_update][subscription]"] == "sub_1"
    assert session.params["configuration"] == "bpc_1"
    assert session.params["locale"] == "fr"


def test_an_api_client_gets_a_json_403_with_the_upgrade_url(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = client.get("/pro", headers=API)

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "feature_required"
    assert body["feature"] == "seats-feature"
    assert body["upgrade_url"].startswith("https://billing.stripe.test/p/session/")


def test_a_limit_denial_names_the_limit_in_the_json_403(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("team", {"seats": "2"})
    fake_stripe.set_customer("cus_1", ["team"])

    response = client.get("/team-of-three", headers=API)

    body = response.json()
    assert response.status_code == 403
    assert body["limit"] == "seats"
    assert "upgrade_url" in body


def test_a_portal_not_configured_leaves_the_403_and_logs_the_cause(
    client: TestClient, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.portal_configured = False

    with caplog.at_level(logging.WARNING, "entitlegate"):
        browser = client.get("/pro", headers=CUSTOMER)
        api = client.get("/pro", headers=API)

    assert browser.status_code == 403
    assert api.status_code == 403
    assert api.json() == {"error": "feature_required", "feature": "seats-feature"}
    assert "Customer Portal configured" in caplog.text
    assert fake_stripe.api_key not in caplog.text


def test_no_customer_still_gets_the_401(client: TestClient, fake_stripe: FakeStripe) -> None:
    assert client.get("/pro").status_code == 401
    assert fake_stripe.calls(PORTAL_SESSIONS) == 0


def test_an_outage_denial_is_a_503_not_an_upsell(make_app: Callable[..., Starlette], fake_stripe: FakeStripe) -> None:
    from entitlegate import Resolver, StripeSource

    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)
    app = make_app(resolver=Resolver(source, on_unavailable="deny"), on_denied=portal_upgrade())
    fake_stripe.always_fail = 500

    assert TestClient(app).get("/pro", headers=CUSTOMER).status_code == 503
    assert fake_stripe.calls(PORTAL_SESSIONS) == 0


def test_coming_back_from_the_portal_refreshes_the_customer_and_strips_the_marker(
    client: TestClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    assert client.get("/pro", headers=CUSTOMER).status_code == 303  # denied: off to the portal
    fake_stripe.set_customer("cus_1", ["seats-feature"])  # paid; the webhook is on its way

    back = client.get("/pro?tab=2&entitlegate_return=1", headers=CUSTOMER)

    assert back.status_code == 303
    assert back.headers["location"] == "/pro?tab=2"
    assert client.get("/pro?tab=2", headers=CUSTOMER).status_code == 200


def test_a_customer_triggers_at_most_one_return_refresh_a_minute(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client.get("/pro", headers=CUSTOMER)
    asked = fake_stripe.calls(ACTIVE_ENTITLEMENTS)
    client.get("/free?entitlegate_return=1", headers=CUSTOMER)
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked + 1

    for _ in range(5):
        assert client.get("/free?entitlegate_return=1", headers=CUSTOMER).status_code == 303

    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked + 1
