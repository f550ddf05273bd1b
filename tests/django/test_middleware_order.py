"""EntitlementMiddleware before AuthenticationMiddleware gates RULES as it does after it.

Listed first, it used to run before ``request.user`` existed, so a CUSTOMER function that reads
``request.user`` failed on every rule-gated path (a 500). Now, in that order, the rules are
enforced just before the view, when every middleware has run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import checks
from django.test import AsyncClient, Client

from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db(transaction=True)

ENTITLEGATE_FIRST = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "entitlegate_django.middleware.EntitlementMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@pytest.fixture(autouse=True)
def entitlegate_first(settings: Any, configure: Callable[..., None]) -> None:
    settings.MIDDLEWARE = ENTITLEGATE_FIRST
    configure(CUSTOMER="tests.django.customers.username_of")


@pytest.mark.parametrize(("features", "status"), [(["seats-feature"], 200), ([], 403)])
def test_a_rule_is_enforced_for_a_signed_in_customer(
    customer_client: Client, fake_stripe: FakeStripe, features: list[str], status: int
) -> None:
    fake_stripe.set_customer("cus_1", features)

    response = customer_client.get("/pro/")

    assert response.status_code == status


def test_a_rule_sends_an_anonymous_user_to_login(client: Client) -> None:
    response = client.get("/pro/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/pro/"


def test_a_view_reads_the_entitlements_of_the_signed_in_customer(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    assert customer_client.get("/me/features/").json() == {"features": ["seats-feature"]}


@pytest.mark.asyncio
@pytest.mark.parametrize(("features", "status"), [(["seats-feature"], 200), ([], 403)])
async def test_a_rule_is_enforced_for_a_signed_in_customer_under_asgi(
    async_client: AsyncClient, fake_stripe: FakeStripe, features: list[str], status: int
) -> None:
    fake_stripe.set_customer("cus_1", features)
    user = await sync_to_async(User.objects.create)(username="cus_1")
    await sync_to_async(async_client.force_login)(user)

    response = await async_client.get("/pro/")

    assert response.status_code == status


def test_the_check_warns_and_says_what_to_move() -> None:
    (warning,) = [message for message in checks.run_checks() if message.id == "entitlegate.W004"]

    assert "not gated" in warning.msg
    assert warning.hint == (
        "Move 'entitlegate_django.middleware.EntitlementMiddleware' below "
        "'django.contrib.auth.middleware.AuthenticationMiddleware' in MIDDLEWARE."
    )
