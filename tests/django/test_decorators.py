"""@requires_feature on sync function views: allow, login redirect, 403, 503."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client, RequestFactory

from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def test_customer_with_the_feature_sees_the_page(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = customer_client.get("/seats/")

    assert response.status_code == 200
    assert response.content == b"seats page"


def test_customer_without_the_feature_gets_the_sites_403_page(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["other-feature"])

    response = customer_client.get("/seats/")

    assert response.status_code == 403
    assert b"No entry" in response.content
    assert b"This page needs the &#x27;seats-feature&#x27; feature." in response.content


def test_anonymous_user_is_redirected_to_login(client: Client, fake_stripe: FakeStripe) -> None:
    response = client.get("/seats/?tab=2")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/seats/%3Ftab%3D2"
    assert fake_stripe.calls() == 0


def test_signed_in_user_without_a_customer_id_gets_403(no_customer_client: Client, fake_stripe: FakeStripe) -> None:
    response = no_customer_client.get("/seats/")

    assert response.status_code == 403
    assert b"This page needs a Stripe customer account." in response.content
    assert fake_stripe.calls() == 0


def test_blank_customer_id_counts_as_no_customer(
    no_customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe
) -> None:
    configure(CUSTOMER="tests.django.customers.no_customer_yet")

    response = no_customer_client.get("/seats/")

    assert response.status_code == 403
    assert fake_stripe.calls() == 0


def test_customer_function_returning_a_non_string_counts_as_no_customer(
    customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe
) -> None:
    configure(CUSTOMER="tests.django.customers.wrong_type")

    assert customer_client.get("/seats/").status_code == 403
    assert fake_stripe.calls() == 0


def test_all_listed_features_are_needed(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])

    response = customer_client.get("/analytics-export/")

    assert response.status_code == 403
    assert b"export" in response.content


def test_all_listed_features_together_allow(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics", "export"])

    assert customer_client.get("/analytics-export/").status_code == 200


def test_any_of_allows_with_one_of_the_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["silver"])

    assert customer_client.get("/metal/").status_code == 200


def test_any_of_denies_with_none_of_the_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["bronze"])

    assert customer_client.get("/metal/").status_code == 403


def test_stripe_outage_with_nothing_cached_answers_503(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503

    response = customer_client.get("/seats/")

    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"temporarily unavailable" in response.content


def test_stripe_outage_serves_the_last_known_answer(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(TTL=0)
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert customer_client.get("/seats/").status_code == 200
    fake_stripe.always_fail = 429

    response = customer_client.get("/seats/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 2


def test_on_unavailable_deny_turns_an_outage_into_403(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(ON_UNAVAILABLE="deny")
    fake_stripe.always_fail = 429

    assert customer_client.get("/seats/").status_code == 403


def test_on_unavailable_allow_turns_an_outage_into_the_page(
    customer_client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 429

    assert customer_client.get("/seats/").status_code == 200


def test_a_cached_answer_is_reused_without_asking_stripe(customer_client: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    for _ in range(3):
        assert customer_client.get("/seats/").status_code == 200

    assert fake_stripe.calls() == 1


def test_a_blank_lookup_key_fails_at_decoration() -> None:
    from entitlegate_django import requires_feature

    with pytest.raises(ValueError, match="lookup_key"):
        requires_feature(" ")


def test_a_decoration_without_features_fails_at_decoration() -> None:
    from entitlegate_django import requires_feature

    with pytest.raises(ValueError, match="at least one lookup_key"):
        requires_feature()


def test_without_django_contrib_auth_a_request_without_a_customer_gets_403_not_500(
    rf: RequestFactory, fake_stripe: FakeStripe
) -> None:
    from django.core.exceptions import PermissionDenied
    from django.test import override_settings

    from tests.django import views

    apps_without_auth = ["django.contrib.contenttypes", "entitlegate_django"]
    with override_settings(INSTALLED_APPS=apps_without_auth), pytest.raises(PermissionDenied):
        views.seats(rf.get("/seats/"))
    assert fake_stripe.calls() == 0


@pytest.mark.asyncio
async def test_without_django_contrib_auth_an_async_view_denies_too(fake_stripe: FakeStripe) -> None:
    from django.core.exceptions import PermissionDenied
    from django.test import override_settings

    from tests.django import views

    apps_without_auth = ["django.contrib.contenttypes", "entitlegate_django"]
    with override_settings(INSTALLED_APPS=apps_without_auth), pytest.raises(PermissionDenied):
        await views.aseats(RequestFactory().get("/aseats/"))
