"""Websockets: a refused one is turned away before it is accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.websockets import WebSocketDisconnect

from tests.asgi.support import JSON, TestClient, WebSocketDenialResponse, as_customer, websocket_refusal
from tests.fake_stripe import FakeStripe

MakeApp = Callable[..., Starlette]


def without_denial_response(app: Any) -> Any:
    """The app as a server without the ``websocket.http.response`` extension would run it."""

    async def run(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}
        await app(scope, receive, send)

    return run


def test_websocket_with_the_feature_is_accepted(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    with TestClient(make_app()).websocket_connect("/pro/live", headers=as_customer("cus_1")) as websocket:
        assert websocket.receive_text() == "welcome"


def test_websocket_without_the_feature_is_refused_with_http_403(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    refusal = websocket_refusal(TestClient(make_app()), "/pro/live", as_customer("cus_1", **JSON))

    assert refusal.status_code == 403
    assert refusal.json() == {"error": "feature_required", "feature": "seats-feature"}


def test_websocket_without_a_customer_is_refused_with_http_401(make_app: MakeApp) -> None:
    assert websocket_refusal(TestClient(make_app()), "/pro/live").status_code == 401


def test_websocket_refused_where_the_server_cannot_answer_http_is_closed_with_1008(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = TestClient(without_denial_response(make_app()))

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/pro/live", headers=as_customer("cus_1")),
    ):
        pass

    assert closed.value.code == 1008


def test_websocket_in_an_outage_is_closed_with_try_again_later(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500
    client = TestClient(without_denial_response(make_app()))

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/pro/live", headers=as_customer("cus_1")),
    ):
        pass

    assert closed.value.code == 1013


def test_websocket_no_rule_gates_is_accepted_without_asking_stripe(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    with TestClient(make_app()).websocket_connect("/free/live", headers=as_customer("cus_1")) as websocket:
        assert websocket.receive_text() == "welcome"

    assert fake_stripe.calls() == 0


@pytest.mark.parametrize(
    ("customer", "features", "outage", "status", "close_code"),
    [
        (None, [], False, 401, 1008),
        ("cus_1", [], False, 403, 1008),
        ("cus_1", [], True, 503, 1013),
    ],
    ids=["no customer", "no feature", "outage"],
)
def test_every_refusal_has_an_http_status_and_a_close_code(
    make_app: MakeApp,
    fake_stripe: FakeStripe,
    customer: str | None,
    features: list[str],
    outage: bool,
    status: int,
    close_code: int,
) -> None:
    fake_stripe.set_customer("cus_1", features)
    if outage:
        fake_stripe.always_fail = 500
    headers = as_customer(customer) if customer else {}
    app = make_app()

    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        TestClient(app).websocket_connect("/pro/live", headers=headers),
    ):
        pass
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        TestClient(without_denial_response(app)).websocket_connect("/pro/live", headers=headers),
    ):
        pass

    assert (denied.value.status_code, closed.value.code) == (status, close_code)
