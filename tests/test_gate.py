"""entitlegate.gate: the one decision every adapter renders, and path rules."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from entitlegate import Resolver, StaticSource, registry
from entitlegate.entitlements import Entitlements
from entitlegate.gate import (
    Cause,
    DeniedFeature,
    Outcome,
    Requirement,
    Rules,
    Shortfall,
    UsageShortfall,
    acheck,
    aportal_url,
    check,
    customer_failed,
    denial_body,
    denial_cause,
    denial_usage,
    judge_usage,
    portal_url,
    read_customer,
    safe_features,
    safe_has_feature,
)
from entitlegate.limits import UsageRequirement
from tests.doubles import CountingSource, outage


@pytest.fixture
def source() -> CountingSource:
    return CountingSource({"cus_pro": {"seats-feature", "analytics"}, "cus_free": set()})


def test_a_customer_with_every_feature_is_allowed(source: CountingSource) -> None:
    verdict = check(Resolver(source), "cus_pro", Requirement.of("seats-feature", "analytics"))
    assert verdict.allowed


def test_a_denial_names_the_first_missing_feature(source: CountingSource) -> None:
    verdict = check(Resolver(source), "cus_pro", Requirement.of("seats-feature", "sso"))
    assert (verdict.outcome, verdict.feature) == (Outcome.DENIED, "sso")


def test_any_of_needs_one_of_them(source: CountingSource) -> None:
    resolver = Resolver(source)
    assert check(resolver, "cus_pro", Requirement.of(any_of=("sso", "analytics"))).allowed
    denied = check(resolver, "cus_free", Requirement.of(any_of=("sso", "analytics")))
    assert (denied.outcome, denied.feature) == (Outcome.DENIED, "sso | analytics")


def test_no_customer_is_its_own_outcome_and_asks_nobody(source: CountingSource) -> None:
    assert check(Resolver(source), None, Requirement.of("a")).outcome is Outcome.NO_CUSTOMER
    assert source.calls == 0


@pytest.mark.parametrize(
    ("policy", "outcome"), [("raise", Outcome.UNAVAILABLE), ("deny", Outcome.DENIED), ("allow", Outcome.ALLOWED)]
)
def test_an_outage_follows_the_resolvers_policy(source: CountingSource, policy: str, outcome: Outcome) -> None:
    source.failing = outage()
    resolver = Resolver(source, on_unavailable=policy)  # type: ignore[arg-type]
    assert check(resolver, "cus_pro", Requirement.of("a")).outcome is outcome
    assert asyncio.run(acheck(resolver, "cus_pro", Requirement.of("a"))).outcome is outcome


def test_acheck_is_the_async_twin(source: CountingSource) -> None:
    resolver = Resolver(source)
    assert asyncio.run(acheck(resolver, "cus_pro", Requirement.of("analytics"))).allowed
    assert asyncio.run(acheck(resolver, None, Requirement.of("analytics"))).outcome is Outcome.NO_CUSTOMER


@pytest.mark.parametrize("bad", [(), ("",), (" ",), (3,)])
def test_a_requirement_needs_non_blank_lookup_keys(bad: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="lookup_key"):
        Requirement(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Requirement(all_of="analytics"),  # type: ignore[arg-type]
        lambda: Requirement(("seats-feature",), any_of="analytics"),  # type: ignore[arg-type]
        lambda: Requirement.of(any_of="analytics"),
        lambda: Requirement.of("seats-feature", any_of="analytics"),
        lambda: Rules("/pro"),  # type: ignore[arg-type]
        lambda: Rules({"/pro": Requirement.of(any_of="analytics")}),
    ],
    ids=["all_of", "any_of", "of-any_of", "of-features-and-any_of", "rules", "rule-requirement"],
)
def test_a_string_where_lookup_keys_are_expected_is_a_type_error(build: Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="string"):
        build()


def test_any_of_with_one_name_lets_its_holder_in_and_nobody_else(source: CountingSource) -> None:
    resolver = Resolver(source)
    requirement = Requirement.of(any_of=("analytics",))
    assert check(resolver, "cus_pro", requirement).allowed
    assert not check(resolver, "cus_free", requirement).allowed


def test_a_rule_naming_one_lookup_key_as_a_string_needs_that_key() -> None:
    assert Rules({"/pro": "analytics"}).match("/pro") == Requirement(("analytics",))


def test_template_checks_never_raise(source: CountingSource) -> None:
    resolver = Resolver(source)
    assert safe_has_feature(resolver, "cus_pro", "analytics") is True
    assert safe_has_feature(resolver, None, "analytics") is False
    assert safe_has_feature(resolver, "  ", "analytics") is False
    source.failing = outage()
    assert safe_has_feature(resolver, "cus_other", "analytics") is False
    assert safe_features(resolver, "cus_other") == frozenset()
    assert safe_has_feature(Resolver(source, on_unavailable="allow"), "cus_x", "analytics") is True


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/pro", ("seats-feature",)),
        ("/pro/", ("seats-feature",)),
        ("/pro/team", ("seats-feature",)),
        ("/products", None),
        ("/pro/reports", ("analytics", "export")),
        ("/pro/reports/2026", ("analytics", "export")),
        ("/pro/reportsx", ("seats-feature",)),
        ("/", None),
        ("/other", None),
    ],
)
def test_rules_match_on_segment_boundaries_and_the_longest_prefix_wins(
    path: str, expected: tuple[str, ...] | None
) -> None:
    rules = Rules({"/pro": "seats-feature", "/pro/reports/": ["analytics", "export"]})
    found = rules.match(path)
    assert (found.all_of if found else None) == expected


def test_a_root_rule_covers_everything() -> None:
    assert Rules({"/": "a"}).match("/anything/at/all") == Requirement.of("a")


@pytest.mark.parametrize("rules", [{"pro": "a"}, {"/pro": ""}, {"/pro": 5}, [("/pro",)], {"/pro": []}])
def test_malformed_rules_are_a_value_error_naming_the_rule(rules: object) -> None:
    with pytest.raises(ValueError, match="rule"):
        Rules(rules)  # type: ignore[arg-type]


# -- the one rule for what a customer callable returns ---------------------------------------------


@pytest.mark.parametrize("value", ["cus_1", "cus_A9"])
def test_read_customer_takes_a_plain_id(value: str) -> None:
    assert read_customer(value, "CUSTOMER") == value


@pytest.mark.parametrize("value", [None, ""])
def test_read_customer_takes_none_and_empty_as_no_customer_quietly(
    value: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_customer(value, "CUSTOMER") is None
    assert caplog.records == []


@pytest.mark.parametrize("value", ["   ", " cus_1", "cus_1\n", 42, b"cus_1", ["cus_1"]])
def test_read_customer_refuses_anything_else_as_no_customer_and_says_so(
    value: object, caplog: pytest.LogCaptureFixture
) -> None:
    where = f"test callable {value!r}"
    assert read_customer(value, where) is None
    assert [record.getMessage() for record in caplog.records if where in record.getMessage()]


def test_read_customer_logs_the_same_problem_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        read_customer("  ", "test callable logged once")
    assert len([r for r in caplog.records if "test callable logged once" in r.getMessage()]) == 1


def test_customer_failed_logs_the_error_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    customer_failed("test callable that raised", KeyError("user"))
    (record,) = [r for r in caplog.records if "test callable that raised" in r.getMessage()]
    assert "KeyError" in record.getMessage()
    assert record.exc_info is not None


# -- why a denial was made -------------------------------------------------------------------------


def test_a_denial_by_the_outage_policy_carries_its_cause_to_the_handler(source: CountingSource) -> None:
    source.failing = outage()

    verdict = check(Resolver(source, on_unavailable="deny"), "cus_pro", Requirement.of("analytics"))

    assert (verdict.outcome, verdict.cause) == (Outcome.DENIED, Cause.UNAVAILABLE)
    assert verdict.feature == "analytics"
    assert denial_cause(verdict.feature) is Cause.UNAVAILABLE  # what a handler given the feature asks


def test_a_denial_for_a_feature_the_customer_lacks_says_so(source: CountingSource) -> None:
    verdict = check(Resolver(source), "cus_free", Requirement.of("analytics"))

    assert (verdict.outcome, verdict.cause) == (Outcome.DENIED, Cause.MISSING)
    assert denial_cause(verdict.feature or "") is Cause.MISSING


def test_a_plain_lookup_key_is_a_denial_for_a_missing_feature() -> None:
    assert denial_cause("analytics") is Cause.MISSING


def test_only_a_denial_has_a_cause(source: CountingSource) -> None:
    assert check(Resolver(source), "cus_pro", Requirement.of("analytics")).cause is None
    assert check(Resolver(source), None, Requirement.of("analytics")).cause is None


# -- portal sessions -------------------------------------------------------------------------------


class PortalSource(CountingSource):
    """A site's own source that can make portal sessions: nothing but the two methods."""

    def create_portal_session(self, customer: str, return_url: str) -> str:
        return f"https://portal.test/{customer}?back={return_url}"

    async def acreate_portal_session(self, customer: str, return_url: str) -> str:
        return self.create_portal_session(customer, return_url)


def test_portal_url_uses_any_source_that_makes_portal_sessions() -> None:
    resolver = Resolver(PortalSource({}))

    assert portal_url(resolver, "cus_1", "/x") == "https://portal.test/cus_1?back=/x"
    assert asyncio.run(aportal_url(resolver, "cus_1", "/x")) == "https://portal.test/cus_1?back=/x"


def test_portal_url_refuses_a_source_that_cannot_make_portal_sessions() -> None:
    resolver = Resolver(StaticSource({}))

    with pytest.raises(TypeError, match="Customer Portal"):
        portal_url(resolver, "cus_1", "/x")
    with pytest.raises(TypeError, match="Customer Portal"):
        asyncio.run(aportal_url(resolver, "cus_1", "/x"))


# -- Rules.match against a brute-force oracle ----------------------------------------------------

_SEGMENT = st.sampled_from(["pro", "pr", "products", "a", "b", ""])
_PATH = st.builds(lambda segments: "/" + "/".join(segments), st.lists(_SEGMENT, max_size=4))
_PREFIX = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(_SEGMENT.filter(bool), max_size=3),
    st.booleans(),
)


def _segments(path: str) -> list[str]:
    return path.split("/")[1:]


def _oracle(prefixes: list[str], path: str) -> str | None:
    """The normalised prefix whose segments begin the path's segments, the most segments winning."""
    covering = []
    for prefix in dict.fromkeys(prefix.rstrip("/") or "/" for prefix in prefixes):
        wanted = [] if prefix == "/" else _segments(prefix)
        if _segments(path)[: len(wanted)] == wanted:
            covering.append((len(wanted), prefix))
    return max(covering)[1] if covering else None


@given(st.lists(_PREFIX, max_size=5), _PATH)
def test_rules_match_the_longest_prefix_of_whole_path_segments(prefixes: list[str], path: str) -> None:
    # Each prefix needs a lookup_key naming it, so the match tells which rule won.
    rules = Rules([(prefix, f"key{prefix.rstrip('/') or '/'}") for prefix in prefixes])

    found = rules.match(path)

    expected = _oracle(prefixes, path)
    assert (found.all_of[0][3:] if found else None) == expected


# -- usage: UsageRequirement and judge_usage --------------------------------------------------------

EXPORTS = UsageRequirement("exports", "exports")


@pytest.mark.parametrize(
    ("meter", "limit", "value", "says"),
    [
        (" ", "exports", 1, "usage meter"),
        (None, "exports", 1, "usage meter"),
        ("exports", " ", 1, "limit name"),
        ("exports", -1, 1, "whole number >= 0"),
        ("exports", True, 1, "whole number >= 0"),
        ("exports", 2.5, 1, "whole number >= 0"),
        ("exports", "exports", 0, "value"),
        ("exports", "exports", True, "value"),
    ],
)
def test_a_usage_requirement_refuses_bad_arguments_naming_them(
    meter: object, limit: object, value: object, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        UsageRequirement(meter, limit, value)  # type: ignore[arg-type]


def test_a_usage_requirement_registers_its_limit_name_and_not_its_meter() -> None:
    UsageRequirement("meter-not-a-limit-1", "limit-of-usage-1")
    UsageRequirement("meter-not-a-limit-2", 5)
    assert "limit-of-usage-1" in registry.limit_names()
    assert not {"meter-not-a-limit-1", "meter-not-a-limit-2"} & (registry.limit_names() | registry.lookup_keys())


def test_a_usage_requirement_reads_a_named_limit_or_keeps_its_number() -> None:
    assert EXPORTS.limit_in({"exports": 10, "seats": 3}) == 10
    assert EXPORTS.limit_in({"seats": 3}) == 0  # no feature carries it: no use allowed
    assert UsageRequirement("exports", 7).limit_in({"exports": 10}) == 7


def test_an_admitted_use_is_allowed() -> None:
    assert judge_usage(EXPORTS, (True, 10), 10, "raise").allowed


def test_a_refused_use_is_a_denial_naming_the_meter_with_usage_and_limit() -> None:
    verdict = judge_usage(UsageRequirement("exports", "exports", 3), (False, 9), 10, "raise")

    assert (verdict.outcome, verdict.cause, verdict.feature) == (Outcome.DENIED, Cause.MISSING, "exports")
    assert verdict.usage == UsageShortfall("exports", 9, 10, 3)
    assert verdict.shortfall is None  # a limit's shortfall is another thing: handlers reading it see None
    assert verdict.feature is not None
    assert denial_usage(verdict.feature) == UsageShortfall("exports", 9, 10, 3)
    assert denial_body(verdict.feature) == {"error": "usage_exceeded", "meter": "exports", "usage": 9, "limit": 10}


@pytest.mark.parametrize(
    ("policy", "outcome", "cause"),
    [
        ("raise", Outcome.UNAVAILABLE, None),
        ("deny", Outcome.DENIED, Cause.UNAVAILABLE),
        ("allow", Outcome.ALLOWED, None),
    ],
)
def test_an_outage_of_the_counter_follows_the_policy(policy: str, outcome: Outcome, cause: Cause | None) -> None:
    error = outage()
    verdict = judge_usage(EXPORTS, error, 0, policy)  # type: ignore[arg-type]
    assert (verdict.outcome, verdict.cause) == (outcome, cause)
    assert verdict.error is (None if policy == "allow" else error)
    assert verdict.usage is None


def test_the_feature_and_limit_bodies_are_unchanged_beside_the_usage_one() -> None:
    assert denial_body("analytics") == {"error": "feature_required", "feature": "analytics"}
    limit = DeniedFeature("seats", Cause.MISSING, Shortfall("seats", 3, 4))
    assert denial_body(limit) == {"error": "limit_exceeded", "limit": "seats", "allowed": 3, "need": 4}
    assert denial_usage(limit) is None
    assert denial_usage("analytics") is None


def test_a_usage_denial_survives_pickling_with_its_usage() -> None:
    feature = DeniedFeature("exports", Cause.MISSING, UsageShortfall("exports", 5, 5))
    copy = pickle.loads(pickle.dumps(feature))
    assert (copy, copy.cause, copy.usage, copy.shortfall) == ("exports", Cause.MISSING, feature.usage, None)


_KEYS = st.sampled_from(["a", "b", "c", "d"])


@given(st.lists(_KEYS, max_size=3), st.lists(_KEYS, max_size=3), st.frozensets(_KEYS))
def test_allows_agrees_with_missing_and_with_the_check(
    all_of: list[str], any_of: list[str], held: frozenset[str]
) -> None:
    # The subset fast path (a gate with no any_of) answers exactly what missing() does, and so
    # does the per-request check that takes it.
    assume(all_of or any_of)
    requirement = Requirement.of(*all_of, any_of=any_of)
    assert requirement.allows(held) is (requirement.missing(held) is None)
    resolver = Resolver(StaticSource({"cus_1": held}))
    verdict = Entitlements(resolver, lambda: "cus_1").check(requirement)
    assert (verdict.outcome is Outcome.ALLOWED) is (requirement.missing(held) is None)
    assert verdict.feature == requirement.missing(held)


def test_a_requirement_survives_pickling_and_compares_by_its_keys() -> None:
    requirement = Requirement.of("a", "b")
    copy = pickle.loads(pickle.dumps(requirement))
    assert copy == requirement
    assert hash(copy) == hash(requirement)
    assert copy.allows(frozenset({"a", "b"}))
    assert not copy.allows(frozenset({"a"}))
    assert repr(requirement) == "Requirement(all_of=('a', 'b'), any_of=())"
