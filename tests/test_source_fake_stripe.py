"""The fake Stripe agrees with Stripe's OpenAPI description, through the real SDK over HTTP.

The parameters and shapes come from ``../shared/stripe/entitlements_subset.json`` (the
Entitlements paths) and, for Customer Portal sessions, from github.com/stripe/openapi
(``billing_portal.session`` in ``openapi/fixtures3.json`` and the POST operation's form fields).
"""

from __future__ import annotations

import pytest
import stripe

from tests.fake_stripe import FakeStripe

# The fields of billing_portal.session (openapi/fixtures3.json, stripe/openapi at f6c2a48f).
PORTAL_SESSION_FIELDS = {
    "configuration",
    "created",
    "customer",
    "customer_account",
    "flow",
    "id",
    "livemode",
    "locale",
    "object",
    "on_behalf_of",
    "return_url",
    "url",
}


def test_an_unknown_parameter_is_refused_naming_it(stripe_client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.entitlements.active_entitlements.list({"customer": "cus_1", "colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert raised.value.http_status == 400
    assert raised.value.param == "colour"


def test_a_limit_that_is_not_an_integer_is_a_400_not_a_crash(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.entitlements.active_entitlements.list({"customer": "cus_1", "limit": "ten"})  # type: ignore[typeddict-item]
    assert raised.value.http_status == 400
    assert raised.value.param == "limit"


def test_ending_before_pages_backwards(stripe_client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [f"f{i}" for i in range(5)])
    page = stripe_client.v1.entitlements.active_entitlements.list(
        {"customer": "cus_1", "limit": 2, "ending_before": "ent_test_cus_1_0004"}
    )
    assert [e.lookup_key for e in page.data] == ["f2", "f3"]
    assert page.has_more is True


def test_the_feature_of_an_active_entitlement_expands(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    page = stripe_client.v1.entitlements.active_entitlements.list({"customer": "cus_1", "expand": ["data.feature"]})
    assert page.data[0].feature.lookup_key == "seats-feature"  # type: ignore[union-attr]
    plain = stripe_client.v1.entitlements.active_entitlements.list({"customer": "cus_1"})
    assert plain.data[0].feature == "feat_test_seats-feature"


def test_the_features_list_filters_by_lookup_key_and_archived(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "sso"])
    features = stripe_client.v1.entitlements.features
    assert [f.lookup_key for f in features.list({"lookup_key": "sso"}).data] == ["sso"]
    assert features.list({"archived": True}).data == []
    assert {f.lookup_key for f in features.list({"archived": False}).data} == {"seats-feature", "sso"}


def test_a_portal_session_has_every_field_of_the_spec_and_its_configuration(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])
    session = stripe_client.v1.billing_portal.sessions.create(
        {"customer": "cus_1", "return_url": "https://app.test/", "configuration": "bpc_123", "locale": "fr"}
    )
    assert set(session.to_dict()) == PORTAL_SESSION_FIELDS
    assert (session.configuration, session.locale) == ("bpc_123", "fr")
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter"):
        stripe_client.v1.billing_portal.sessions.create({"customer": "cus_1", "colour": "red"})  # type: ignore[arg-type]
