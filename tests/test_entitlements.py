"""The per-request object every adapter wraps: one customer lookup, one answer, one rule."""

from __future__ import annotations

import math

import pytest

from entitlegate import Resolver, StaticSource
from entitlegate.entitlements import Entitlements
from entitlegate.gate import Cause, Outcome, Requirement, Shortfall, denial_body
from entitlegate.limits import LimitRequirement
from tests.doubles import CountingSource, outage

SEATS = Requirement.of("seats-feature")


class Lookups:
    """A customer callable that counts its calls and answers what the test says."""

    def __init__(self, answer: object = "cus_1") -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def asynchronously(self) -> object:
        return self()


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({"cus_1": {"seats-feature", "analytics"}})


def down(source: CountingSource) -> CountingSource:
    source.failing = outage()
    return source


def test_the_customer_callable_runs_once_however_many_reads(source: CountingSource) -> None:
    lookups = Lookups()
    entitlements = Entitlements(Resolver(source), lookups)
    for _ in range(3):
        assert entitlements.customer == "cus_1"
        assert entitlements.has_feature("seats-feature")
        assert entitlements.check(SEATS).allowed
    assert lookups.calls == 1


def test_an_outage_is_asked_of_the_source_once_per_request(source: CountingSource) -> None:
    entitlements = Entitlements(Resolver(down(source), on_unavailable="deny"), Lookups())
    assert not entitlements.has_feature("seats-feature")
    assert not entitlements.safe_has_feature("analytics")
    assert entitlements.safe_features() == frozenset()
    assert entitlements.check(SEATS).outcome is Outcome.DENIED
    with pytest.raises(Exception, match="Stripe is down"):
        entitlements.features  # noqa: B018 - the read is the test
    assert source.calls == 1


@pytest.mark.asyncio
async def test_an_outage_is_asked_once_per_request_in_async_views_too(source: CountingSource) -> None:
    lookups = Lookups()
    entitlements = Entitlements(Resolver(down(source)), lookups, acustomer=lookups.asynchronously)
    assert (await entitlements.acheck(SEATS)).outcome is Outcome.UNAVAILABLE
    with pytest.raises(Exception, match="Stripe is down"):
        await entitlements.ahas_feature("seats-feature")
    assert not entitlements.safe_has_feature("seats-feature")
    assert source.calls == 1
    assert lookups.calls == 1


@pytest.mark.parametrize("answer", [None, ""])
def test_no_customer_has_no_features_and_asks_nothing(source: CountingSource, answer: object) -> None:
    entitlements = Entitlements(Resolver(source), Lookups(answer))
    assert entitlements.customer is None
    assert entitlements.features == frozenset()
    assert not entitlements.has_feature("seats-feature")
    assert entitlements.check(SEATS).outcome is Outcome.NO_CUSTOMER
    assert source.calls == 0


@pytest.mark.parametrize("answer", ["   ", " cus_1", 42, ["cus_1"], KeyError("user")])
def test_a_misbehaving_customer_callable_means_no_customer_and_is_logged(
    source: CountingSource, answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    where = f"CUSTOMER returning {answer!r}"
    entitlements = Entitlements(Resolver(source), Lookups(answer), where=where)
    assert entitlements.check(SEATS).outcome is Outcome.NO_CUSTOMER
    assert entitlements.safe_features() == frozenset()
    assert source.calls == 0
    assert any(where in record.getMessage() for record in caplog.records)


@pytest.mark.asyncio
async def test_an_async_customer_callable_that_raises_means_no_customer(source: CountingSource) -> None:
    lookups = Lookups(RuntimeError("database down"))
    entitlements = Entitlements(Resolver(source), None, acustomer=lookups.asynchronously, where="async raising")
    assert (await entitlements.acheck(SEATS)).outcome is Outcome.NO_CUSTOMER
    assert await entitlements.afeatures() == frozenset()


def test_a_missing_feature_is_named_in_the_denial(source: CountingSource) -> None:
    entitlements = Entitlements(Resolver(source), Lookups())
    verdict = entitlements.check(Requirement.of("seats-feature", "export"))
    assert (verdict.outcome, verdict.feature) == (Outcome.DENIED, "export")
    assert "export" not in entitlements
    assert "analytics" in entitlements


@pytest.mark.parametrize(("policy", "allowed"), [("deny", False), ("allow", True)])
def test_templates_follow_the_outage_policy(source: CountingSource, policy: str, allowed: bool) -> None:
    entitlements = Entitlements(Resolver(down(source), on_unavailable=policy), Lookups())  # type: ignore[arg-type]
    assert entitlements.safe_has_feature("seats-feature") is allowed
    assert entitlements.has_feature("seats-feature") is allowed


def test_reading_the_customer_before_an_async_only_lookup_says_what_to_do(source: CountingSource) -> None:
    entitlements = Entitlements(Resolver(source), None, acustomer=Lookups().asynchronously)
    with pytest.raises(RuntimeError, match="await acustomer"):
        entitlements.customer  # noqa: B018
    assert not entitlements.found


def test_repr_shows_the_customer_and_features_never_more(source: CountingSource) -> None:
    entitlements = Entitlements(Resolver(source), Lookups())
    assert repr(entitlements) == "<Entitlements (not looked up)>"
    entitlements.has_feature("seats-feature")
    assert repr(entitlements) == "<Entitlements customer='cus_1' features=['analytics', 'seats-feature']>"


# -- limits, through the same memo ------------------------------------------------------------------

PLANS = {"cus_starter": {"starter"}, "cus_pro": {"starter", "pro"}, "cus_big": {"enterprise"}}
SEAT_LIMITS = {"starter": {"seats": "3"}, "pro": {"seats": "25"}, "enterprise": {"seats": "unlimited"}}
SEATS_LIMIT = LimitRequirement("seats")


def plans() -> Resolver:
    return Resolver(StaticSource(PLANS, features=SEAT_LIMITS))


def test_a_limit_is_the_highest_over_the_customers_features() -> None:
    resolver = plans()
    assert Entitlements(resolver, Lookups("cus_starter")).limit("seats") == 3
    assert Entitlements(resolver, Lookups("cus_pro")).limit("seats") == 25
    assert Entitlements(resolver, Lookups("cus_big")).limit("seats") == math.inf
    assert Entitlements(resolver, Lookups("cus_pro")).limit("projects", default=1) == 1


def test_a_limit_denial_names_the_limit_the_customers_value_and_the_need() -> None:
    entitlements = Entitlements(plans(), Lookups("cus_starter"))
    assert entitlements.check_limit(SEATS_LIMIT, 3).allowed
    verdict = entitlements.check_limit(SEATS_LIMIT, 4)
    assert (verdict.outcome, verdict.feature) == (Outcome.DENIED, "seats")
    assert verdict.shortfall == Shortfall("seats", 3, 4)
    assert verdict.feature is not None
    assert denial_body(verdict.feature) == {"error": "limit_exceeded", "limit": "seats", "allowed": 3, "need": 4}


def test_no_customer_has_no_limits_and_no_limit_check_passes() -> None:
    entitlements = Entitlements(plans(), Lookups(None))
    assert entitlements.limits == {}
    assert entitlements.check_limit(SEATS_LIMIT, 0).outcome is Outcome.NO_CUSTOMER


def test_features_and_limits_of_one_request_ask_the_source_once(source: CountingSource) -> None:
    source.failing = outage()
    entitlements = Entitlements(Resolver(down(source), on_unavailable="deny"), Lookups())
    assert not entitlements.has_feature("seats-feature")
    verdict = entitlements.check_limit(SEATS_LIMIT, 1)
    assert (verdict.outcome, verdict.cause) == (Outcome.DENIED, Cause.UNAVAILABLE)
    assert entitlements.safe_limit("seats", default=-1) == -1
    with pytest.raises(Exception, match="Stripe is down"):
        entitlements.limit("seats")
    assert source.calls == 1


@pytest.mark.asyncio
async def test_async_limit_reads_match_the_sync_ones() -> None:
    lookups = Lookups("cus_pro")
    entitlements = Entitlements(plans(), None, acustomer=lookups.asynchronously)
    assert await entitlements.alimit("seats") == 25
    assert (await entitlements.acheck_limit(SEATS_LIMIT, 26)).shortfall == Shortfall("seats", 25, 26)
    assert (await entitlements.alimits())["seats"] == 25


class FrameworkAnswer(Exception):
    """Stands for a framework's own answer raised by a customer callable (Flask's ``abort(401)``)."""


def test_an_error_named_in_reraise_propagates_from_the_customer_callable(source: CountingSource) -> None:
    lookups = Lookups(FrameworkAnswer())
    entitlements = Entitlements(Resolver(source), lookups, reraise=(FrameworkAnswer,))
    with pytest.raises(FrameworkAnswer):
        entitlements.customer  # noqa: B018 - the read is the test
    assert source.calls == 0


@pytest.mark.asyncio
async def test_an_error_named_in_reraise_propagates_from_the_async_customer_callable_too(
    source: CountingSource,
) -> None:
    lookups = Lookups(FrameworkAnswer())
    entitlements = Entitlements(Resolver(source), lookups, acustomer=lookups.asynchronously, reraise=(FrameworkAnswer,))
    with pytest.raises(FrameworkAnswer):
        await entitlements.acustomer()
