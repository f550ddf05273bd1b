"""entitlegate.testing.override_features: a context manager and a decorator, like override_settings."""

from __future__ import annotations

import asyncio

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
