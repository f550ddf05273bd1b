"""EntitlementMiddleware: RULES by path prefix, a lazy request.entitlements, outages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client, RequestFactory

from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def test_a_rule_gates_its_prefix(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    assert customer_client.get("/pro/").status_code == 403


def test_a_rule_gates_paths_below_its_prefix(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    assert customer_client.get("/pro/team/settings/").status_code == 403


def test_a_rule_lets_a_customer_with_the_feature_through(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = customer_client.get("/pro/team/")

    assert response.status_code == 200
    assert response.content == b"page at /pro/team/"


def test_a_prefix_matches_whole_path_segments_only(customer_client: Client, fake_stripe: FakeStripe) -> None:
    response = customer_client.get("/products/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_the_longest_matching_prefix_wins(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])  # enough for /pro, not for /pro/reports

    response = customer_client.get("/pro/reports/q3/")

    assert response.status_code == 403
    assert b"analytics" in response.content


def test_anonymous_user_on_a_ruled_path_is_redirected_to_login(client: Client) -> None:
    response = client.get("/pro/team/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/pro/team/"


def test_a_stripe_outage_answers_503_on_a_ruled_path(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    assert customer_client.get("/pro/").status_code == 503


def test_a_stripe_outage_never_breaks_an_ungated_page(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    response = customer_client.get("/about/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_request_entitlements_fetch_nothing_unless_read(customer_client: Client, fake_stripe: FakeStripe) -> None:
    customer_client.get("/about/")
    customer_client.get("/lazy/")

    assert fake_stripe.calls() == 0


def test_request_entitlements_list_the_customers_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "export"])

    response = customer_client.get("/me/features/")

    assert response.json() == {"features": ["export", "seats-feature"]}


def test_request_entitlements_answer_membership(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    assert customer_client.get("/me/seats/").json() == {"seats": True}


def test_request_entitlements_are_empty_without_a_customer(client: Client, fake_stripe: FakeStripe) -> None:
    response = client.get("/me/features/")

    assert response.json() == {"features": []}
    assert fake_stripe.calls() == 0


def test_reading_features_in_an_outage_answers_503(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429

    response = customer_client.get("/me/features/")

    assert response.status_code == 503


def test_membership_in_an_outage_follows_on_unavailable(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 429

    assert customer_client.get("/me/seats/").json() == {"seats": True}


def test_changed_rules_apply_at_once(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    fake_stripe.set_customer("cus_1", [])
    configure(RULES={"/about": "seats-feature"})

    assert customer_client.get("/about/").status_code == 403
    assert customer_client.get("/pro/").status_code == 200


def test_the_middleware_checks_the_path_inside_the_script_prefix(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = customer_client.get("/pro/", SCRIPT_NAME="/shop")

    assert response.status_code == 403


def test_a_change_the_shared_cache_could_not_take_answers_503(rf: RequestFactory) -> None:
    from django.http import HttpResponse

    from entitlegate import CacheUnavailable
    from entitlegate_django.middleware import EntitlementMiddleware

    middleware = EntitlementMiddleware(lambda request: HttpResponse())
    error = CacheUnavailable("Redis is unavailable: 'cus_1' is invalidated in this process only")

    response = middleware.process_exception(rf.get("/"), error)

    assert response is not None
    assert response.status_code == 503
