"""``webhook_app``: the ASGI app Stripe delivers its webhooks to, keeping the cache true."""

from __future__ import annotations

import json
import logging
from typing import Any

from entitlegate.webhooks import WebhookHandler
from entitlegate_asgi._types import ASGIApp, Receive, Scope, Send

__all__ = ["webhook_app"]

logger = logging.getLogger("entitlegate")


def webhook_app(handler: WebhookHandler) -> ASGIApp:
    """An ASGI app for the URL Stripe sends webhooks to: ``Route("/stripe/webhook", webhook_app(handler))``.

    It takes POST only (405 otherwise), reads the whole body, and has ``handler.arespond`` verify
    and apply it: 200 with the outcome as JSON; 400 for a bad signature or a body that is no Stripe
    event; 503 when the event could not be applied for an outage, so that Stripe delivers it again.
    Raises ``TypeError`` unless ``handler`` is a :class:`~entitlegate.WebhookHandler`.
    """
    if not isinstance(handler, WebhookHandler):
        raise TypeError(f"webhook_app needs an entitlegate.WebhookHandler, got {handler!r}")
    return _WebhookApp(handler)


class _WebhookApp:
    __slots__ = ("handler",)

    def __init__(self, handler: WebhookHandler) -> None:
        self.handler = handler

    def __repr__(self) -> str:
        return f"webhook_app({self.handler!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Stripe webhooks are HTTP POSTs"})
            return
        if scope["method"] != "POST":
            await _respond(send, 405, {"error": "method_not_allowed"}, ((b"allow", b"POST"),))
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        signature = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"stripe-signature"), None
        )
        answer = await self.handler.arespond(body, signature)
        await _respond(send, answer.status, answer.body)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, answer: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Served on its own by an ASGI server, the app has nothing to start or stop, but says so.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
