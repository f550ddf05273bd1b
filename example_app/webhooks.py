"""The webhooks the demo sends in Stripe's place: events signed as Stripe signs them, over HTTP.

Stripe signs a delivery with the endpoint's secret: ``Stripe-Signature: t=<unix time>,v1=<hex
HMAC-SHA256(secret, "<t>.<body>")>``. The upgrade button and ``make demo`` do the same with the
demo secret (events built and signed by ``entitlegate.testing``), so the apps verify these events
exactly as they verify Stripe's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from entitlegate import testing

__all__ = ["Delivery", "adeliver", "deliver"]

_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a webhook endpoint answered: its status and, from its JSON, the action or the error."""

    status: int
    action: str | None
    detail: str | None

    def __str__(self) -> str:
        return f"{self.status} {self.action or self.detail or ''}".strip()


def _request(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body, signature = testing.signed(event, secret)
    return body, {"Content-Type": "application/json", "Stripe-Signature": signature}


def _delivery(response: httpx.Response) -> Delivery:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return Delivery(response.status_code, None, response.text[:200] or None)
    # Every adapter answers alike: "action" when handled, "error" and "message" when not.
    action, detail = answer.get("action"), answer.get("message") or answer.get("error")
    return Delivery(response.status_code, str(action) if action else None, str(detail) if detail else None)


def deliver(url: str, event: dict[str, Any], secret: str) -> Delivery:
    """POST ``event``, signed with ``secret``, to the webhook endpoint at ``url``.

    Raises ``httpx.HTTPError`` when the endpoint cannot be reached.
    """
    body, headers = _request(event, secret)
    with httpx.Client(timeout=_TIMEOUT) as client:
        return _delivery(client.post(url, content=body, headers=headers))


async def adeliver(url: str, event: dict[str, Any], secret: str) -> Delivery:
    """Async twin of :func:`deliver`, for an app that must not block its event loop (it serves the POST)."""
    body, headers = _request(event, secret)
    async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
        return _delivery(await client.post(url, content=body, headers=headers))
