"""The per-request object every adapter wraps: one customer lookup, one answer, one rule."""

from __future__ import annotations

import gc
import logging
import math

import pytest

from entitlegate import MemoryCache, Resolver, SourceUnavailable, StaticSource, StripeSource
from entitlegate.entitlements import CustomerLookup, Entitlements
from entitlegate.gate import Cause, Outcome, Requirement, Shortfall, UsageShortfall, denial_body
from entitlegate.limits import LimitRequirement, UsageRequirement
from tests.doubles import CountingSource, outage
from tests.fake_stripe import FakeStripe

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


class NoCatalogSource:
    """A source that answers features but cannot list the account's catalog (no limits)."""

    livemode = None

    def fetch(self, customer: str) -> frozenset[str]:
        return frozenset({"seats-feature"})


def test_a_template_limit_never_breaks_a_page_when_the_source_has_no_catalog() -> None:
    entitlements = Entitlements(Resolver(NoCatalogSource()), Lookups())
    assert entitlements.safe_limit("seats", default=1) == 1
    with pytest.raises(TypeError, match="cannot list features"):
        entitlements.limit("seats")


# -- every denial is logged once a minute, with the decision behind it ----------------------------


@pytest.fixture
def denials(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setattr("entitlegate.entitlements._logged_denials", {})
    caplog.set_level(logging.INFO, logger="entitlegate")
    return caplog


def denial_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("entitlegate denied")]


def test_a_denial_is_logged_at_info_with_its_cause_and_source(
    source: CountingSource, denials: pytest.LogCaptureFixture
) -> None:
    resolver = Resolver(source)
    Entitlements(resolver, Lookups()).check(Requirement.of("export"))
    (line,) = denial_lines(denials)
    assert line.startswith("entitlegate denied cus_1: needs 'export'; cause=missing source=cache")


def test_the_same_denial_is_logged_once_a_minute_and_an_allowed_check_not_at_all(
    source: CountingSource, denials: pytest.LogCaptureFixture
) -> None:
    resolver = Resolver(source)
    for _ in range(3):
        Entitlements(resolver, Lookups()).check(Requirement.of("export"))
        Entitlements(resolver, Lookups()).check(SEATS)
    assert len(denial_lines(denials)) == 1


def test_a_limit_denial_and_an_outage_denial_say_so(denials: pytest.LogCaptureFixture, source: CountingSource) -> None:
    Entitlements(plans(), Lookups("cus_starter")).check_limit(SEATS_LIMIT, 4)
    Entitlements(Resolver(down(source), on_unavailable="deny"), Lookups()).check(SEATS)
    limit_line, outage_line = denial_lines(denials)
    assert "needs 4 of 'seats' (the plan allows 3); cause=missing" in limit_line
    assert "cause=unavailable source=policy" in outage_line


# -- usage against a meter: check_usage / acheck_usage ---------------------------------------------

EXPORT_LIMITS = {"starter": {"exports": "3"}, "pro": {"exports": "unlimited"}}
EXPORTS = UsageRequirement("exports", "exports")


def metered() -> tuple[Resolver, StaticSource]:
    source = StaticSource({"cus_starter": ["starter"], "cus_pro": ["pro"], "cus_none": []}, features=EXPORT_LIMITS)
    return Resolver(source, MemoryCache()), source


def test_check_usage_admits_exactly_the_customers_limit_then_denies_naming_meter_usage_and_limit() -> None:
    resolver, source = metered()
    verdicts = [Entitlements(resolver, Lookups("cus_starter")).check_usage(EXPORTS) for _ in range(5)]

    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    denied = verdicts[3]
    assert (denied.outcome, denied.cause, denied.feature) == (Outcome.DENIED, Cause.MISSING, "exports")
    assert denied.feature is not None
    assert denial_body(denied.feature) == {"error": "usage_exceeded", "meter": "exports", "usage": 3, "limit": 3}
    assert resolver.usage("cus_starter", "exports") == 3  # denials counted nothing
    resolver.flush_usage()
    assert [e.value for e in source.meter_events] == [1, 1, 1]


def test_each_check_of_one_request_is_one_use_and_the_limit_is_read_once() -> None:
    resolver, _ = metered()
    entitlements = Entitlements(resolver, Lookups("cus_starter"))
    assert entitlements.has_feature("starter")
    calls = resolver.stats.source_calls

    assert [entitlements.check_usage(EXPORTS).allowed for _ in range(4)] == [True, True, True, False]
    assert resolver.stats.source_calls == calls  # the features, and so the limit, came from the memo
    assert resolver.usage("cus_starter", "exports") == 3


def test_unlimited_admits_every_use_and_counts_each() -> None:
    resolver, _ = metered()
    assert all(Entitlements(resolver, Lookups("cus_pro")).check_usage(EXPORTS).allowed for _ in range(50))
    assert resolver.usage("cus_pro", "exports") == 50


def test_a_customer_whose_features_carry_no_limit_gets_no_use() -> None:
    resolver, _ = metered()
    verdict = Entitlements(resolver, Lookups("cus_none")).check_usage(EXPORTS)
    assert verdict.usage == UsageShortfall("exports", 0, 0, 1)


def test_a_number_limit_holds_for_every_customer_and_a_value_counts_that_much() -> None:
    resolver, _ = metered()
    five_by_two = UsageRequirement("exports", 5, value=2)
    verdicts = [Entitlements(resolver, Lookups("cus_none")).check_usage(five_by_two) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].usage == UsageShortfall("exports", 4, 5, 2)


def test_no_customer_is_no_customer_and_counts_nothing() -> None:
    resolver, _ = metered()
    assert Entitlements(resolver, Lookups(None)).check_usage(EXPORTS).outcome is Outcome.NO_CUSTOMER
    assert resolver.usage("cus_starter", "exports") == 0


@pytest.mark.asyncio
async def test_acheck_usage_counts_as_check_usage_does() -> None:
    resolver, _ = metered()
    lookups = Lookups("cus_starter")
    verdicts = [
        await Entitlements(resolver, None, acustomer=lookups.asynchronously).acheck_usage(EXPORTS) for _ in range(4)
    ]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[3].usage == UsageShortfall("exports", 3, 3, 1)
    assert await resolver.ausage("cus_starter", "exports") == 3


def test_a_usage_denial_is_logged_with_the_periods_usage(denials: pytest.LogCaptureFixture) -> None:
    resolver, _ = metered()
    Entitlements(resolver, Lookups("cus_none")).check_usage(EXPORTS)
    (line,) = denial_lines(denials)
    assert line == "entitlegate denied cus_none: needs 1 more of meter 'exports'; used 0 of 0 this period"


# An outage: the counter is cold (a fresh resolver) and Stripe fails, so no exact answer exists.


@pytest.fixture
def stripe_down(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_feature("starter", {"exports": "3"})
    fake_stripe.set_customer("cus_1", ["starter"])
    fake_stripe.add_meter("exports")
    return fake_stripe


def stripe_resolver(fake: FakeStripe, policy: str) -> Resolver:
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0)
    return Resolver(source, MemoryCache(), on_unavailable=policy, retry_after=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", ["exports", 3])
@pytest.mark.parametrize(
    ("policy", "outcome", "cause"),
    [
        ("raise", Outcome.UNAVAILABLE, None),
        ("deny", Outcome.DENIED, Cause.UNAVAILABLE),
        ("allow", Outcome.ALLOWED, None),
    ],
)
def test_a_cold_counter_with_stripe_down_follows_the_policy(
    stripe_down: FakeStripe, limit: str | int, policy: str, outcome: Outcome, cause: Cause | None
) -> None:
    resolver = stripe_resolver(stripe_down, policy)
    assert resolver.features("cus_1") == {"starter"}  # the features are cached: only the counter is cold
    resolver.catalog.limits_for(frozenset({"starter"}))
    stripe_down.always_fail = 500

    verdict = Entitlements(resolver, Lookups()).check_usage(UsageRequirement("exports", limit))

    assert (verdict.outcome, verdict.cause) == (outcome, cause)
    assert isinstance(verdict.error, SourceUnavailable) or policy == "allow"
    resolver.close()


def test_a_use_the_allow_policy_lets_through_an_outage_is_still_reported_to_stripe(stripe_down: FakeStripe) -> None:
    stripe_down.always_fail = 500
    resolver = stripe_resolver(stripe_down, "allow")

    assert Entitlements(resolver, Lookups()).check_usage(EXPORTS).allowed  # features and counter unreadable

    stripe_down.always_fail = None
    assert resolver.flush_usage() == 1
    assert len(stripe_down.identifiers("exports")) == 1
    resolver.close()


@pytest.mark.parametrize("policy", ["raise", "deny"])
def test_a_use_refused_in_an_outage_is_not_reported(stripe_down: FakeStripe, policy: str) -> None:
    stripe_down.always_fail = 500
    resolver = stripe_resolver(stripe_down, policy)

    assert not Entitlements(resolver, Lookups()).check_usage(EXPORTS).allowed

    stripe_down.always_fail = None
    assert resolver.flush_usage() == 0
    assert stripe_down.identifiers("exports") == set()
    resolver.close()


# -- the async fast path and the end of a request -------------------------------------------------


@pytest.mark.asyncio
async def test_a_sync_customer_callable_serves_the_async_reads(source: CountingSource) -> None:
    # No async callable: the async reads look the customer up with the sync one, once.
    lookups = Lookups()
    entitlements = Entitlements(Resolver(source), lookups)
    assert (await entitlements.acheck(SEATS)).allowed
    assert await entitlements.acustomer() == "cus_1"
    assert await entitlements.ahas_feature("analytics")
    assert (lookups.calls, source.calls) == (1, 1)


@pytest.mark.asyncio
async def test_the_async_reads_take_a_hit_from_the_cache_and_a_miss_from_the_source(source: CountingSource) -> None:
    resolver = Resolver(source)
    assert (await Entitlements(resolver, Lookups()).acheck(SEATS)).allowed  # a miss: the source
    assert (await Entitlements(resolver, Lookups()).acheck(SEATS)).allowed  # a hit: cached_features
    assert (resolver.stats.hits, resolver.stats.misses, source.calls) == (1, 1, 1)


def test_cached_features_answers_a_fresh_hit_and_never_asks_the_source(source: CountingSource) -> None:
    now = [1000.0]
    resolver = Resolver(source, ttl=60, clock=lambda: now[0])
    assert resolver.cached_features("cus_1") is None  # nothing cached: no source call either
    assert source.calls == 0
    resolver.features("cus_1")
    assert resolver.cached_features("cus_1") == {"seats-feature", "analytics"}
    assert resolver.stats.hits == 1
    now[0] += 61  # expired: not at hand, however stale-servable
    assert resolver.cached_features("cus_1") is None
    assert resolver.cached_features(["not", "hashable"]) is None  # type: ignore[arg-type]
    assert (resolver.stats.hits, source.calls) == (1, 1)


def test_release_lets_go_of_the_request_and_a_later_lookup_means_no_customer(
    source: CountingSource, caplog: pytest.LogCaptureFixture
) -> None:
    class Request:
        pass

    request = Request()
    entitlements = Entitlements(Resolver(source), lambda request: "cus_1", of=request)
    entitlements.release()
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        assert entitlements.customer is None
    assert "the request is over" in caplog.text
    assert not entitlements.check(SEATS).allowed
    assert source.calls == 0


def test_release_after_the_lookup_keeps_what_was_found(source: CountingSource) -> None:
    entitlements = Entitlements(Resolver(source), Lookups())
    assert entitlements.check(SEATS).allowed
    entitlements.release()
    assert entitlements.customer == "cus_1"
    assert entitlements.has_feature("analytics")


def test_one_shared_lookup_serves_each_request_its_own_customer_and_answer(source: CountingSource) -> None:
    # What an adapter does: one CustomerLookup for the site, one for_request per request.
    source.mapping["cus_2"] = frozenset({"analytics"})
    calls: list[object] = []

    def customer_of(request: dict[str, str]) -> str:
        calls.append(request)
        return request["customer"]

    lookup = CustomerLookup(Resolver(source), customer_of, where="the test's customer_of")
    first, second = {"customer": "cus_1"}, {"customer": "cus_2"}
    one, two = Entitlements.for_request(lookup, first), Entitlements.for_request(lookup, second)
    assert one.check(SEATS).allowed
    assert one.check(SEATS).allowed
    assert two.check(SEATS).feature == "seats-feature"
    assert two.has_feature("analytics")
    assert calls == [first, second]  # each request's customer once, with its own request
    assert (one.customer, two.customer) == ("cus_1", "cus_2")
    assert one.resolver is lookup.resolver
    assert source.calls == 2


def test_a_request_made_from_a_lookup_lets_go_of_its_request_once_found(source: CountingSource) -> None:
    class Request:
        pass

    request = Request()
    entitlements = Entitlements.for_request(CustomerLookup(Resolver(source), lambda request: "cus_1"), request)
    assert entitlements.has_feature("seats-feature")
    referents = gc.get_referents(*(getattr(entitlements, name) for name in Entitlements.__slots__))
    assert request not in referents
    assert all(getattr(entitlements, name) is not request for name in Entitlements.__slots__)


def test_a_lookup_keeps_its_reraise_and_names_its_callable_in_the_log(
    source: CountingSource, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(request: object) -> str:
        raise LookupError("no session store")

    def refusing(request: object) -> str:
        raise PermissionError("answered by the framework")

    resolver = Resolver(source)
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        assert Entitlements.for_request(CustomerLookup(resolver, failing, where="SITE['CUSTOMER']"), 1).customer is None
    assert "SITE['CUSTOMER']" in caplog.text
    refused = Entitlements.for_request(CustomerLookup(resolver, refusing, reraise=(PermissionError,)), 1)
    with pytest.raises(PermissionError):
        refused.check(SEATS)


@pytest.mark.asyncio
async def test_an_async_lookup_is_awaited_with_the_request(source: CountingSource) -> None:
    async def customer_of(request: dict[str, str]) -> str:
        return request["customer"]

    lookup = CustomerLookup(Resolver(source), None, customer_of)
    entitlements = Entitlements.for_request(lookup, {"customer": "cus_1"})
    assert (await entitlements.acheck(SEATS)).allowed
    assert repr(lookup) == f"<CustomerLookup the customer callable resolver={lookup.resolver!r}>"


def test_an_any_of_requirement_allows_one_of_its_features_and_names_them_all_otherwise(
    source: CountingSource,
) -> None:
    either = Requirement.of(any_of=("analytics", "exports"))
    both = Requirement.of("seats-feature", any_of=("exports", "sso"))
    entitlements = Entitlements(Resolver(source), Lookups())
    assert either.allows(frozenset({"exports"}))
    assert not either.allows(frozenset({"seats-feature"}))
    assert entitlements.check(either).allowed
    assert entitlements.check(both).feature == "exports | sso"


@pytest.mark.parametrize(
    ("found", "customer"),
    [("cus_1", "cus_1"), (None, None), ("", None), ("  ", None), (" cus_1", None), (42, None), (LookupError(), None)],
)
def test_an_answered_request_agrees_with_the_lazy_one_having_asked_once(
    source: CountingSource, found: object, customer: str | None
) -> None:
    # The gate's eager path (Entitlements.answered) reads what the lazy one would: the same rule
    # for what the callable returns, one call of it, one of the source, the same verdict.
    eager_lookups, lazy_lookups = Lookups(found), Lookups(found)
    resolver = Resolver(source)
    eager = Entitlements.answered(CustomerLookup(resolver, lambda request: eager_lookups()), object())
    lazy = Entitlements.for_request(CustomerLookup(resolver, lambda request: lazy_lookups()), object())
    assert eager.found
    assert eager_lookups.calls == 1
    assert source.calls == (1 if customer else 0)
    assert eager.check(SEATS) == lazy.check(SEATS)
    assert (eager.customer, eager.features, repr(eager)) == (lazy.customer, lazy.features, repr(lazy))
    assert eager_lookups.calls == lazy_lookups.calls == 1
    eager.release()  # nothing is held to let go of
    assert eager.customer == customer


def test_an_answered_request_keeps_an_outage_and_passes_reraise(source: CountingSource) -> None:
    lookup = CustomerLookup(Resolver(down(source), on_unavailable="deny"), lambda request: "cus_1")
    entitlements = Entitlements.answered(lookup, object())
    assert source.calls == 1
    assert entitlements.check(SEATS).outcome is Outcome.DENIED
    assert not entitlements.has_feature("seats-feature")
    assert repr(entitlements) == "<Entitlements customer='cus_1' unavailable>"
    assert source.calls == 1

    def refusing(request: object) -> str:
        raise PermissionError("answered by the framework")

    with pytest.raises(PermissionError):
        Entitlements.answered(CustomerLookup(Resolver(source), refusing, reraise=(PermissionError,)), object())


def test_an_answered_request_needs_a_sync_customer_callable(source: CountingSource) -> None:
    async def customer_of(request: object) -> str:
        return "cus_1"

    with pytest.raises(TypeError, match="sync customer callable"):
        Entitlements.answered(CustomerLookup(Resolver(source), None, customer_of), object())


def test_letting_go_of_requests_shares_one_over_lookup_that_still_names_the_callable(
    source: CountingSource, caplog: pytest.LogCaptureFixture
) -> None:
    lookup = CustomerLookup(Resolver(source), lambda request: "cus_1", where="SITE['CUSTOMER']")
    one, two = Entitlements.for_request(lookup, object()), Entitlements.for_request(lookup, object())
    one.release()
    two.release()
    assert lookup.over() is lookup.over()  # made once: a request's release allocates nothing
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        assert two.customer is None
    assert "SITE['CUSTOMER'] raised RuntimeError" in caplog.text
    assert source.calls == 0
