"""The webhook blueprint at ENTITLEGATE_WEBHOOK_URL: verified events change answers; bad ones 400."""

from __future__ import annotations

import json

import pytest
from flask import Flask, url_for

from entitlegate import Entry, MemoryCache, Resolver, StaticSource
from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory
from tests.stripe_events import sign, signed, subscription_event, summary_event

WEBHOOK = "/stripe/webhook"


def post_event(app: Flask, body: bytes, signature: str | None, url: str = WEBHOOK) -> tuple[int, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    response = app.test_client().post(url, data=body, headers=headers)
    return response.status_code, response.get_json()


def test_summary_event_grants_the_feature_without_asking_stripe(app: Flask, fake_stripe: FakeStripe) -> None:
    status, answer = post_event(app, *signed(summary_event("cus_1", ["seats-feature"])))
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert (status, answer["action"], answer["customer"]) == (200, "applied", "cus_1")
    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_summary_event_revokes_a_cached_feature(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = app.test_client()
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    post_event(app, *signed(summary_event("cus_1", [])))
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403


def test_subscription_event_makes_the_next_check_ask_stripe(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = app.test_client()
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    status, answer = post_event(app, *signed(subscription_event("cus_1")))
    assert (status, answer["action"]) == (200, "invalidated")
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200


def test_answer_names_the_event(app: Flask) -> None:
    event = summary_event("cus_1", ["seats-feature"])
    status, answer = post_event(app, *signed(event))
    assert (status, answer) == (
        200,
        {
            "event_id": event["id"],
            "event_type": "entitlements.active_entitlement_summary.updated",
            "customer": "cus_1",
            "action": "applied",
        },
    )


def test_wrong_signature_is_rejected_and_changes_nothing(app: Flask, fake_stripe: FakeStripe) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    status, answer = post_event(app, body, sign(body, "whsec_someone_else"))
    assert (status, answer["error"]) == (400, "invalid_signature")
    assert app.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403


def test_missing_signature_is_rejected(app: Flask) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    assert post_event(app, body, None)[0] == 400


def test_expired_signature_is_rejected(app: Flask) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    assert post_event(app, body, sign(body, timestamp=1_000_000_000))[0] == 400


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", json.dumps({"object": "charge"}).encode(), b"\xff\xfe", b'{"object": "event"}'],
)
def test_signed_body_that_is_not_a_stripe_event_is_rejected(app: Flask, body: bytes) -> None:
    assert post_event(app, body, sign(body))[0] == 400


def test_rejection_never_echoes_the_secret(app: Flask) -> None:
    body, _ = signed(summary_event("cus_1", ["x"]))
    response = app.test_client().post(WEBHOOK, data=body, headers={"Stripe-Signature": sign(body, "whsec_x")})
    assert app.config["ENTITLEGATE_WEBHOOK_SECRET"] not in response.text


def test_webhook_accepts_post_only(app: Flask) -> None:
    assert app.test_client().get(WEBHOOK).status_code == 405


def test_truncated_event_while_stripe_is_down_asks_for_redelivery(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 401
    status, answer = post_event(app, *signed(summary_event("cus_1", ["a"], has_more=True)))
    assert (status, answer["error"]) == (503, "source_unavailable")


class FullCache(MemoryCache):
    """A cache of the site's own that cannot store anything (any object with the Cache methods will do)."""

    def put(self, customer: str, entry: Entry, *, event: bool) -> bool:
        raise RuntimeError("cache is full")


def test_unexpected_failure_asks_for_redelivery_not_500(make_app: AppFactory) -> None:
    entitlements = Entitlements(resolver=Resolver(StaticSource({}), FullCache()))
    app = make_app(entitlements, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)
    status, answer = post_event(app, *signed(summary_event("cus_1", ["a"])))
    assert (status, answer["error"]) == (503, "source_unavailable")


def test_body_over_the_apps_size_limit_is_werkzeugs_413(make_app: AppFactory) -> None:
    app = make_app(MAX_CONTENT_LENGTH=100)
    body, signature = signed(summary_event("cus_1", ["a"]))
    assert post_event(app, body, signature)[0] == 413


def test_webhook_is_mounted_at_the_configured_url(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_WEBHOOK_URL="/hooks/stripe")
    assert post_event(app, *signed(summary_event("cus_1", ["a"])), url="/hooks/stripe")[0] == 200
    assert app.test_client().post(WEBHOOK).status_code == 404


def test_webhook_url_none_mounts_no_webhook_and_needs_no_secret(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_WEBHOOK_URL=None, ENTITLEGATE_WEBHOOK_SECRET=...)
    assert app.test_client().post(WEBHOOK).status_code == 404
    assert "entitlegate" not in app.blueprints


def test_webhook_endpoint_is_named_for_url_for(app: Flask) -> None:
    with app.test_request_context():
        assert url_for("entitlegate.webhook") == WEBHOOK
