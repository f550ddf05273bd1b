"""``flask entitlegate VERB``: the command's verbs on the app's resolver, through Flask's CLI runner."""

from __future__ import annotations

import pytest
from flask import Flask

from entitlegate.webhooks import HANDLED_EVENTS
from tests.fake_stripe import FakeStripe

URL = "https://app.example.com/stripe/webhook"


def test_the_group_lists_every_verb(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["entitlegate", "--help"])
    assert result.exit_code == 0
    for verb in ("inspect", "webhook", "warm", "features", "check"):
        assert verb in result.output


def test_inspect_asks_stripe_with_the_apps_key(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    result = app.test_cli_runner().invoke(args=["entitlegate", "inspect", "cus_1", "--feature", "analytics"])
    assert result.exit_code == 0, result.output
    assert "Stripe now:\n  features    analytics" in result.output
    assert "a check of 'analytics' now: allowed" in result.output


def test_webhook_setup_then_check(app: Flask, fake_stripe: FakeStripe) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["entitlegate", "webhook", "setup", "--url", URL]).exit_code == 0
    (endpoint,) = fake_stripe.webhook_endpoints.values()
    assert endpoint["enabled_events"] == list(HANDLED_EVENTS)
    result = runner.invoke(args=["entitlegate", "webhook", "check", "--url", URL])
    assert result.exit_code == 0, result.output


def test_webhook_check_with_missing_events_exits_1(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, ["customer.deleted"])
    result = app.test_cli_runner().invoke(args=["entitlegate", "webhook", "check", "--url", URL])
    assert result.exit_code == 1
    assert "missing: entitlements.active_entitlement_summary.updated" in result.output


def test_check_checks_the_apps_own_gates(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("seats-feature")
    result = app.test_cli_runner().invoke(args=["entitlegate", "check"])
    assert result.exit_code == 1  # the test app also gates on analytics and export
    assert "'analytics'" in result.output


def test_a_rejected_key_exits_2_without_echoing_it(make_app: object, fake_stripe: FakeStripe) -> None:
    wrong = "sk_test_wrong_0123456789abcdef"
    app = make_app(ENTITLEGATE_STRIPE_API_KEY=wrong)  # type: ignore[operator]
    result = app.test_cli_runner().invoke(args=["entitlegate", "features"])
    assert result.exit_code == 2
    assert "Stripe rejected the API key" in result.output
    assert "0123456789" not in result.output


@pytest.mark.parametrize("verb", ["inspect", "warm", "features"])
def test_each_verb_has_help(app: Flask, verb: str) -> None:
    result = app.test_cli_runner().invoke(args=["entitlegate", verb, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"usage: flask entitlegate {verb}")
