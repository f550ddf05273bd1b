"""ASGI manners, driven by hand: lifespan passes through, the caller's scope is never changed."""

from __future__ import annotations

import copy
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from entitlegate import Resolver
from entitlegate_asgi import EntitlementMiddleware, Entitlements
from tests.asgi.support import TestClient, as_customer, customer_from_header
from tests.fake_stripe import FakeStripe

Scope = dict[str, Any]


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    """An ASGI app that records what it was called with and answers 200 to HTTP."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Any, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls.append((scope, receive, send))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})


def http_scope(path: str, **extra: Any) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-customer", b"cus_1")],
        **extra,
    }


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def send(sent: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return send


@pytest.mark.asyncio
async def test_lifespan_scope_reaches_the_app_untouched(resolver: Resolver, send: Any) -> None:
    app = Recorder()
    middleware = EntitlementMiddleware(app, resolver=resolver, customer=customer_from_header, rules={"/": "x"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    await middleware(scope, receive, send)

    assert app.calls == [(scope, receive, send)]
    assert app.calls[0][0] is scope
    assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/pro", "/free"])
async def test_callers_scope_is_not_changed(
    resolver: Resolver, fake_stripe: FakeStripe, send: Any, sent: list[dict[str, Any]], path: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    app = Recorder()
    middleware = EntitlementMiddleware(
        app, resolver=resolver, customer=customer_from_header, rules={"/pro": "seats-feature"}
    )
    scope = http_scope(path, state={"from_lifespan": "kept"})
    before = copy.deepcopy(scope)

    await middleware(scope, receive, send)

    assert scope == before
    assert sent[0]["status"] == 200
    seen = app.calls[0][0]
    assert seen is not scope
    assert seen["state"]["from_lifespan"] == "kept"
    assert isinstance(seen["state"]["entitlements"], Entitlements)


@pytest.mark.asyncio
async def test_scope_without_state_gets_one_holding_the_entitlements(resolver: Resolver, send: Any) -> None:
    app = Recorder()
    middleware = EntitlementMiddleware(app, resolver=resolver, customer=customer_from_header)
    scope = http_scope("/free")

    await middleware(scope, receive, send)

    assert "state" not in scope
    assert isinstance(app.calls[0][0]["state"]["entitlements"], Entitlements)


@pytest.mark.asyncio
async def test_unknown_scope_type_passes_through_untouched(resolver: Resolver, send: Any) -> None:
    app = Recorder()
    middleware = EntitlementMiddleware(app, resolver=resolver, customer=customer_from_header, rules={"/": "x"})
    scope = {"type": "webtransport", "path": "/pro"}

    await middleware(scope, receive, send)

    assert app.calls == [(scope, receive, send)]


@pytest.mark.asyncio
async def test_rules_match_the_path_below_root_path(resolver: Resolver, send: Any, sent: list[dict[str, Any]]) -> None:
    app = Recorder()
    middleware = EntitlementMiddleware(app, resolver=resolver, customer=lambda scope: None, rules={"/pro": "x"})

    await middleware(http_scope("/api/pro", root_path="/api"), receive, send)

    assert sent[0]["status"] == 401
    assert app.calls == []


def test_lifespan_state_and_entitlements_both_reach_the_request(make_app: Callable[..., Starlette]) -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        yield {"greeting": "hello"}

    async def both(request: Request) -> Response:
        return JSONResponse([request.state.greeting, type(request.state.entitlements).__name__])

    app = make_app([Route("/both", both)])
    app.router.lifespan_context = lifespan

    with TestClient(app) as client:
        response = client.get("/both", headers=as_customer("cus_1"))

    assert response.json() == ["hello", "Entitlements"]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/pro", "/free"])
async def test_request_leaves_no_reference_cycles_behind(
    resolver: Resolver, fake_stripe: FakeStripe, path: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def discard(message: dict[str, Any]) -> None:
        pass

    middleware = EntitlementMiddleware(
        app, resolver=resolver, customer=customer_from_header, rules={"/pro": "seats-feature"}
    )
    await middleware(http_scope(path), receive, discard)  # the first request fetches from Stripe
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            await middleware(http_scope(path), receive, discard)
        garbage = gc.collect()
    finally:
        gc.enable()

    assert garbage == 0  # a cycle per request would leave the scope and its state for the collector
