"""Stripe webhook events for our tests: entitlegate.testing's builders with the tests' secret.

The signature is computed from the documented scheme (``t=<ts>,v1=<hex HMAC-SHA256(secret,
"<ts>.<body>")>``) in entitlegate.testing, independently of the stripe SDK that entitlegate
verifies it with.
"""

from __future__ import annotations

from typing import Any

from entitlegate import testing
from entitlegate.testing import customer_deleted_event, subscription_event, summary_event

__all__ = ["SECRET", "customer_deleted_event", "event", "sign", "signed", "subscription_event", "summary_event"]

SECRET = "whsec_test_secret_0123456789"


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    livemode: bool = False,
    event_id: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """An event of any type (``invoice.paid``, …) around ``obj``."""
    return testing._event(event_type, obj, livemode, created, event_id, account)


def sign(body: bytes, secret: str = SECRET, *, timestamp: int | None = None) -> str:
    return testing.sign(body, secret, timestamp=timestamp)


def signed(payload: dict[str, Any], secret: str = SECRET, *, timestamp: int | None = None) -> tuple[bytes, str]:
    """The body bytes and the ``Stripe-Signature`` header for ``payload``."""
    return testing.signed(payload, secret, timestamp=timestamp)
