"""Section 2, ASGI: raw ASGI calls into a Starlette app, with ``EntitlementMiddleware`` and without."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench._timing import Row
from bench.overhead import CUSTOMER, FEATURE, FEATURES, overhead_rows
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_asgi import EntitlementMiddleware

_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/pro",
    "raw_path": b"/pro",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"x-customer", CUSTOMER.encode())],
    "client": ("127.0.0.1", 50000),
    "server": ("bench", 80),
}


def customer(scope: MutableMapping[str, Any]) -> str | None:
    """The request's customer, from an ``X-Customer`` header."""
    for name, value in scope["headers"]:
        if name == b"x-customer":
            return str(value.decode("latin-1"))
    return None


def make_app(*, gated: bool) -> Starlette:
    """A Starlette app serving ``/pro``; gated, it has the middleware with a rule for ``/pro``."""

    async def view(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    middleware = []
    if gated:
        resolver = Resolver(StaticSource({CUSTOMER: FEATURES}), MemoryCache())
        middleware.append(
            Middleware(EntitlementMiddleware, resolver=resolver, customer=customer, rules={"/pro": FEATURE})
        )
    return Starlette(routes=[Route("/pro", view)], middleware=middleware)


def run(*, quick: bool = False) -> list[Row]:
    """µs per raw ASGI request (no server, no test client), without and with the middleware."""
    loop = asyncio.new_event_loop()
    try:
        return overhead_rows(
            "Starlette, raw ASGI call",
            _requests(loop, make_app(gated=False)),
            _requests(loop, make_app(gated=True)),
            number=20 if quick else 200,
            rounds=4 if quick else 300,
            goal=False,
        )
    finally:
        loop.close()


def _requests(loop: asyncio.AbstractEventLoop, app: Starlette) -> Callable[[int], object]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message)

    async def batch(count: int) -> None:
        for _ in range(count):
            await app(dict(_SCOPE), receive, send)  # Starlette writes into the scope: one per request

    loop.run_until_complete(batch(1))
    if sent[-1]["status"] != 200:
        raise RuntimeError(f"the Starlette app answered {sent[-1]['status']}, not 200: the bench is broken")
    sent.clear()

    def run_batch(count: int) -> None:
        loop.run_until_complete(batch(count))
        sent.clear()

    return run_batch
