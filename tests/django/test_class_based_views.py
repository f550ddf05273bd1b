"""FeatureRequiredMixin and method_decorator on class-based views."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.views import View

from entitlegate_django import FeatureRequiredMixin
from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def test_mixin_lets_a_customer_with_the_feature_through(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = customer_client.get("/class-seats/")

    assert response.status_code == 200
    assert response.content == b"class seats page"


def test_mixin_denies_a_customer_without_the_feature_with_403(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    assert customer_client.get("/class-seats/").status_code == 403


def test_mixin_redirects_an_anonymous_user_to_login(client: Client) -> None:
    response = client.get("/class-seats/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/class-seats/"


def test_mixin_any_of_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["gold"])

    assert customer_client.get("/class-metal/").status_code == 200


def test_mixin_features_can_be_given_to_as_view(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])  # the class needs it; as_view(...) asks for gold

    assert customer_client.get("/class-seats/").status_code == 200
    assert customer_client.get("/class-initkwargs/").status_code == 403


def test_mixin_answers_503_in_a_stripe_outage(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    assert customer_client.get("/class-seats/").status_code == 503


def test_mixin_without_features_is_improperly_configured(rf: RequestFactory) -> None:
    class Unconfigured(FeatureRequiredMixin, View):
        def get(self, request: object) -> None:
            raise AssertionError("not reached")

    with pytest.raises(ImproperlyConfigured, match="Unconfigured: a feature requirement needs at least one"):
        Unconfigured.as_view()(rf.get("/"))


def test_mixin_with_a_string_instead_of_a_list_is_improperly_configured(rf: RequestFactory) -> None:
    class Misconfigured(FeatureRequiredMixin, View):
        required_features = "seats-feature"  # type: ignore[assignment]

    with pytest.raises(ImproperlyConfigured, match="must be lists of lookup_keys"):
        Misconfigured.as_view()(rf.get("/"))


def test_method_decorator_gates_a_method(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    assert customer_client.get("/decorated/").status_code == 403
