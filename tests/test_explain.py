"""Resolver.explain: why a check answered as it did, counted as the check it stands for."""

from __future__ import annotations

import dataclasses

import pytest

import entitlegate
from entitlegate import Decision, Resolver
from entitlegate.testing import override_features
from tests.doubles import Clock, CountingSource, outage


@pytest.fixture
def clock() -> Clock:
    return Clock(start=1_700_000_000.0)


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({"cus_pro": {"analytics"}})


@pytest.fixture
def resolver(source: CountingSource, clock: Clock) -> Resolver:
    return Resolver(source, ttl=60, stale_ttl=3600, clock_skew=0, clock=clock, wall_clock=clock)


def test_a_first_check_is_explained_as_answered_by_the_source(resolver: Resolver, clock: Clock) -> None:
    decision = resolver.explain("cus_pro", "analytics")
    assert decision == Decision(allowed=True, source="source", age=0.0, version=clock.now)


def test_a_cached_answer_is_explained_with_its_age_and_version(resolver: Resolver, clock: Clock) -> None:
    fetched_at = clock.now
    resolver.features("cus_pro")
    clock.advance(12)
    assert resolver.explain("cus_pro", "sso") == Decision(False, "cache", 12.0, fetched_at)


def test_an_answer_served_in_an_outage_is_explained_as_stale(
    resolver: Resolver, source: CountingSource, clock: Clock
) -> None:
    resolver.features("cus_pro")
    clock.advance(61)
    source.failing = outage()
    decision = resolver.explain("cus_pro", "analytics")
    assert (decision.allowed, decision.source, decision.age) == (True, "stale", 61.0)


@pytest.mark.parametrize(("policy", "allowed"), [("deny", False), ("allow", True)])
def test_an_outage_with_nothing_cached_is_explained_as_the_policy(
    source: CountingSource, clock: Clock, policy: entitlegate.resolver.OnUnavailable, allowed: bool
) -> None:
    resolver = Resolver(source, on_unavailable=policy, clock=clock, wall_clock=clock)
    source.failing = outage()
    assert resolver.explain("cus_pro", "analytics") == Decision(allowed, "policy", None, None)


def test_an_outage_under_raise_raises_as_has_feature_does(resolver: Resolver, source: CountingSource) -> None:
    source.failing = outage()
    with pytest.raises(entitlegate.SourceUnavailable):
        resolver.explain("cus_pro", "analytics")


def test_an_override_is_explained_as_such(resolver: Resolver, source: CountingSource) -> None:
    with override_features(resolver, {"cus_pro": {"pinned"}}):
        assert resolver.explain("cus_pro", "pinned") == Decision(True, "override", None, None)
    assert source.calls == 0


def test_explain_counts_as_the_one_check_it_stands_for(resolver: Resolver) -> None:
    resolver.explain("cus_pro", "analytics")  # a miss and a source call
    resolver.explain("cus_pro", "analytics")  # a hit
    stats = resolver.stats
    assert (stats.hits, stats.misses, stats.source_calls) == (1, 1, 1)


@pytest.mark.asyncio
async def test_aexplain_is_the_async_twin(resolver: Resolver, clock: Clock) -> None:
    assert await resolver.aexplain("cus_pro", "analytics") == Decision(True, "source", 0.0, clock.now)
    assert (await resolver.aexplain("cus_pro", "analytics")).source == "cache"


def test_a_decision_is_a_frozen_value() -> None:
    decision = Decision(True, "cache", 1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.allowed = False  # type: ignore[misc]
    assert not hasattr(decision, "__dict__")


def test_a_blank_customer_is_a_value_error(resolver: Resolver) -> None:
    with pytest.raises(ValueError, match="customer"):
        resolver.explain(" ", "analytics")
