"""``manage.py entitlegate VERB``: the command's verbs on the project's resolver, through call_command."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from entitlegate.webhooks import HANDLED_EVENTS
from tests.fake_stripe import FakeStripe

URL = "https://shop.example/stripe/webhook"


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("entitlegate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_inspect_asks_stripe_with_the_projects_key(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    out, _ = command("inspect", "cus_1")
    assert "Stripe now:\n  features    analytics\n" in out  # one line end each, not two
    assert "local copy (this process):\n  none" in out


def test_inspect_shows_what_the_projects_cache_holds(fake_stripe: FakeStripe, resolver: Any) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    resolver.features("cus_1")
    out, _ = command("inspect", "cus_1", "--json")
    assert '"local": {"age": ' in out


def test_webhook_setup_and_check_use_the_projects_account(fake_stripe: FakeStripe) -> None:
    out, _ = command("webhook", "setup", "--url", URL)
    assert "created we_" in out
    (endpoint,) = fake_stripe.webhook_endpoints.values()
    assert endpoint["enabled_events"] == list(HANDLED_EVENTS)
    out, _ = command("webhook", "check", "--url", URL)
    assert "ok: enabled" in out


def test_a_finding_exits_1(fake_stripe: FakeStripe) -> None:
    fake_stripe.add_webhook_endpoint(URL, ["invoice.paid"])
    with pytest.raises(CommandError) as raised:
        command("webhook", "check", "--url", URL)
    assert raised.value.returncode == 1


def test_check_checks_this_project_without_app(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("analytics")
    with pytest.raises(CommandError) as raised:
        command("check")
    assert raised.value.returncode == 1  # the test project gates on features this account lacks


def test_warm_on_a_memory_cache_is_a_usage_error(fake_stripe: FakeStripe, tmp_path: Any) -> None:
    path = tmp_path / "customers.txt"
    path.write_text("cus_1\n")
    with pytest.raises(CommandError) as raised:
        command("warm", "--customers", str(path))
    assert raised.value.returncode == 2


def test_a_rejected_key_exits_2_without_echoing_it(configure: Any) -> None:
    wrong = "sk_test_wrong_0123456789abcdef"
    configure(STRIPE_API_KEY=wrong)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("entitlegate", "webhook", "check", stdout=out, stderr=err)
    assert raised.value.returncode == 2
    assert "Stripe rejected the API key" in err.getvalue()
    assert "0123456789" not in out.getvalue() + err.getvalue()


@pytest.mark.parametrize("verb", ["inspect", "warm", "features", "check"])
def test_each_verb_has_help(verb: str) -> None:
    out, _ = command(verb, "--help")
    assert out.startswith(f"usage: manage.py entitlegate {verb}")
