"""The answers to a refused request: 401, 403 or 503 over HTTP; a websocket is refused before accept."""

from __future__ import annotations

import json
from collections.abc import Mapping

from entitlegate.gate import denial_body, denial_shortfall, denial_usage, prefers_json
from entitlegate_asgi._types import Receive, Scope, Send

__all__ = ["NO_CUSTOMER", "UNAVAILABLE", "Refusal", "denied"]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
# Close codes for a websocket refused where the server cannot send an HTTP status (RFC 6455 §7.4.1):
# 1008 policy violation; 1013 try again later.
_POLICY_VIOLATION = 1008
_TRY_AGAIN_LATER = 1013


class Refusal:
    """An ASGI app that refuses one request, with JSON for clients that accept it, plain text otherwise.

    Over HTTP it answers ``status``. A websocket is refused before it is accepted: with that HTTP
    status where the server offers the ``websocket.http.response`` extension, else by closing
    with ``close_code``.
    """

    __slots__ = ("_json", "_text", "close_code", "error", "status")

    def __init__(
        self, status: int, error: str, text: str, *, body: Mapping[str, object] | None = None, close_code: int
    ) -> None:
        self.status = status
        self.error = error
        self.close_code = close_code
        self._json = json.dumps({"error": error} if body is None else dict(body)).encode()
        self._text = text.encode()

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self._json.decode()})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = (self._json, _JSON) if _accepts_json(scope) else (self._text, _TEXT)
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"vary", b"accept"),
        ]
        if scope["type"] != "websocket":
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": self.status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": self.close_code, "reason": self.error})


def _accepts_json(scope: Scope) -> bool:
    accept = ", ".join(value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"accept")
    return prefers_json(accept)


def denied(feature: str) -> Refusal:
    """403 for the denial naming ``feature``: a lookup_key the customer lacks, a limit or a meter they exceed.

    The JSON body is :func:`entitlegate.gate.denial_body`'s, as in every adapter.
    """
    body = denial_body(feature)
    shortfall = denial_shortfall(feature)
    usage = denial_usage(feature)
    if usage is not None:
        text = f"Forbidden: the plan allows {usage.limit} {usage.meter} this period, and {usage.usage} are used.\n"
    elif shortfall is None:
        text = f"Forbidden: this needs the feature {feature}.\n"
    else:
        text = f"Forbidden: this needs {shortfall.need} {shortfall.limit}; the plan allows {shortfall.allowed}.\n"
    return Refusal(403, str(body["error"]), text, body=body, close_code=_POLICY_VIOLATION)


NO_CUSTOMER = Refusal(
    401, "customer_required", "Unauthorized: sign in as a customer first.\n", close_code=_POLICY_VIOLATION
)
UNAVAILABLE = Refusal(
    503,
    "entitlements_unavailable",
    "Service unavailable: entitlements cannot be checked right now.\n",
    close_code=_TRY_AGAIN_LATER,
)
