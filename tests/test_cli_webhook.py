"""``entitlegate webhook setup`` / ``check``, as real subprocesses against the fake Stripe."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
import stripe.params

from entitlegate import WebhookHandler
from entitlegate.webhooks import HANDLED_EVENTS, SUMMARY_UPDATED
from tests.fake_stripe import WEBHOOK_ENDPOINTS, FakeStripe
from tests.stripe_events import SECRET, event, signed
from tests.test_cli import run

URL = "https://app.example.com/stripe/webhook"


def test_setup_creates_an_endpoint_with_exactly_the_handled_events(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "webhook", "setup", "--url", URL)
    assert done.returncode == 0, done.stderr
    (endpoint,) = fake_stripe.webhook_endpoints.values()
    assert endpoint["url"] == URL
    assert endpoint["enabled_events"] == list(HANDLED_EVENTS)
    assert endpoint["description"] == "entitlegate"


def test_setup_prints_the_signing_secret_once_with_where_to_put_it(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "webhook", "setup", "--url", URL)
    (endpoint,) = fake_stripe.webhook_endpoints.values()
    assert done.stdout.count(endpoint["secret"]) == 1
    assert "WEBHOOK_SECRET" in done.stdout
    assert "shown this once" in done.stdout


def test_setup_refuses_a_second_endpoint_at_the_same_url(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, HANDLED_EVENTS)
    done = run(fake_stripe, "webhook", "setup", "--url", URL)
    assert done.returncode == 1
    assert "exists already" in done.stdout
    assert len(fake_stripe.webhook_endpoints) == 1


def test_check_of_a_complete_endpoint_exits_0(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, HANDLED_EVENTS)
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok: enabled, with all {len(HANDLED_EVENTS)} events" in done.stdout


def test_check_names_missing_events_and_extra_ones_and_exits_1(fake_stripe: FakeStripe) -> None:
    events = [event for event in HANDLED_EVENTS if event != SUMMARY_UPDATED] + ["invoice.paid"]
    fake_stripe.add_webhook_endpoint(URL, events)
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 1
    assert f"missing: {SUMMARY_UPDATED}" in done.stdout
    assert "extra: invoice.paid (entitlegate ignores it)" in done.stdout


def test_check_of_a_disabled_endpoint_exits_1(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, HANDLED_EVENTS, status="disabled")
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 1
    assert "disabled: Stripe sends it nothing" in done.stdout


def test_check_takes_every_event_star_as_complete_but_extra(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, ["*"])
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 0
    assert "extra: *" in done.stdout


def test_check_lists_every_endpoint_and_says_when_none_is_at_the_url(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint("https://other.example.com/hooks", ["invoice.paid"])
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 1
    assert "https://other.example.com/hooks" in done.stdout
    assert f"no endpoint at {URL}" in done.stdout


def test_check_without_url_checks_the_endpoints_receiving_the_summary_event(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(
        "https://billing.example.com/hooks", ["invoice.paid", "customer.subscription.updated"]
    )
    fake_stripe.add_webhook_endpoint(URL, [SUMMARY_UPDATED])
    done = run(fake_stripe, "webhook", "check")
    assert done.returncode == 1
    assert f"at {URL}:" in done.stdout
    assert "at https://billing.example.com/hooks:" not in done.stdout
    assert "missing: customer.deleted" in done.stdout


def test_check_pages_through_many_endpoints(fake_stripe: FakeStripe) -> None:
    for number in range(120):
        fake_stripe.add_webhook_endpoint(f"https://app.example.com/{number}", ["invoice.paid"])
    fake_stripe.add_webhook_endpoint(URL, HANDLED_EVENTS)
    fake_stripe.webhook_endpoints = dict(reversed(list(fake_stripe.webhook_endpoints.items())))  # URL listed last
    done = run(fake_stripe, "webhook", "check", "--url", URL)
    assert done.returncode == 0, done.stdout
    assert fake_stripe.calls(WEBHOOK_ENDPOINTS) == 2


def test_a_rejected_key_exits_2_and_is_never_echoed(fake_stripe: FakeStripe) -> None:
    wrong = "sk_test_wrong_0123456789abcdef"
    for verb in (["webhook", "check"], ["webhook", "setup", "--url", URL]):
        done = run(fake_stripe, *verb, env={"STRIPE_API_KEY": wrong})
        assert done.returncode == 2, verb
        assert "Stripe rejected the API key" in done.stderr
        assert "0123456789" not in done.stdout + done.stderr
    assert not fake_stripe.webhook_endpoints


def test_stripe_down_exits_2_saying_so(fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503
    done = run(fake_stripe, "webhook", "check")
    assert done.returncode == 2
    assert "cannot list the webhook endpoints: Stripe did not answer" in done.stderr


@pytest.mark.parametrize("action", ["setup", "check"])
def test_each_webhook_action_has_help(fake_stripe: FakeStripe, action: str) -> None:
    done = run(fake_stripe, "webhook", action, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: entitlegate webhook {action}")


def test_the_handled_events_are_every_event_stripe_has_that_the_handler_acts_on() -> None:
    # Stripe's own list of events an endpoint may enable (the SDK's create params, from the
    # OpenAPI spec), each put through the real handler: acted on exactly when it is in the list.
    from entitlegate import Resolver, StaticSource

    annotation: Any = stripe.params.WebhookEndpointCreateParams.__annotations__["enabled_events"]
    while typing.get_origin(annotation) is not typing.Literal:  # List[Literal[...]], maybe NotRequired[...]
        (annotation,) = typing.get_args(annotation)
    known = [name for name in typing.get_args(annotation) if re.fullmatch(r"[a-z_.]+", name)]
    handler = WebhookHandler(Resolver(StaticSource({"cus_1": []})), SECRET)
    acted_on = []
    for number, event_type in enumerate(known):
        obj = {"id": "cus_1", "object": "x", "customer": "cus_1", "status": "active", "entitlements": {"data": []}}
        body, header = signed(event(event_type, obj, event_id=f"evt_{number}"))
        if handler.handle(body, header).action != "ignored":
            acted_on.append(event_type)
    assert sorted(acted_on) == sorted(HANDLED_EVENTS)


def test_check_without_url_and_no_endpoint_sent_the_summary_event_exits_1(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint("https://billing.example.com/hooks", ["customer.subscription.updated"])
    done = run(fake_stripe, "webhook", "check")
    assert done.returncode == 1
    assert f"no endpoint receives {SUMMARY_UPDATED}" in done.stdout
