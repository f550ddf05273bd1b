"""DENIED: the site's own handler, and the built-in Customer Portal upgrade redirect."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from tests.fake_stripe import PORTAL_SESSIONS, FakeStripe

pytestmark = pytest.mark.django_db

PORTAL = "entitlegate_django.denied.portal_upgrade"


def test_a_denied_handler_answers_instead_of_the_403(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED="tests.django.factories.pricing_page")
    fake_stripe.set_customer("cus_1", [])

    response = customer_client.get("/seats/")

    assert response.status_code == 402
    assert response.content == b"upgrade for seats-feature"


def test_a_denied_handler_also_answers_a_user_without_customer_id(
    no_customer_client: Client, configure: Callable[..., None]
) -> None:
    configure(DENIED="tests.django.factories.pricing_page")

    response = no_customer_client.get("/seats/")

    assert response.content == b"upgrade for None"


def test_an_anonymous_user_is_still_sent_to_login_with_a_denied_handler(
    client: Client, configure: Callable[..., None]
) -> None:
    configure(DENIED="tests.django.factories.pricing_page")

    assert client.get("/seats/").status_code == 302


def test_portal_upgrade_redirects_to_a_portal_session_returning_to_this_page(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])

    response = customer_client.get("/seats/?from=menu")

    assert response.status_code == 303
    assert response["Location"].startswith("https://billing.stripe.test/p/session/")
    (session_request,) = [r for r in fake_stripe.requests if r.path == PORTAL_SESSIONS]
    assert session_request.params == {
        "customer": "cus_1",
        "return_url": "http://testserver/seats/?from=menu&entitlegate_return=1",
    }


def test_portal_upgrade_gives_a_user_without_customer_id_the_403(
    no_customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)

    response = no_customer_client.get("/seats/")

    assert response.status_code == 403
    assert fake_stripe.calls(PORTAL_SESSIONS) == 0


def test_portal_upgrade_falls_back_to_403_when_stripe_cannot_make_a_session(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])
    assert customer_client.get("/seats/").status_code == 303  # cached now: denied without asking again
    fake_stripe.always_fail = 429

    response = customer_client.get("/seats/")

    assert response.status_code == 403
    assert b"seats-feature" in response.content


def test_portal_upgrade_on_an_async_view(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(DENIED=PORTAL)
    fake_stripe.set_customer("cus_1", [])

    response = customer_client.get("/aseats/")

    assert response.status_code == 303
    assert response["Location"].startswith("https://billing.stripe.test/")


def test_portal_upgrade_answers_an_outage_denial_as_unavailable_not_as_an_upsell(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    # ON_UNAVAILABLE="deny" during an outage: a paying customer must not be sent to upgrade.
    configure(DENIED=PORTAL, ON_UNAVAILABLE="deny")
    fake_stripe.always_fail = 500

    response = customer_client.get("/seats/")

    assert response.status_code == 503
    assert fake_stripe.calls(PORTAL_SESSIONS) == 0
