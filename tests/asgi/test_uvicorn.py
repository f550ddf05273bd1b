"""The whole stack on a real ASGI server: uvicorn on a loopback port, spoken to over real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from entitlegate import Resolver, StripeSource, WebhookHandler
from entitlegate_asgi import EntitlementMiddleware, RequiresFeature, webhook_app
from tests.asgi.support import JSON, as_customer, customer_from_header, default_routes
from tests.fake_stripe import FakeStripe
from tests.stripe_events import SECRET, signed, summary_event

DEADLINE = 10.0  # seconds for the server to start, and again to stop


async def lifespan_note(request: Request) -> Response:
    return PlainTextResponse(request.state.started)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"started": "by the lifespan"}


@pytest.fixture(scope="module")
def server_url(_fake_stripe_server: FakeStripe) -> Iterator[str]:
    """A uvicorn server in a thread, on a port bound before it starts; stopped after the module."""
    source = StripeSource(api_key=_fake_stripe_server.api_key, api_base=_fake_stripe_server.url, max_network_retries=0)
    resolver = Resolver(source)
    routes = [
        *default_routes(),
        Route("/lifespan", lifespan_note),
        Route("/stripe/webhook", webhook_app(WebhookHandler(resolver, SECRET))),
    ]
    middleware = Middleware(
        EntitlementMiddleware, resolver=resolver, customer=customer_from_header, rules={"/pro": "seats-feature"}
    )
    app = Starlette(routes=routes, middleware=[middleware], lifespan=lifespan)
    yield from _serve(app)


@pytest.fixture(scope="module")
def wrapped_fastapi_url(_fake_stripe_server: FakeStripe) -> Iterator[str]:
    """uvicorn serving a FastAPI app with the middleware wrapped around it, the pure-ASGI way."""
    source = StripeSource(api_key=_fake_stripe_server.api_key, api_base=_fake_stripe_server.url, max_network_retries=0)
    fastapi_app = FastAPI()

    @fastapi_app.get("/seats", dependencies=[Depends(RequiresFeature("seats-feature"))])
    async def seats() -> str:
        return "seats"

    yield from _serve(EntitlementMiddleware(fastapi_app, resolver=Resolver(source), customer=customer_from_header))


def _serve(app: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", ws="websockets-sansio", log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop in time"


def test_real_server_ran_the_lifespan_through_the_middleware(server_url: str) -> None:
    response = httpx.get(f"http://{server_url}/lifespan", timeout=DEADLINE)

    assert response.text == "by the lifespan"


def test_real_server_lets_a_customer_with_the_feature_through(server_url: str, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_uv_allowed", ["seats-feature"])

    response = httpx.get(f"http://{server_url}/pro", headers=as_customer("cus_uv_allowed"), timeout=DEADLINE)

    assert (response.status_code, response.text) == (200, "ok")


def test_real_server_refuses_a_customer_without_the_feature(server_url: str, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_uv_refused", [])

    response = httpx.get(f"http://{server_url}/pro", headers=as_customer("cus_uv_refused", **JSON), timeout=DEADLINE)

    assert response.status_code == 403
    assert response.json() == {"error": "feature_required", "feature": "seats-feature"}


def test_real_server_refuses_a_websocket_with_http_403_before_accept(server_url: str, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_uv_ws_refused", [])

    with (
        pytest.raises(InvalidStatus) as refused,
        connect(
            f"ws://{server_url}/pro/live", additional_headers=as_customer("cus_uv_ws_refused"), open_timeout=DEADLINE
        ),
    ):
        pass

    assert refused.value.response.status_code == 403


def test_real_server_accepts_a_websocket_with_the_feature(server_url: str, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_uv_ws_allowed", ["seats-feature"])

    with connect(
        f"ws://{server_url}/pro/live", additional_headers=as_customer("cus_uv_ws_allowed"), open_timeout=DEADLINE
    ) as websocket:
        assert websocket.recv(timeout=DEADLINE) == "welcome"


def test_real_server_applies_a_stripe_webhook(server_url: str, fake_stripe: FakeStripe) -> None:
    body, signature = signed(summary_event("cus_uv_webhook", ["seats-feature"]))

    delivered = httpx.post(
        f"http://{server_url}/stripe/webhook", content=body, headers={"stripe-signature": signature}, timeout=DEADLINE
    )
    gated = httpx.get(f"http://{server_url}/pro", headers=as_customer("cus_uv_webhook"), timeout=DEADLINE)

    assert delivered.json()["action"] == "applied"
    assert gated.status_code == 200
    assert fake_stripe.calls() == 0


@pytest.mark.parametrize(("customer", "status"), [(None, 401), ("cus_uv_fastapi_refused", 403)])
def test_real_server_answers_a_wrapped_fastapi_apps_refusal_not_with_a_500(
    wrapped_fastapi_url: str, fake_stripe: FakeStripe, customer: str | None, status: int
) -> None:
    fake_stripe.set_customer("cus_uv_fastapi_refused", [])
    headers = JSON if customer is None else as_customer(customer, **JSON)

    response = httpx.get(f"http://{wrapped_fastapi_url}/seats", headers=headers, timeout=DEADLINE)

    assert response.status_code == status


def test_real_server_lets_a_wrapped_fastapi_apps_customer_through(
    wrapped_fastapi_url: str, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_uv_fastapi_allowed", ["seats-feature"])

    response = httpx.get(
        f"http://{wrapped_fastapi_url}/seats", headers=as_customer("cus_uv_fastapi_allowed"), timeout=DEADLINE
    )

    assert (response.status_code, response.json()) == (200, "seats")
