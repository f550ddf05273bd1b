"""Helpers the ASGI tests share: who the customer is, a few endpoints, and Starlette's TestClient.

Who the customer is comes from an ``x-customer`` header: the stand-in for a site's own sign-in,
which is not what these tests are about.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

with warnings.catch_warnings():
    # Starlette 1.x's TestClient prefers httpx2 and warns (an error under filterwarnings=error)
    # when it falls back to httpx. Imported once here, the module is cached for every test.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient` is deprecated")
    from starlette.testclient import TestClient, WebSocketDenialResponse

__all__ = [
    "JSON",
    "TestClient",
    "WebSocketDenialResponse",
    "as_customer",
    "customer_from_header",
    "default_routes",
    "echo_websocket",
    "ok",
    "show_features",
    "websocket_refusal",
]

JSON = {"accept": "application/json"}


def customer_from_header(scope: dict[str, Any]) -> str | None:
    """The request's customer, as a site's sign-in would find it."""
    for name, value in scope["headers"]:
        if name == b"x-customer":
            return str(value.decode())
    return None


def as_customer(customer: str, **headers: str) -> dict[str, str]:
    """Request headers that sign the request in as ``customer``."""
    return {"x-customer": customer, **headers}


async def show_features(request: Request) -> Response:
    """An endpoint that reads what the middleware put in the scope, loading it if need be."""
    entitlements = await request.state.entitlements.load()
    return JSONResponse({"customer": entitlements.customer, "features": sorted(entitlements.features)})


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def echo_websocket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


def default_routes() -> list[BaseRoute]:
    """``/pro`` (ruled in most tests), ``/products``, ``/free``, ``/features`` and two websockets."""
    return [
        Route("/pro", ok),
        Route("/pro/reports", show_features),
        Route("/products", ok),
        Route("/free", ok),
        Route("/features", show_features),
        WebSocketRoute("/pro/live", echo_websocket),
        WebSocketRoute("/free/live", echo_websocket),
    ]


def websocket_refusal(client: TestClient, path: str, headers: dict[str, str] | None = None) -> WebSocketDenialResponse:
    """The HTTP response a websocket handshake to ``path`` is refused with, before any accept."""
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(path, headers=headers or {}):
        pass
    return denied.value
