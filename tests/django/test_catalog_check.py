"""System check W020 (``manage.py check --deploy``): the names the site gates on, against the account's features.

The registry is the whole process's, so each test looks only at the names it registers itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core import checks
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.views import View

from entitlegate import registry
from entitlegate_django import FeatureRequiredMixin, requires_feature, requires_limit
from tests.fake_stripe import FEATURES, FakeStripe


def _w020(*, deploy: bool = True) -> list[str]:
    return [
        message.msg
        for message in checks.run_checks(include_deployment_checks=deploy)
        if message.id == "entitlegate.W020"
    ]


def _view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("never called")


def test_a_typo_d_lookup_key_is_a_w020_naming_the_closest_feature(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("priority-support")
    requires_feature("priority-suport")(_view)

    found = [message for message in _w020() if "'priority-suport'" in message]

    assert found == ["lookup_key 'priority-suport' is not a feature of this account; did you mean 'priority-support'?"]


def test_a_limit_no_feature_carries_is_a_w020(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("team-plan", {"team_seats": "5"})
    requires_limit("team_seat", 1)(_view)

    assert any("limit 'team_seat'" in message and "'team_seats'" in message for message in _w020())


def test_the_names_the_account_has_give_no_w020(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("known-feature", {"known_limit": "10"})
    requires_feature("known-feature")(_view)
    requires_limit("known_limit", 1)(_view)

    about_them = ("lookup_key 'known-feature' ", "limit 'known_limit' ")

    assert [message for message in _w020() if message.startswith(about_them)] == []


def test_w020_runs_only_on_check_deploy(fake_stripe: FakeStripe) -> None:
    requires_feature("never-compared")(_view)

    assert _w020(deploy=False) == []
    assert fake_stripe.calls(FEATURES) == 0


def test_an_unreachable_stripe_is_one_w020_that_says_so(
    configure: Callable[..., None], fake_stripe: FakeStripe, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(STRIPE_MAX_RETRIES=0)
    fake_stripe.always_fail = 500

    (message,) = _w020()
    call_command("check", "--deploy")  # a warning: the command does not fail

    assert message.startswith("could not list the account's features on Stripe")
    assert "entitlegate.W020" in capsys.readouterr().err


def test_a_class_based_view_registers_its_features_when_it_is_defined(fake_stripe: FakeStripe) -> None:
    class ReportsView(FeatureRequiredMixin, View):
        required_features = ("cbv-reports",)
        any_of_features = ("cbv-gold", "cbv-silver")

    assert {"cbv-reports", "cbv-gold", "cbv-silver"} <= registry.lookup_keys()
    assert any("'cbv-reports'" in message for message in _w020())


def test_a_wrong_mixin_attribute_still_fails_at_the_first_request_not_at_import() -> None:
    class Wrong(FeatureRequiredMixin, View):
        required_features = "cbv-not-a-list"  # type: ignore[assignment]

    assert "cbv-not-a-list" not in registry.lookup_keys()
