"""Limits from Feature metadata: ``requires_limit``, ``request.entitlements.limit`` and ``{{ request|limit }}``.

cus_1 holds ``seats-feature``, whose metadata says ``seats: 3``. A limit denial takes the path of
a feature denial (the site's 403, or ``DENIED``), naming the limit; an outage is a 503.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import django
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from entitlegate.gate import Shortfall
from entitlegate_django import FeatureDenied, requires_limit
from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db

SYNC_GATES = ["/team/", "/class-team/"]  # the decorator, and the decorator through method_decorator
ASYNC_GATES = [
    "/ateam/",
    pytest.param(
        "/class-ateam/",
        marks=pytest.mark.skipif(
            django.VERSION < (5, 1), reason="method_decorator wraps async methods from Django 5.1"
        ),
    ),
]


@pytest.fixture(autouse=True)
def three_seats(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("seats-feature", {"seats": "3"})
    fake_stripe.set_customer("cus_1", ["seats-feature"])


@pytest.fixture
def denials(configure: Callable[..., None]) -> list[FeatureDenied]:
    """DENIED set to a handler that keeps what it was handed."""
    from tests.django import factories

    factories.denials.clear()
    configure(DENIED="tests.django.factories.keep_denial")
    return factories.denials


async def _signed_in(async_client: AsyncClient, username: str = "cus_1") -> AsyncClient:
    user = await sync_to_async(User.objects.create)(username=username)
    await sync_to_async(async_client.force_login)(user)
    return async_client


@pytest.mark.parametrize("path", SYNC_GATES)
def test_a_customer_within_the_limit_sees_the_page(customer_client: Client, path: str) -> None:
    assert customer_client.get(path, {"seats": "3"}).status_code == 200


@pytest.mark.parametrize("path", SYNC_GATES)
def test_a_customer_over_the_limit_gets_the_sites_403_naming_the_limit(customer_client: Client, path: str) -> None:
    response = customer_client.get(path, {"seats": "4"})

    assert response.status_code == 403
    assert b"This page needs 4 of &#x27;seats&#x27;; your plan allows 3." in response.content


def test_a_limit_denial_goes_to_the_denied_handler_with_its_shortfall(
    customer_client: Client, denials: list[FeatureDenied]
) -> None:
    response = customer_client.get("/team/", {"seats": "5"})

    assert response.status_code == 402
    (denial,) = denials
    assert denial.feature == "seats"
    assert denial.customer == "cus_1"
    assert denial.shortfall == Shortfall("seats", 3, 5)


def test_a_feature_denial_has_no_shortfall(customer_client: Client, denials: list[FeatureDenied]) -> None:
    customer_client.get("/metal/")

    (denial,) = denials
    assert denial.feature == "gold | silver"
    assert denial.shortfall is None


def test_a_fixed_need_within_the_limit_is_allowed(customer_client: Client) -> None:
    assert customer_client.get("/team-of-three/").status_code == 200


def test_a_fixed_need_over_the_limit_is_denied(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("seats-feature", {"seats": "2"})

    assert customer_client.get("/team-of-three/").status_code == 403


def test_unlimited_covers_any_need(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("seats-feature", {"seats": "unlimited"})

    assert customer_client.get("/team/", {"seats": "100000"}).status_code == 200
    assert customer_client.get("/me/limit/").json() == {"seats": math.inf}


def test_an_anonymous_user_is_sent_to_login_without_asking_the_need(client: Client, fake_stripe: FakeStripe) -> None:
    response = client.get("/team/", {"seats": "not a number"})  # the need function would raise

    assert response.status_code == 302
    assert fake_stripe.calls() == 0


def test_a_limit_in_a_stripe_outage_is_a_503(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    assert customer_client.get("/team/").status_code == 503


def test_request_entitlements_limit_reads_the_customers_limit(customer_client: Client) -> None:
    assert customer_client.get("/me/limit/").json() == {"seats": 3}


def test_the_limit_filter_renders_the_limit_and_the_default_for_an_absent_one(customer_client: Client) -> None:
    assert customer_client.get("/limit-page/").content.strip() == b"seats:3 projects:0"


def test_the_limit_filter_renders_0_in_an_outage(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    response = customer_client.get("/limit-page/")

    assert response.status_code == 200
    assert response.content.strip() == b"seats:0 projects:0"


def test_requires_limit_refuses_a_bad_need_at_decoration() -> None:
    with pytest.raises(ValueError, match="whole number"):
        requires_limit("seats", -1)
    with pytest.raises(ValueError, match="non-blank"):
        requires_limit(" ", 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("path", ASYNC_GATES)
async def test_an_async_view_within_the_limit_runs(async_client: AsyncClient, path: str) -> None:
    client = await _signed_in(async_client)

    assert (await client.get(path, {"seats": "3"})).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("path", ASYNC_GATES)
async def test_an_async_view_over_the_limit_is_denied(async_client: AsyncClient, path: str) -> None:
    client = await _signed_in(async_client)

    assert (await client.get(path, {"seats": "4"})).status_code == 403


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_async_limit_denial_goes_to_the_denied_handler(
    async_client: AsyncClient, denials: list[FeatureDenied]
) -> None:
    client = await _signed_in(async_client)

    response = await client.get("/ateam/", {"seats": "9"})

    assert response.status_code == 402
    assert [denial.shortfall for denial in denials] == [Shortfall("seats", 3, 9)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_request_entitlements_alimit_reads_the_limit_in_an_async_view(async_client: AsyncClient) -> None:
    client = await _signed_in(async_client)

    assert (await client.get("/me/alimit/")).json() == {"seats": 3}


def test_the_decorated_view_keeps_its_requirement() -> None:
    from tests.django import views

    assert views.team.required_limit.name == "seats"  # type: ignore[attr-defined]
