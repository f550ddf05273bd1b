"""The feature catalog: Features and their limits from Stripe (real SDK over HTTP to the fake)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
from pathlib import Path

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from entitlegate import SourceUnavailable, StaticSource, StripeSource
from entitlegate.catalog import Catalog, CatalogSource, CatalogStore, Feature, audit, parse_limit
from tests.doubles import Clock
from tests.fake_stripe import FEATURES, FakeStripe
from tests.polling import wait_for


@pytest.fixture
def source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


# -- parsing metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit"),
    [("0", 0), ("3", 3), ("25", 25), ("007", 7), ("unlimited", math.inf)],
)
def test_a_whole_number_or_unlimited_is_a_limit(value: str, limit: float) -> None:
    assert parse_limit(value) == limit


@pytest.mark.parametrize("value", ["", " 3", "3 ", "-1", "+3", "2.5", "1e3", "1,000", "Unlimited", "ten", "²", "inf"])
def test_anything_else_is_not_a_limit(value: str) -> None:
    assert parse_limit(value) is None


@given(st.text(max_size=12))
def test_parse_limit_answers_a_number_only_for_digits_or_unlimited(value: str) -> None:
    limit = parse_limit(value)
    if value == "unlimited":
        assert limit == math.inf
    elif value and all("0" <= char <= "9" for char in value):
        assert limit == int(value)
    else:
        assert limit is None


def test_a_feature_keeps_metadata_that_looks_meant_as_a_number_as_malformed() -> None:
    feature = Feature("feat_1", "pro", metadata={"seats": "25", "projects": "2.5", "api": "Unlimited", "tier": "gold"})
    assert dict(feature.limits) == {"seats": 25}
    assert dict(feature.malformed) == {"projects": "2.5", "api": "Unlimited"}
    assert feature.metadata["tier"] == "gold"  # plain metadata: neither a limit nor a finding


# -- StripeSource.list_features ---------------------------------------------------------------------


def test_stripe_source_has_a_catalog(source: StripeSource) -> None:
    assert isinstance(source, CatalogSource)
    assert isinstance(StaticSource({}), CatalogSource)


def test_list_features_returns_active_and_archived_features_with_metadata(
    source: StripeSource, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_feature("pro", {"seats": "25"})
    fake_stripe.set_feature("legacy", {"seats": "5"}, active=False)
    features = {feature.lookup_key: feature for feature in source.list_features()}
    assert set(features) == {"pro", "legacy"}
    assert features["pro"].active
    assert dict(features["pro"].limits) == {"seats": 25}
    assert not features["legacy"].active
    asked = [request.params for request in fake_stripe.requests]
    assert asked == [{"archived": "false", "limit": "100"}, {"archived": "true", "limit": "100"}]


def test_list_features_pages_through_every_feature(source: StripeSource, fake_stripe: FakeStripe) -> None:
    for index in range(230):
        fake_stripe.set_feature(f"feature-{index:03d}", {"seats": str(index)})
    features = source.list_features()
    assert len(features) == 230
    assert fake_stripe.calls(FEATURES) == 4  # three pages of active ones, one (empty) of archived


@pytest.mark.asyncio
async def test_alist_features_pages_like_list_features(source: StripeSource, fake_stripe: FakeStripe) -> None:
    for index in range(120):
        fake_stripe.set_feature(f"feature-{index:03d}")
    fake_stripe.set_feature("gone", active=False)
    features = await source.alist_features()
    assert len(features) == 121
    assert fake_stripe.calls(FEATURES) == 3
    await source.aclose()


@pytest.mark.parametrize("status", [401, 403, 429, 500])
def test_a_failed_feature_list_is_an_outage_that_quotes_no_key(
    source: StripeSource, fake_stripe: FakeStripe, status: int
) -> None:
    fake_stripe.always_fail = status
    with pytest.raises(SourceUnavailable, match=str(status)) as raised:
        source.list_features()
    assert fake_stripe.api_key not in str(raised.value)


def test_the_fake_expands_each_entitlements_feature_as_stripe_does(
    stripe_client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_feature("pro", {"seats": "25"}, feature_id="feat_pro")
    fake_stripe.set_customer("cus_1", ["pro"])
    service = stripe_client.v1.entitlements.active_entitlements
    plain = service.list({"customer": "cus_1"})
    expanded = service.list({"customer": "cus_1", "expand": ["data.feature"]})
    assert plain.data[0].feature == "feat_pro"
    feature = expanded.data[0].feature
    assert not isinstance(feature, str)
    assert feature.id == "feat_pro"
    assert feature.metadata.to_dict() == {"seats": "25"}


def test_the_fake_filters_features_by_lookup_key(stripe_client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("pro")
    fake_stripe.set_feature("team")
    page = stripe_client.v1.entitlements.features.list({"lookup_key": "team"})
    assert [feature.lookup_key for feature in page.data] == ["team"]


# -- StaticSource ------------------------------------------------------------------------------------


def test_static_source_serves_the_features_it_was_given_and_those_customers_hold() -> None:
    source = StaticSource({"cus_1": ["pro", "extra"]}, features={"pro": {"seats": "25"}})
    features = {feature.lookup_key: feature for feature in source.list_features()}
    assert dict(features["pro"].limits) == {"seats": 25}
    assert dict(features["extra"].metadata) == {}


def test_static_source_reads_features_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "entitlements.json"
    path.write_text(json.dumps({"customers": {"cus_1": ["pro"]}, "features": {"pro": {"seats": "unlimited"}}}))
    source = StaticSource.from_file(path)
    assert source.fetch("cus_1") == {"pro"}
    (feature,) = source.list_features()
    assert feature.limits["seats"] == math.inf


def test_static_source_refuses_metadata_that_is_not_strings() -> None:
    with pytest.raises(TypeError, match="pro"):
        StaticSource({}, features={"pro": {"seats": 3}})  # type: ignore[dict-item]


# -- Catalog: caching, refreshes, outages ---------------------------------------------------------------


def test_the_catalog_is_fetched_once_per_ttl(source: StripeSource, fake_stripe: FakeStripe) -> None:
    clock = Clock()
    catalog = Catalog(source, ttl=300, clock=clock)
    fake_stripe.set_feature("pro", {"seats": "25"})
    catalog.snapshot()
    catalog.snapshot()
    assert catalog.fetches == 1
    clock.advance(301)
    catalog.snapshot()
    assert catalog.fetches == 2


def test_concurrent_refreshes_make_one_source_call(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("pro")
    fake_stripe.latency = 0.05
    catalog = Catalog(source)
    threads = [threading.Thread(target=catalog.snapshot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert catalog.fetches == 1
    assert fake_stripe.calls(FEATURES) == 2  # one list of each kind


@pytest.mark.asyncio
async def test_concurrent_async_refreshes_make_one_source_call(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("pro")
    catalog = Catalog(source)
    await asyncio.gather(*(catalog.asnapshot() for _ in range(8)))
    assert catalog.fetches == 1
    await source.aclose()


def test_an_outage_serves_the_stale_catalog(source: StripeSource, fake_stripe: FakeStripe) -> None:
    clock = Clock()
    catalog = Catalog(source, ttl=300, stale_ttl=3600, clock=clock)
    fake_stripe.set_feature("pro", {"seats": "25"})
    catalog.snapshot()
    clock.advance(301)
    fake_stripe.always_fail = 503
    assert catalog.snapshot().by_key["pro"].limits["seats"] == 25
    clock.advance(3600)
    with pytest.raises(SourceUnavailable):
        catalog.snapshot()


def test_an_outage_with_no_catalog_raises(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500
    with pytest.raises(SourceUnavailable):
        Catalog(source).snapshot()


def test_an_unknown_lookup_key_refreshes_once_per_interval(source: StripeSource, fake_stripe: FakeStripe) -> None:
    clock = Clock()
    catalog = Catalog(source, refresh_interval=10, clock=clock)
    fake_stripe.set_feature("pro", {"seats": "25"})
    catalog.snapshot()
    fake_stripe.set_feature("new", {"seats": "50"})
    clock.advance(10)
    for _ in range(20):
        assert catalog.limits_for(frozenset({"pro", "new"}))["seats"] == 50
    assert catalog.fetches == 2


def test_notice_of_an_unknown_feature_id_marks_one_refresh_without_io(
    source: StripeSource, fake_stripe: FakeStripe
) -> None:
    clock = Clock()
    catalog = Catalog(source, refresh_interval=10, clock=clock)
    fake_stripe.set_feature("pro")
    catalog.snapshot()
    clock.advance(10)
    calls = fake_stripe.calls(FEATURES)
    assert not catalog.notice(feature_ids=["feat_test_pro"])
    for _ in range(50):  # fifty summary events naming a feature it has not seen
        catalog.notice(feature_ids=["feat_test_new"])
    assert fake_stripe.calls(FEATURES) == calls  # the webhook path costs no Stripe call
    catalog.snapshot()
    catalog.snapshot()
    assert catalog.fetches == 2


class _DictStore:
    """A CatalogStore in a dict, standing in for the Redis one the next round brings."""

    def __init__(self) -> None:
        self.stored: tuple[tuple[Feature, ...], float] | None = None

    def load(self) -> tuple[tuple[Feature, ...], float] | None:
        return self.stored

    def save(self, features: tuple[Feature, ...], fetched_at: float) -> None:
        if self.stored is None or fetched_at >= self.stored[1]:
            self.stored = (features, fetched_at)

    async def aload(self) -> tuple[tuple[Feature, ...], float] | None:
        return self.stored

    async def asave(self, features: tuple[Feature, ...], fetched_at: float) -> None:
        self.save(features, fetched_at)


def test_catalogs_sharing_a_store_make_one_source_call(source: StripeSource, fake_stripe: FakeStripe) -> None:
    store = _DictStore()
    assert isinstance(store, CatalogStore)
    fake_stripe.set_feature("pro", {"seats": "25"})
    first, second = Catalog(source, store=store), Catalog(source, store=store)
    first.snapshot()
    assert second.snapshot().by_key["pro"].limits["seats"] == 25
    assert first.fetches + second.fetches == 1


# -- audit: the app's names against the catalog --------------------------------------------------------


def test_audit_names_an_unknown_lookup_key_with_the_closest_real_ones() -> None:
    features = [Feature("feat_1", "analytics"), Feature("feat_2", "audit-log")]
    (finding,) = audit(features, {"analytcs", "audit-log"})
    assert finding.kind == "unknown_lookup_key"
    assert finding.suggestions[0] == "analytics"
    assert "did you mean 'analytics'" in finding.message


def test_audit_reports_archived_features_malformed_and_unknown_limits() -> None:
    features = [
        Feature("feat_1", "pro", metadata={"seats": "lots", "projects": "2.5"}),
        Feature("feat_2", "legacy", active=False, metadata={"seats": "5"}),
    ]
    kinds = {(finding.kind, finding.name) for finding in audit(features, {"pro", "legacy"}, {"seats", "sets"})}
    assert kinds == {
        ("archived_feature", "legacy"),
        ("malformed_limit", "seats"),
        ("malformed_limit", "projects"),
        ("unknown_limit", "sets"),
    }


def test_lookup_keys_the_account_does_not_list_cost_one_refresh_per_interval() -> None:
    clock = Clock()
    catalog = Catalog(StaticSource({}, features={"pro": {"seats": "25"}}), refresh_interval=10, clock=clock)
    catalog.snapshot()
    clock.advance(10)
    for index in range(20):  # twenty plan sets, each with a lookup_key no feature has
        assert catalog.limits_for(frozenset({"pro", f"ghost-{index}"}))["seats"] == 25
    assert catalog.fetches == 2
    clock.advance(10)
    catalog.limits_for(frozenset({"ghost-new"}))
    assert catalog.fetches == 3


class _ParentBlockingSource(StaticSource):
    """A StaticSource whose catalog, in the process that made it, answers only once released."""

    def __init__(self) -> None:
        super().__init__({}, features={"pro": {"seats": "25"}})
        self.parent = os.getpid()
        self.entered = threading.Event()
        self.release = threading.Event()

    def list_features(self) -> tuple[Feature, ...]:
        if os.getpid() == self.parent:
            self.entered.set()
            self.release.wait(10)
        return super().list_features()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_refresh_refreshes_on_its_own() -> None:
    source = _ParentBlockingSource()
    catalog = Catalog(source)
    refreshing = threading.Thread(target=catalog.snapshot)
    refreshing.start()
    source.entered.wait(10)
    pid = os.fork()
    if pid == 0:  # the parent's refresh is not running here: waiting on it would hang the child
        ok = False
        try:
            ok = catalog.snapshot().by_key["pro"].limits["seats"] == 25
        finally:
            os._exit(0 if ok else 1)
    exited: list[int] = []

    def child_exited() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            exited.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    try:
        wait_for(child_exited, timeout=5)
    finally:
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        source.release.set()
        refreshing.join()
    assert exited == [0]


def test_an_outage_asks_stripe_again_at_most_once_per_interval(source: StripeSource, fake_stripe: FakeStripe) -> None:
    clock = Clock()
    catalog = Catalog(source, ttl=300, refresh_interval=10, clock=clock)
    fake_stripe.set_feature("pro", {"seats": "25"})
    catalog.snapshot()
    clock.advance(301)
    fake_stripe.always_fail = 503
    for _ in range(50):
        assert catalog.limits_for(frozenset({"pro"}))["seats"] == 25
    assert catalog.fetches == 2
    clock.advance(10)
    fake_stripe.always_fail = None
    catalog.snapshot()
    assert catalog.fetches == 3
    assert catalog.current.expires > clock()


def test_features_compare_and_hash_by_value() -> None:
    one, same = Feature("feat_1", "pro", metadata={"seats": "3"}), Feature("feat_1", "pro", metadata={"seats": "3"})
    assert one == same
    assert len({one, same}) == 1
