"""The webhooks the demo sends in Stripe's place: events signed as Stripe signs them, over HTTP.

Stripe signs a delivery with the endpoint's secret: ``Stripe-Signature: t=<unix time>,v1=<hex
HMAC-SHA256(secret, "<t>.<body>")>``. The upgrade button and ``make demo`` do the same with the
demo secret, so the apps verify these events exactly as they verify Stripe's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Delivery", "adeliver", "deliver", "sign", "subscription_updated", "summary_updated"]

_TIMEOUT = 10.0


def summary_updated(customer: str, lookup_keys: Iterable[str]) -> dict[str, Any]:
    """An ``entitlements.active_entitlement_summary.updated`` event: ``customer`` now holds ``lookup_keys``.

    A summary replaces the customer's whole set, so pass every feature they should hold.
    """
    keys = sorted(set(lookup_keys))
    entitlements = [
        {
            "id": f"ent_demo_{index}",
            "object": "entitlements.active_entitlement",
            "feature": f"feat_demo_{key}",
            "livemode": False,
            "lookup_key": key,
        }
        for index, key in enumerate(keys)
    ]
    summary = {
        "object": "entitlements.active_entitlement_summary",
        "customer": customer,
        "entitlements": {
            "object": "list",
            "data": entitlements,
            "has_more": False,
            "url": f"/v1/customer/{customer}/entitlements",
        },
        "livemode": False,
    }
    return _event("entitlements.active_entitlement_summary.updated", summary)


def subscription_updated(customer: str) -> dict[str, Any]:
    """A ``customer.subscription.updated`` event: the next check re-reads the customer's features."""
    subscription = {"id": "sub_demo", "object": "subscription", "customer": customer, "status": "active"}
    return _event("customer.subscription.updated", subscription)


def _event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    # Test mode (livemode false): the example apps accept test-mode keys only.
    return {
        "id": f"evt_demo_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``body``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a webhook endpoint answered: its status and, from its JSON, the action or the error."""

    status: int
    action: str | None
    detail: str | None

    def __str__(self) -> str:
        return f"{self.status} {self.action or self.detail or ''}".strip()


def _request(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret)}


def _delivery(response: httpx.Response) -> Delivery:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return Delivery(response.status_code, None, response.text[:200] or None)
    # The adapters all name the action "action"; an error is "error" (ASGI adds a "message").
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
