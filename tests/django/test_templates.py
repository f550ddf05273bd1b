"""Template checks: the has_feature filter and the lazy features context processor never break a page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def test_has_feature_filter_is_true_for_a_customer_with_the_feature(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    assert b"seats:yes" in customer_client.get("/home/").content


def test_has_feature_filter_is_false_for_a_customer_without_it(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["export"])

    assert b"seats:no" in customer_client.get("/home/").content


def test_has_feature_filter_is_false_for_an_anonymous_user(client: Client, fake_stripe: FakeStripe) -> None:
    assert b"seats:no" in client.get("/home/").content
    assert fake_stripe.calls() == 0


def test_features_context_processor_lists_the_customers_features(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    assert b"features:seats-feature;" in customer_client.get("/home/").content


def test_a_stripe_outage_renders_the_page_with_no_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    response = customer_client.get("/home/")

    assert response.status_code == 200
    assert response.content.strip() == b"seats:no features:"


def test_a_template_check_in_an_outage_follows_on_unavailable_allow(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 429

    assert b"seats:yes" in customer_client.get("/home/").content


def test_features_are_not_fetched_when_the_template_does_not_read_them(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    response = customer_client.get("/lazy/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_the_filter_works_without_the_middleware(
    customer_client: Client, fake_stripe: FakeStripe, settings: Any
) -> None:
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    content = customer_client.get("/home/").content

    assert b"seats:yes" in content
    assert b"features:seats-feature;" in content
