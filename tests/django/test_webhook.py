"""The stripe_webhook view: 200 for what the handler did, 400 for bad input, never 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from entitlegate import Resolver
from tests.fake_stripe import FakeStripe
from tests.stripe_events import customer_deleted_event, signed, subscription_event, summary_event

URL = "/stripe/webhook/"


def _post(client: Client, body: bytes, header: str | None) -> Any:
    headers = {"Stripe-Signature": header} if header is not None else {}
    return client.post(URL, body, content_type="application/json", headers=headers)


def test_summary_event_is_applied(client: Client, resolver: Resolver, fake_stripe: FakeStripe) -> None:
    body, header = signed(summary_event("cus_1", ["seats-feature"], event_id="evt_1"))

    response = _post(client, body, header)

    assert response.status_code == 200
    assert response.json() == {
        "event_id": "evt_1",
        "event_type": "entitlements.active_entitlement_summary.updated",
        "customer": "cus_1",
        "action": "applied",
    }
    assert resolver.features("cus_1") == {"seats-feature"}
    assert fake_stripe.calls() == 0


@pytest.mark.django_db
def test_a_webhook_changes_what_the_next_request_sees(
    customer_client: Client, client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    assert customer_client.get("/seats/").status_code == 403
    body, header = signed(summary_event("cus_1", ["seats-feature"]))

    _post(client, body, header)

    assert customer_client.get("/seats/").status_code == 200
    assert fake_stripe.calls() == 1


def test_a_redelivered_event_is_a_duplicate(client: Client) -> None:
    body, header = signed(summary_event("cus_1", ["seats-feature"]))
    _post(client, body, header)

    response = _post(client, body, header)

    assert response.status_code == 200
    assert response.json()["action"] == "duplicate"


def test_an_older_event_is_stale(client: Client, resolver: Resolver) -> None:
    _post(client, *signed(summary_event("cus_1", ["seats-feature"], created=2_000_000_000)))

    response = _post(client, *signed(summary_event("cus_1", [], created=1_900_000_000)))

    assert response.json()["action"] == "stale"
    assert resolver.features("cus_1") == {"seats-feature"}


def test_an_unrelated_event_is_ignored(client: Client) -> None:
    from tests.stripe_events import event

    response = _post(client, *signed(event("invoice.paid", {"id": "in_1", "object": "invoice"})))

    assert response.status_code == 200
    assert response.json()["action"] == "ignored"


@pytest.mark.parametrize(
    ("payload", "action"), [(subscription_event("cus_1"), "invalidated"), (customer_deleted_event("cus_1"), "applied")]
)
def test_subscription_and_customer_events_invalidate(client: Client, payload: dict[str, object], action: str) -> None:
    response = _post(client, *signed(payload))

    assert response.status_code == 200
    assert response.json()["action"] == action


def test_a_bad_signature_is_400(client: Client, resolver: Resolver, fake_stripe: FakeStripe) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))
    _, wrong = signed(summary_event("cus_1", ["seats-feature"]), secret="whsec_someone_else")

    response = _post(client, body, wrong)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_signature"
    assert "Stripe-Signature" in response.json()["message"]
    fake_stripe.set_customer("cus_1", [])
    assert resolver.features("cus_1") == frozenset()


def test_a_missing_signature_is_400(client: Client) -> None:
    body, _ = signed(summary_event("cus_1", ["seats-feature"]))

    assert _post(client, body, None).status_code == 400


def test_a_signed_body_that_is_not_an_event_is_400(client: Client) -> None:
    from tests.stripe_events import sign

    body = b'{"hello": "world"}'

    assert _post(client, body, sign(body)).status_code == 400


def test_a_body_that_is_not_json_is_400(client: Client) -> None:
    from tests.stripe_events import sign

    body = b"\xff\xfe not json"

    assert _post(client, body, sign(body)).status_code == 400


def test_an_old_signature_is_400(client: Client) -> None:
    body, header = signed(summary_event("cus_1", ["seats-feature"]), timestamp=1_000_000_000)

    assert _post(client, body, header).status_code == 400


def test_the_error_never_shows_the_secret(client: Client) -> None:
    from tests.stripe_events import SECRET

    body, _ = signed(summary_event("cus_1", ["seats-feature"]))

    response = _post(client, body, "t=1,v1=00")

    assert SECRET.encode() not in response.content


def test_a_truncated_event_during_an_outage_is_503_so_stripe_retries(client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    response = _post(client, *signed(summary_event("cus_1", ["a"], has_more=True)))

    assert response.status_code == 503


def test_get_is_405(client: Client) -> None:
    assert client.get(URL).status_code == 405


def test_the_webhook_is_csrf_exempt() -> None:
    client = Client(enforce_csrf_checks=True)

    response = _post(client, *signed(summary_event("cus_1", ["seats-feature"])))

    assert response.status_code == 200


def test_without_a_webhook_secret_the_view_answers_503(client: Client, configure: Callable[..., None]) -> None:
    configure(WEBHOOK_SECRET=None)

    response = _post(client, *signed(summary_event("cus_1", ["seats-feature"])))

    assert response.status_code == 503


@pytest.mark.parametrize("url", ["/stripe/webhook/", "/stripe/awebhook/"])
def test_a_body_over_the_upload_limit_is_a_json_400_like_every_adapter_gives(
    client: Client, settings: Any, resolver: Resolver, url: str
) -> None:
    body, header = signed(summary_event("cus_1", ["seats-feature"]))
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body) - 1

    response = client.post(url, body, content_type="application/json", headers={"Stripe-Signature": header})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["message"]
