"""entitlegate.testing.override_features: a context manager and a decorator, like override_settings."""

from __future__ import annotations

import asyncio
import unittest

import pytest

from entitlegate import Resolver
from entitlegate.testing import override_features
from tests.doubles import CountingSource


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({"cus_1": {"basic"}})


def test_an_override_pins_a_customers_features_without_asking_the_source(source: CountingSource) -> None:
    resolver = Resolver(source)
    with override_features(resolver, {"cus_1": {"seats-feature"}}):
        assert resolver.has_feature("cus_1", "seats-feature")
        assert resolver.features("cus_1") == {"seats-feature"}
        assert not resolver.has_feature("cus_1", "basic")
    assert source.calls == 0
    assert resolver.features("cus_1") == {"basic"}


def test_other_customers_are_answered_as_usual(source: CountingSource) -> None:
    resolver = Resolver(source)
    with override_features(resolver, {"cus_2": {"x"}}):
        assert resolver.features("cus_1") == {"basic"}


def test_overrides_nest_and_unwind(source: CountingSource) -> None:
    resolver = Resolver(source)
    with override_features(resolver, {"cus_1": {"a"}, "cus_2": {"b"}}):
        with override_features(resolver, {"cus_1": {"c"}}):
            assert resolver.features("cus_1") == {"c"}
            assert resolver.features("cus_2") == {"b"}
        assert resolver.features("cus_1") == {"a"}


def test_an_override_works_as_a_decorator_on_sync_and_async_functions(source: CountingSource) -> None:
    resolver = Resolver(source)

    @override_features(resolver, {"cus_1": {"seats-feature"}})
    def sync_check() -> bool:
        return resolver.has_feature("cus_1", "seats-feature")

    @override_features(resolver, {"cus_1": {"seats-feature"}})
    async def async_check() -> bool:
        return await resolver.ahas_feature("cus_1", "seats-feature")

    assert sync_check()
    assert asyncio.run(async_check())
    assert not resolver.has_feature("cus_1", "seats-feature")


def test_an_override_may_take_away_every_feature(source: CountingSource) -> None:
    resolver = Resolver(source)
    resolver.features("cus_1")
    with override_features(resolver, {"cus_1": set()}):
        assert not resolver.has_feature("cus_1", "basic")


def test_an_override_decorating_a_unittest_case_keeps_its_tests_and_pins_each_one(source: CountingSource) -> None:
    resolver = Resolver(source)
    seen: list[bool] = []

    @override_features(resolver, {"cus_1": {"seats-feature"}})
    class Pinned(unittest.TestCase):
        def setUp(self) -> None:
            seen.append(resolver.has_feature("cus_1", "seats-feature"))  # outside: as unittest.mock.patch

        def test_sync(self) -> None:
            assert resolver.has_feature("cus_1", "seats-feature")

        def test_again(self) -> None:
            assert resolver.features("cus_1") == {"seats-feature"}

    assert isinstance(Pinned, type)
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(Pinned).run(result)
    assert (result.testsRun, result.failures, result.errors) == (2, [], [])
    assert seen == [False, False]
    assert resolver.features("cus_1") == {"basic"}


def test_an_override_decorating_a_plain_test_class_wraps_its_test_methods_only(
    source: CountingSource,
) -> None:
    resolver = Resolver(source)

    @override_features(resolver, {"cus_1": {"seats-feature"}})
    class TestPinned:
        def test_sync(self) -> bool:
            return resolver.has_feature("cus_1", "seats-feature")

        async def test_async(self) -> bool:
            return await resolver.ahas_feature("cus_1", "seats-feature")

        @staticmethod
        def test_static() -> bool:
            return resolver.has_feature("cus_1", "seats-feature")

        def helper(self) -> bool:
            return resolver.has_feature("cus_1", "seats-feature")

    case = TestPinned()
    assert case.test_sync()
    assert asyncio.run(case.test_async())
    assert not case.helper()
    assert TestPinned.test_static()


def test_signed_events_from_the_helpers_are_accepted_as_stripes(source: CountingSource) -> None:
    from entitlegate import WebhookHandler
    from entitlegate.testing import customer_deleted_event, signed, subscription_event, summary_event

    resolver = Resolver(source)
    handler = WebhookHandler(resolver, "whsec_app_tests")
    assert handler.handle(*signed(summary_event("cus_1", ["pro"]), "whsec_app_tests")).action == "applied"
    assert resolver.features("cus_1") == {"pro"}
    assert handler.handle(*signed(subscription_event("cus_1"), "whsec_app_tests")).action == "invalidated"
    assert handler.handle(*signed(customer_deleted_event("cus_1"), "whsec_app_tests")).action == "applied"


def test_a_signature_with_another_secret_is_refused(source: CountingSource) -> None:
    from entitlegate import InvalidSignature, WebhookHandler
    from entitlegate.testing import signed, summary_event

    handler = WebhookHandler(Resolver(source), "whsec_app_tests")
    with pytest.raises(InvalidSignature):
        handler.handle(*signed(summary_event("cus_1", ["pro"]), "whsec_other"))


def _fields_the_sdk_knows(cls: type) -> set[str]:
    # stripe-python's resource classes are generated from Stripe's OpenAPI description: one
    # annotation per field the API may send.
    return {name for name in cls.__annotations__ if name != "OBJECT_NAME"}


def test_subscription_event_carries_stripes_whole_subscription_object() -> None:
    import stripe

    from entitlegate.testing import subscription_event

    subscription = subscription_event("cus_1", "deleted")["data"]["object"]
    item = subscription["items"]["data"][0]
    # Fields the OpenAPI fixtures leave out too: Stripe sends them only when the feature is in use.
    optional = {"presentment_details", "status_details"}
    assert set(subscription) <= _fields_the_sdk_knows(stripe.Subscription)
    assert _fields_the_sdk_knows(stripe.Subscription) - set(subscription) <= optional
    assert set(item) <= _fields_the_sdk_knows(stripe.SubscriptionItem)
    assert _fields_the_sdk_knows(stripe.SubscriptionItem) - set(item) <= {"billed_until", "current_trial", "deleted"}
    assert set(item["price"]) <= _fields_the_sdk_knows(stripe.Price)
    assert set(item["plan"]) <= _fields_the_sdk_knows(stripe.Plan)
    assert (subscription["customer"], subscription["status"]) == ("cus_1", "canceled")


def test_customer_deleted_event_carries_stripes_deleted_customer_object() -> None:
    import stripe

    from entitlegate.testing import customer_deleted_event

    event = stripe.Event.construct_from(customer_deleted_event("cus_1"), "sk_test_x")
    deleted = event.data.object
    # Stripe's deleted_customer: exactly id, object "customer", deleted true.
    assert deleted.to_dict() == {"id": "cus_1", "object": "customer", "deleted": True}
    assert isinstance(deleted, stripe.Customer)
    assert set(deleted.to_dict()) <= _fields_the_sdk_knows(stripe.Customer)
