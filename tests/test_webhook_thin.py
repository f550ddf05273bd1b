"""Thin (v2) event deliveries: verified like any other, then answered 200 ``ignored``.

An event destination sends ``{"object": "v2.core.event", ...}`` notifications (the shape
stripe-python's ``parse_event_notification`` reads): a 400 would have Stripe retry them for days.
"""

from __future__ import annotations

from typing import Any

import pytest

from entitlegate import InvalidPayload, InvalidSignature, Resolver, StaticSource, WebhookHandler
from tests import stripe_events as ev


def _thin_event(event_type: str = "v1.billing.meter.error_report_triggered", **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt_test_65RM8sQJSWVJt4LDd1n16SA1xfTNSQHgbpQVvmAqjxhgvPA",
        "object": "v2.core.event",
        "type": event_type,
        "livemode": False,
        "created": "2026-12-02T15:00:00.000Z",
        "context": None,
        "related_object": {"id": "mtr_test_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_test_1"},
        "reason": {"type": "request", "request": {"id": "req_test_1", "idempotency_key": None}},
    }
    event.update(changes)
    return event


@pytest.fixture
def handler() -> WebhookHandler:
    resolver = Resolver(StaticSource({"cus_1": ["seats-feature"]}))
    return WebhookHandler(resolver, ev.SECRET)


@pytest.mark.parametrize(
    "event_type", ["v1.billing.meter.error_report_triggered", "v1.entitlements.active_entitlement_summary.updated"]
)
def test_a_thin_event_is_verified_and_ignored(handler: WebhookHandler, event_type: str) -> None:
    payload = _thin_event(event_type)

    result = handler.handle(*ev.signed(payload))

    assert (result.event_id, result.event_type, result.customer, result.action) == (
        payload["id"],
        event_type,
        None,
        "ignored",
    )


def test_a_thin_event_delivery_is_answered_200(handler: WebhookHandler) -> None:
    answer = handler.respond(*ev.signed(_thin_event()))

    assert answer.status == 200
    assert answer.body["action"] == "ignored"


def test_a_thin_event_with_a_bad_signature_is_refused(handler: WebhookHandler) -> None:
    body, _ = ev.signed(_thin_event())
    with pytest.raises(InvalidSignature):
        handler.handle(body, ev.sign(body, "whsec_someone_else"))


def test_a_thin_event_without_an_id_is_an_invalid_payload(handler: WebhookHandler) -> None:
    with pytest.raises(InvalidPayload, match="id"):
        handler.handle(*ev.signed(_thin_event(id=None)))
