"""webhook_app: Stripe's deliveries verified and applied, bad ones answered 400, never 500."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette

from entitlegate import Resolver, WebhookHandler
from entitlegate_asgi import webhook_app
from tests.asgi.support import TestClient, as_customer
from tests.fake_stripe import FakeStripe
from tests.stripe_events import SECRET, signed, subscription_event, summary_event

MakeApp = Callable[..., Starlette]
URL = "/stripe/webhook"


def deliver(client: TestClient, body: bytes, signature: str) -> Any:
    return client.post(URL, content=body, headers={"stripe-signature": signature, "content-type": "application/json"})


def test_summary_event_is_applied_and_answered_200(make_app: MakeApp) -> None:
    event = summary_event("cus_1", ["seats-feature"])

    response = deliver(TestClient(make_app()), *signed(event))

    assert response.status_code == 200
    assert response.json() == {
        "event_id": event["id"],
        "event_type": event["type"],
        "customer": "cus_1",
        "action": "applied",
    }


def test_applied_event_lets_the_next_gated_request_through_without_asking_stripe(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    client = TestClient(make_app())

    deliver(client, *signed(summary_event("cus_1", ["seats-feature"])))
    response = client.get("/pro", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_subscription_event_invalidates_the_customer(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = TestClient(make_app())
    assert client.get("/pro", headers=as_customer("cus_1")).status_code == 403
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = deliver(client, *signed(subscription_event("cus_1")))

    assert response.json()["action"] == "invalidated"
    assert client.get("/pro", headers=as_customer("cus_1")).status_code == 200


def test_bad_signature_is_answered_400(make_app: MakeApp) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    _, other_signature = signed(summary_event("cus_1", ["other"]), "whsec_someone_else")

    response = deliver(TestClient(make_app()), body, other_signature)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"


def test_missing_signature_is_answered_400(make_app: MakeApp) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))

    response = TestClient(make_app()).post(URL, content=body)

    assert response.status_code == 400


def test_signed_body_that_is_no_stripe_event_is_answered_400(make_app: MakeApp) -> None:
    response = deliver(TestClient(make_app()), *signed({"object": "not-an-event"}))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"


def test_refusal_names_no_secret_in_the_answer_or_the_log(make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    caplog.set_level(logging.DEBUG)

    response = deliver(TestClient(make_app()), body, "t=1,v1=deadbeef")

    assert response.status_code == 400
    assert SECRET not in response.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_anything_but_post_is_answered_405(make_app: MakeApp, method: str) -> None:
    response = TestClient(make_app()).request(method, URL)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_truncated_event_that_cannot_be_refetched_is_answered_503(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    response = deliver(TestClient(make_app()), *signed(summary_event("cus_1", ["seats-feature"], has_more=True)))

    assert response.status_code == 503
    assert response.json()["error"] == "source_unavailable"


@pytest.mark.asyncio
async def test_body_arriving_in_chunks_is_read_whole(resolver: Resolver) -> None:
    app = webhook_app(WebhookHandler(resolver, SECRET))
    body, signature = signed(summary_event("cus_1", ["seats-feature"]))
    chunks = [body[:10], body[10:50], body[50:]]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": URL, "headers": [(b"stripe-signature", signature.encode())]}
    await app(scope, receive, send)

    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["action"] == "applied"
    assert await resolver.afeatures("cus_1") == {"seats-feature"}


def test_webhook_app_needs_a_webhook_handler(resolver: Resolver) -> None:
    with pytest.raises(TypeError, match="WebhookHandler"):
        webhook_app(resolver)  # type: ignore[arg-type]


def test_webhook_app_repr_shows_no_secret(resolver: Resolver) -> None:
    assert SECRET not in repr(webhook_app(WebhookHandler(resolver, SECRET)))
