"""Async views stay async: checked in the event loop, denied like sync views."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient

from entitlegate_django import get_resolver
from tests.django import views
from tests.fake_stripe import FakeStripe
from tests.stripe_events import signed, summary_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _signed_in(async_client: AsyncClient, username: str) -> AsyncClient:
    user = await sync_to_async(User.objects.create)(username=username)
    await sync_to_async(async_client.force_login)(user)
    return async_client


async def test_async_view_stays_a_coroutine_function() -> None:
    assert iscoroutinefunction(views.aseats)


async def test_customer_with_the_feature_sees_the_async_page(
    async_client: AsyncClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/aseats/")

    assert response.status_code == 200
    assert response.content.startswith(b"async seats page")


async def test_customer_without_the_feature_gets_403_from_an_async_view(
    async_client: AsyncClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/aseats/")

    assert response.status_code == 403
    assert b"seats-feature" in response.content


async def test_anonymous_user_of_an_async_view_is_redirected_to_login(async_client: AsyncClient) -> None:
    response = await async_client.get("/aseats/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/aseats/"


async def test_signed_in_user_without_customer_id_gets_403_from_an_async_view(async_client: AsyncClient) -> None:
    client = await _signed_in(async_client, "staff")

    assert (await client.get("/aseats/")).status_code == 403


async def test_async_view_answers_503_in_a_stripe_outage(async_client: AsyncClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/aseats/")

    assert response.status_code == 503


async def test_async_class_based_view_is_gated(async_client: AsyncClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["other"])
    client = await _signed_in(async_client, "cus_1")

    assert (await client.get("/class-aseats/")).status_code == 403
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    await get_resolver().ainvalidate("cus_1")
    assert (await client.get("/class-aseats/")).status_code == 200


async def test_async_method_decorated_view_is_gated(async_client: AsyncClient, fake_stripe: FakeStripe) -> None:
    import django

    if django.VERSION < (5, 1):
        pytest.skip("method_decorator wraps async methods from Django 5.1")
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/adecorated/")

    assert response.status_code == 200
    assert response.content == b"async decorated method"


async def test_async_webhook_view_applies_a_summary_event(async_client: AsyncClient, fake_stripe: FakeStripe) -> None:
    body, header = signed(summary_event("cus_1", ["seats-feature"]))

    response = await async_client.post(
        "/stripe/awebhook/", body, content_type="application/json", headers={"Stripe-Signature": header}
    )

    assert response.status_code == 200
    assert response.json()["action"] == "applied"
    assert await get_resolver().afeatures("cus_1") == {"seats-feature"}
    assert fake_stripe.calls() == 0


async def test_async_webhook_view_rejects_a_bad_signature(async_client: AsyncClient) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))

    response = await async_client.post(
        "/stripe/awebhook/", body, content_type="application/json", headers={"Stripe-Signature": "t=1,v1=bad"}
    )

    assert response.status_code == 400


async def test_async_webhook_view_is_post_only(async_client: AsyncClient) -> None:
    response = await async_client.get("/stripe/awebhook/")

    assert response.status_code == 405


async def test_async_webhook_view_is_csrf_exempt(fake_stripe: FakeStripe) -> None:
    client = AsyncClient(enforce_csrf_checks=True)
    body, header = signed(summary_event("cus_1", ["seats-feature"]))

    response = await client.post(
        "/stripe/awebhook/", body, content_type="application/json", headers={"Stripe-Signature": header}
    )

    assert response.status_code == 200


async def test_request_entitlements_load_asynchronously(async_client: AsyncClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "export"])
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/me/afeatures/")

    assert response.json() == {"features": ["export", "seats-feature"]}


async def test_a_customer_function_that_needs_the_database_still_works_in_an_async_view(
    async_client: AsyncClient, fake_stripe: FakeStripe, settings: Any
) -> None:
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != "tests.django.middleware.LoadUser"]
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = await _signed_in(async_client, "cus_1")

    response = await client.get("/aseats/")

    assert response.status_code == 200
