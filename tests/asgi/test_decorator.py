"""@requires_feature on Starlette endpoints: functions, HTTPEndpoint methods and websockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from entitlegate_asgi import requires_feature
from tests.asgi.support import JSON, TestClient, as_customer, websocket_refusal
from tests.fake_stripe import FakeStripe

MakeApp = Callable[..., Starlette]


@requires_feature("seats-feature")
async def seats(request: Request) -> Response:
    return JSONResponse(sorted(request.state.entitlements.features))


@requires_feature("seats-feature")
def sync_seats(request: Request) -> Response:
    return PlainTextResponse("on the event loop" if _on_event_loop() else "in a worker thread")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@requires_feature(any_of=("analytics", "export"))
async def reports(request: Request) -> Response:
    return PlainTextResponse("reports")


class Seats(HTTPEndpoint):
    @requires_feature("seats-feature")
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("get")

    @requires_feature("seats-feature")
    def post(self, request: Request) -> Response:
        return PlainTextResponse("post")


@requires_feature("seats-feature")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


ROUTES = [
    Route("/seats", seats),
    Route("/sync-seats", sync_seats),
    Route("/reports", reports),
    Route("/endpoint", Seats),
    WebSocketRoute("/live", live),
]


@pytest.fixture
def client(make_app: MakeApp) -> TestClient:
    return TestClient(make_app(ROUTES, rules={}))


def test_async_endpoint_runs_for_a_customer_with_the_feature(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = client.get("/seats", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert response.json() == ["seats-feature"]


def test_async_endpoint_refuses_a_customer_without_the_feature(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = client.get("/seats", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 403
    assert response.json() == {"error": "feature_required", "feature": "seats-feature"}


def test_endpoint_refuses_a_request_without_a_customer_with_401(client: TestClient) -> None:
    assert client.get("/seats").status_code == 401


def test_endpoint_answers_503_in_an_outage(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503

    assert client.get("/seats", headers=as_customer("cus_1")).status_code == 503


def test_sync_endpoint_is_gated_and_still_runs_in_the_thread_pool(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", [])

    allowed = client.get("/sync-seats", headers=as_customer("cus_1"))
    refused = client.get("/sync-seats", headers=as_customer("cus_2"))

    assert (allowed.status_code, allowed.text) == (200, "in a worker thread")
    assert refused.status_code == 403


def test_any_of_lets_through_a_customer_holding_one_of_them(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["export"])
    fake_stripe.set_customer("cus_2", ["seats-feature"])

    assert client.get("/reports", headers=as_customer("cus_1")).status_code == 200
    assert client.get("/reports", headers=as_customer("cus_2")).status_code == 403


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_http_endpoint_methods_are_gated(client: TestClient, fake_stripe: FakeStripe, method: str) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", [])

    allowed = client.request(method, "/endpoint", headers=as_customer("cus_1"))
    refused = client.request(method, "/endpoint", headers=as_customer("cus_2"))

    assert (allowed.status_code, allowed.text) == (200, method.lower())
    assert refused.status_code == 403


def test_websocket_endpoint_is_refused_before_accept(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    refusal = websocket_refusal(client, "/live", as_customer("cus_1"))

    assert refusal.status_code == 403


def test_websocket_endpoint_is_accepted_with_the_feature(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    with client.websocket_connect("/live", headers=as_customer("cus_1")) as websocket:
        assert websocket.receive_text() == "welcome"


def test_refusal_goes_through_on_denied(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    def upgrade(scope: dict[str, Any], feature: str) -> Response:
        return RedirectResponse(f"/upgrade/{feature}", status_code=303)

    client = TestClient(make_app(ROUTES, rules={}, on_denied=upgrade))
    response = client.get("/seats", headers=as_customer("cus_1"), follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/upgrade/seats-feature")


def test_endpoint_without_the_middleware_fails_saying_so(fake_stripe: FakeStripe) -> None:
    client = TestClient(Starlette(routes=ROUTES))

    with pytest.raises(RuntimeError, match="requires_feature needs EntitlementMiddleware"):
        client.get("/seats", headers=as_customer("cus_1"))


def test_function_without_a_request_parameter_is_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match='no "request" or "websocket" parameter'):

        @requires_feature("seats-feature")
        async def endpoint(req: Request) -> Response:
            raise AssertionError


def test_blank_feature_is_refused_at_decoration() -> None:
    with pytest.raises(ValueError, match="non-blank"):
        requires_feature(" ")


def test_any_of_given_as_a_string_is_refused_at_decoration() -> None:
    # any_of="analytics" once meant any of its letters: a customer holding "a" got in.
    with pytest.raises(TypeError, match="any_of"):
        requires_feature(any_of="analytics")
