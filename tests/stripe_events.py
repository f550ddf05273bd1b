"""Stripe webhook events for tests, signed the way Stripe signs them.

Shapes follow ``../shared/stripe/entitlements_subset.json`` (its synthetic summary event).
The signature is computed here from the documented scheme, independently of the SDK that
entitlegate verifies it with: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterable
from typing import Any

SECRET = "whsec_test_secret_0123456789"
_ids = itertools.count(1)


def sign(body: bytes, secret: str = SECRET, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    livemode: bool = False,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{next(_ids):06d}",
        "object": "event",
        "api_version": "2026-07-29.dahlia",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def summary_event(
    customer: str, lookup_keys: Iterable[str], *, has_more: bool = False, livemode: bool = False, **kwargs: Any
) -> dict[str, Any]:
    entitlements = [
        {
            "id": f"ent_test_{customer}_{i}",
            "object": "entitlements.active_entitlement",
            "feature": f"feat_test_{key}",
            "livemode": livemode,
            "lookup_key": key,
        }
        for i, key in enumerate(lookup_keys)
    ]
    summary = {
        "object": "entitlements.active_entitlement_summary",
        "customer": customer,
        "entitlements": {
            "object": "list",
            "data": entitlements,
            "has_more": has_more,
            "url": f"/v1/customer/{customer}/entitlements",
        },
        "livemode": livemode,
    }
    return event("entitlements.active_entitlement_summary.updated", summary, livemode=livemode, **kwargs)


def subscription_event(customer: str, kind: str = "updated", **kwargs: Any) -> dict[str, Any]:
    obj = {"id": "sub_test_1", "object": "subscription", "customer": customer, "status": "active"}
    return event(f"customer.subscription.{kind}", obj, **kwargs)


def customer_deleted_event(customer: str, **kwargs: Any) -> dict[str, Any]:
    return event("customer.deleted", {"id": customer, "object": "customer", "deleted": True}, **kwargs)


def signed(payload: dict[str, Any], secret: str = SECRET, *, timestamp: int | None = None) -> tuple[bytes, str]:
    """The body bytes and the ``Stripe-Signature`` header for ``payload``."""
    body = json.dumps(payload).encode()
    return body, sign(body, secret, timestamp=timestamp)
