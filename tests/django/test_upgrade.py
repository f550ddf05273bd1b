"""The upgrade flow in Django: portal_upgrade's options, JSON for API clients, the return refresh."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from entitlegate_django.denied import portal_upgrade
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, PORTAL_SESSIONS, FakeStripe

pytestmark = pytest.mark.django_db

PORTAL = "entitlegate_django.denied.portal_upgrade"
#: DENIED with options: a factory-made handler, named by its dotted path.
plan_change = portal_upgrade(flow="subscription_update", configuration="bpc_1", locale="fr")
PLAN_CHANGE = "tests.django.test_upgrade.plan_change"
JSON = {"HTTP_ACCEPT": "application/json"}


def test_portal_upgrade_with_options_opens_the_plan_page_of_the_active_subscription(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PLAN_CHANGE)
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.set_subscription("cus_1", "sub_1")

    response = customer_client.get("/seats/")

    assert response.status_code == 303
    (session,) = [r for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]
    assert session.params["flow_data[subscription_update][subscription]"] == "sub_1"
    assert session.params["configuration"] == "bpc_1"
    assert session.params["locale"] == "fr"


def test_an_api_client_gets_a_json_403_with_the_upgrade_url(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])

    response = customer_client.get("/seats/", **JSON)  # type: ignore[arg-type]

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "feature_required"
    assert body["feature"] == "seats-feature"
    assert body["upgrade_url"].startswith("https://billing.stripe.test/p/session/")


def test_a_limit_denial_names_the_limit_in_the_json_403(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_feature("team", {"seats": "2"})
    fake_stripe.set_customer("cus_1", ["team"])

    response = customer_client.get("/team-of-three/", **JSON)  # type: ignore[arg-type]

    body = response.json()
    assert response.status_code == 403
    assert body["limit"] == "seats"
    assert "upgrade_url" in body


def test_a_portal_not_configured_leaves_the_403_and_logs_the_cause(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])
    fake_stripe.portal_configured = False

    with caplog.at_level(logging.WARNING, "entitlegate"):
        browser = customer_client.get("/seats/")
        api = customer_client.get("/seats/", **JSON)  # type: ignore[arg-type]

    assert browser.status_code == 403
    assert api.status_code == 403
    assert api.json() == {"error": "feature_required", "feature": "seats-feature"}
    assert "Customer Portal configured" in caplog.text
    assert fake_stripe.api_key not in caplog.text


def test_an_anonymous_user_still_goes_to_login(client: Client, configure: Callable[..., None]) -> None:
    configure(DENIED=PLAN_CHANGE)

    assert client.get("/seats/").status_code == 302


def test_coming_back_from_the_portal_refreshes_the_customer_and_strips_the_marker(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])
    assert customer_client.get("/seats/").status_code == 303  # denied: off to the portal
    fake_stripe.set_customer("cus_1", ["seats-feature"])  # paid; the webhook is still on its way

    back = customer_client.get("/seats/?from=menu&entitlegate_return=1")

    assert back.status_code == 303
    assert back["Location"] == "/seats/?from=menu"
    assert customer_client.get("/seats/?from=menu").status_code == 200


def test_a_customer_triggers_at_most_one_return_refresh_a_minute(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])
    customer_client.get("/seats/")  # cached now
    asked = fake_stripe.calls(ACTIVE_ENTITLEMENTS)
    customer_client.get("/seats/?entitlegate_return=1")
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked + 1  # the one refresh
    asked += 1

    for _ in range(5):
        assert customer_client.get("/seats/?entitlegate_return=1").status_code == 303

    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_async_middleware_refreshes_a_returning_customer_too(
    async_client: AsyncClient, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    # The project's middleware runs async when the client is async (Django's ASGI handler).
    configure(DENIED=PORTAL)
    user = await sync_to_async(User.objects.create)(username="cus_1")
    await sync_to_async(async_client.force_login)(user)
    async_customer_client = async_client
    fake_stripe.set_customer("cus_1", [])
    assert (await async_customer_client.get("/aseats/")).status_code == 303
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    back = await async_customer_client.get("/aseats/?entitlegate_return=1")

    assert back.status_code == 303
    assert back["Location"] == "/aseats/"
    assert (await async_customer_client.get("/aseats/")).status_code == 200
