"""Two apps (as two server processes would be) sharing answers through a real Redis, on redis.asyncio."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from entitlegate import Resolver, StripeSource
from tests.asgi.support import as_customer
from tests.fake_stripe import FakeStripe
from tests.redis_server import RedisServer
from tests.stripe_events import signed, summary_event

redis_cache = pytest.importorskip("entitlegate.cache.redis")

pytestmark = pytest.mark.redis

MakeApp = Callable[..., Starlette]
Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest_asyncio.fixture
async def two_apps(make_app: MakeApp, redis_server: RedisServer, stripe_source: StripeSource) -> AsyncIterator[Clients]:
    prefix = f"asgi-{uuid.uuid4().hex[:8]}"  # the Redis server is shared by the whole session
    caches = [redis_cache.RedisCache(redis_server.url, prefix=prefix) for _ in range(2)]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=make_app(resolver=Resolver(stripe_source, cache))),
            base_url="http://testserver",
        )
        for cache in caches
    ]
    yield clients[0], clients[1]
    for client, cache in zip(clients, caches, strict=True):
        await client.aclose()
        await cache.aclose()


async def status_within(client: httpx.AsyncClient, customer: str, wanted: int, timeout: float = 5.0) -> int:
    """Poll ``/pro`` until it answers ``wanted`` or ``timeout`` passes; the last status seen."""
    deadline = time.monotonic() + timeout
    while True:
        status = (await client.get("/pro", headers=as_customer(customer))).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_webhook_applied_by_one_app_changes_the_answer_in_the_other(
    two_apps: Clients, fake_stripe: FakeStripe
) -> None:
    first, second = two_apps
    customer = f"cus_{uuid.uuid4().hex[:12]}"
    fake_stripe.set_customer(customer, [])
    assert (await second.get("/pro", headers=as_customer(customer))).status_code == 403
    body, signature = signed(summary_event(customer, ["seats-feature"]))

    delivered = await first.post("/stripe/webhook", content=body, headers={"stripe-signature": signature})

    assert delivered.json()["action"] == "applied"
    assert await status_within(second, customer, 200) == 200


@pytest.mark.asyncio
async def test_answer_fetched_by_one_app_serves_the_other_without_asking_stripe(
    two_apps: Clients, fake_stripe: FakeStripe
) -> None:
    first, second = two_apps
    customer = f"cus_{uuid.uuid4().hex[:12]}"
    fake_stripe.set_customer(customer, ["seats-feature"])

    assert (await first.get("/pro", headers=as_customer(customer))).status_code == 200
    assert (await second.get("/pro", headers=as_customer(customer))).status_code == 200

    assert fake_stripe.count_by_customer()[customer] == 1
