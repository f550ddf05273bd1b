"""The middleware under httpx's ASGITransport: one event loop, the SDK's async client, real concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from tests.asgi.support import JSON, as_customer
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, FakeStripe

MakeApp = Callable[..., Starlette]


def async_client(app: Starlette, **options: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **options), base_url="http://testserver")


@pytest.mark.asyncio
async def test_gated_request_is_answered_over_the_async_client(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", [])

    async with async_client(make_app()) as client:
        allowed = await client.get("/pro", headers=as_customer("cus_1"))
        refused = await client.get("/pro", headers=as_customer("cus_2", **JSON))

    assert allowed.status_code == 200
    assert (refused.status_code, refused.json()["error"]) == (403, "feature_required")


@pytest.mark.asyncio
async def test_concurrent_requests_for_one_customer_ask_stripe_once(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.latency = 0.05  # so that every request arrives while the first one's fetch is in flight

    async with async_client(make_app()) as client:
        responses = await asyncio.gather(*(client.get("/pro", headers=as_customer("cus_1")) for _ in range(20)))

    assert [response.status_code for response in responses] == [200] * 20
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == 1


@pytest.mark.asyncio
async def test_slow_stripe_does_not_hold_up_other_requests(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.latency = 0.5

    async with async_client(make_app()) as client:
        gated = asyncio.ensure_future(client.get("/pro", headers=as_customer("cus_1")))
        free = asyncio.ensure_future(client.get("/free", headers=as_customer("cus_1")))
        done, _ = await asyncio.wait({gated, free}, return_when=asyncio.FIRST_COMPLETED)
        first = done.pop()
        await asyncio.gather(gated, free)

    # Were the Stripe call made on the event loop, the free request would wait for it to finish.
    assert first is free
    assert gated.result().status_code == 200


@pytest.mark.asyncio
async def test_rules_apply_below_the_root_path(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    async with async_client(make_app(), root_path="/api") as client:
        response = await client.get("/api/pro", headers=as_customer("cus_1"))

    assert response.status_code == 403


@pytest.mark.asyncio
async def test_unruled_endpoint_loads_entitlements_on_the_async_client(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    async with async_client(make_app()) as client:
        response = await client.get("/features", headers=as_customer("cus_1"))

    assert response.json() == {"customer": "cus_1", "features": ["seats-feature"]}
