"""ENTITLEGATE_CACHE as a redis:// URL: apps (processes) share answers through a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory
from tests.polling import wait_for
from tests.redis_server import RedisServer
from tests.stripe_events import signed, summary_event

redis_cache = pytest.importorskip("entitlegate.cache.redis")

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_apps(make_app: AppFactory, redis_server: RedisServer) -> Iterator[tuple[Flask, Flask]]:
    """Two apps, as two processes of one site would be, on one Redis."""
    apps = (make_app(ENTITLEGATE_CACHE=redis_server.url), make_app(ENTITLEGATE_CACHE=redis_server.url))
    yield apps
    for app in apps:
        close = getattr(app.extensions["entitlegate"].resolver.cache, "close", None)
        if close is not None:
            close()


def status_of(app: Flask, path: str, customer: str) -> int:
    return app.test_client().get(path, headers={"X-Customer": customer}).status_code


def test_redis_url_builds_a_redis_cache(redis_apps: tuple[Flask, Flask]) -> None:
    first, _ = redis_apps
    assert isinstance(first.extensions["entitlegate"].resolver.cache, redis_cache.RedisCache)


def test_webhook_applied_by_one_app_changes_the_answer_in_the_other(
    redis_apps: tuple[Flask, Flask], fake_stripe: FakeStripe
) -> None:
    first, second = redis_apps
    customer = f"cus_{uuid.uuid4().hex[:12]}"  # the Redis server is shared by the whole session
    fake_stripe.set_customer(customer, [])
    assert second.test_client().get("/seats", headers={"X-Customer": customer}).status_code == 403
    body, signature = signed(summary_event(customer, ["seats-feature"]))
    assert (
        first.test_client().post("/stripe/webhook", data=body, headers={"Stripe-Signature": signature}).status_code
        == 200
    )
    wait_for(lambda: status_of(second, "/seats", customer) == 200)
