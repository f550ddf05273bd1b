"""Sources: StripeSource through the real SDK over HTTP to the fake Stripe; StaticSource."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest

from entitlegate import (
    AsyncSource,
    PortalSessions,
    Resolver,
    Source,
    SourceUnavailable,
    StaticSource,
    StripeSource,
)
from tests.fake_stripe import FakeStripe


@pytest.fixture
def source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


def test_fetch_returns_the_lookup_keys_of_active_entitlements(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "analytics"])
    assert source.fetch("cus_1") == {"seats-feature", "analytics"}
    (request,) = fake_stripe.requests
    assert request.params == {"customer": "cus_1", "limit": "100"}


def test_fetch_pages_through_every_active_entitlement(source: StripeSource, fake_stripe: FakeStripe) -> None:
    keys = [f"feature-{i:03d}" for i in range(250)]
    fake_stripe.set_customer("cus_1", keys)
    assert source.fetch("cus_1") == set(keys)
    cursors = [r.params.get("starting_after") for r in fake_stripe.requests]
    assert cursors == [None, "ent_test_cus_1_0099", "ent_test_cus_1_0199"]


@pytest.mark.asyncio
async def test_afetch_pages_through_every_active_entitlement(source: StripeSource, fake_stripe: FakeStripe) -> None:
    keys = [f"feature-{i:03d}" for i in range(150)]
    fake_stripe.set_customer("cus_1", keys)
    assert await source.afetch("cus_1") == set(keys)
    assert fake_stripe.calls() == 2


def test_an_unknown_customer_has_no_features_and_is_cached(source: StripeSource, fake_stripe: FakeStripe) -> None:
    resolver = Resolver(source)
    assert resolver.features("cus_unknown") == frozenset()
    assert resolver.features("cus_unknown") == frozenset()
    assert fake_stripe.calls() == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_an_outage(
    source: StripeSource, fake_stripe: FakeStripe, status: int
) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.always_fail = status
    with pytest.raises(SourceUnavailable, match=str(status)):
        source.fetch("cus_1")


@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_error_is_an_outage_logged_once_naming_the_setting_not_the_key(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    key = "sk_test_wrong_key_0123456789"
    source = StripeSource(api_key=key, api_base=fake_stripe.url)
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.always_fail = status
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        for _ in range(3):
            with pytest.raises(SourceUnavailable) as raised:
                source.fetch("cus_1")
            assert key not in str(raised.value)
            assert raised.value.__cause__ is None
    assert len(caplog.records) == 1
    assert "STRIPE_API_KEY" in caplog.text
    assert key not in caplog.text


def test_a_network_error_is_an_outage() -> None:
    source = StripeSource(api_key="sk_test_x", api_base="http://127.0.0.1:9", max_network_retries=0)
    with pytest.raises(SourceUnavailable, match="APIConnectionError"):
        source.fetch("cus_1")


def test_a_client_built_from_a_key_retries_network_errors(fake_stripe: FakeStripe) -> None:
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url)
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.failures.append(500)
    assert source.fetch("cus_1") == {"a"}
    assert fake_stripe.calls() == 2


def test_stripe_account_sends_every_request_on_behalf_of_the_connected_account(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["platform-feature"])
    fake_stripe.set_customer("cus_1", ["connected-feature"], account="acct_123")
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, stripe_account="acct_123")
    assert source.fetch("cus_1") == {"connected-feature"}
    assert asyncio.run(source.afetch("cus_1")) == {"connected-feature"}
    assert {r.headers.get("Stripe-Account") for r in fake_stripe.requests} == {"acct_123"}


def test_the_async_twin_works_from_many_event_loops(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    for _ in range(3):
        assert asyncio.run(source.afetch("cus_1")) == {"a"}
    answers: list[frozenset[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(asyncio.run(source.afetch("cus_1")))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == [frozenset({"a"})] * 4


@pytest.mark.parametrize(
    ("key", "livemode"), [("sk_live_1", True), ("rk_live_1", True), ("sk_test_1", False), ("rk_test_1", False)]
)
def test_livemode_is_read_from_the_keys_prefix(key: str, livemode: bool) -> None:
    assert StripeSource(api_key=key).livemode is livemode


def test_an_explicit_livemode_wins_over_the_prefix() -> None:
    assert StripeSource(api_key="sk_test_1", livemode=True).livemode is True


def test_the_key_never_appears_in_the_repr() -> None:
    source = StripeSource(api_key="sk_live_secret_value", stripe_account="acct_1")
    assert "secret_value" not in repr(source)
    assert "acct_1" in repr(source)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"api_key": ""},
        {"api_key": "  "},
        {"api_key": "sk_test_1", "stripe_account": "cus_1"},
        {"api_key": "pk_test_1"},
        {"api_key": " sk_test_1"},
        {"api_key": "sk_test_1\n"},
        {"api_key": "whsec_1"},
        {"api_key": "sk_test_1", "api_base": "api.stripe.com"},
        {"api_key": "sk_test_1", "api_base": "ftp://api.stripe.com"},
        {"api_key": "sk_test_1", "timeout": 0},
        {"api_key": "sk_test_1", "max_retries": -1},
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="StripeSource") as raised:
        StripeSource(**kwargs)  # type: ignore[arg-type]
    assert "sk_test_1" not in str(raised.value)  # the same checks as the settings: never quoting a key


def test_a_portal_session_url_comes_from_stripe(source: StripeSource, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    url = source.create_portal_session("cus_1", "https://app.test/billing")
    assert url.startswith("https://billing.stripe.test/p/session/")
    (request,) = [r for r in fake_stripe.requests if r.method == "POST"]
    assert request.params == {"customer": "cus_1", "return_url": "https://app.test/billing"}


SPEC = Path(__file__).resolve().parents[2] / "shared" / "stripe" / "entitlements_subset.json"


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/stripe is not beside this checkout")
def test_the_fakes_objects_have_the_fields_stripes_spec_gives_them(fake_stripe: FakeStripe) -> None:
    spec = json.loads(SPEC.read_text())
    schemas = spec["components"]["schemas"]
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url)._client
    page = client.v1.entitlements.active_entitlements.list({"customer": "cus_1"}).to_dict()
    wrapper = spec["list_object_wrappers"]["EntitlementsResourceCustomerEntitlementList"]["schema"]
    assert set(page) == set(wrapper["required"])
    assert set(page["data"][0]) == set(schemas["entitlements.active_entitlement"]["required"])
    features = client.v1.entitlements.features.list().to_dict()
    assert set(features["data"][0]) == set(schemas["entitlements.feature"]["required"])
    example = spec["examples"]["webhook_event_entitlements.active_entitlement_summary.updated"]
    from tests.stripe_events import summary_event

    ours = summary_event("cus_1", ["premium"])
    assert set(ours) == set(example) - {"_comment"}
    assert set(ours["data"]["object"]) == set(example["data"]["object"])
    assert set(ours["data"]["object"]["entitlements"]) == set(example["data"]["object"]["entitlements"])


# -- StaticSource -------------------------------------------------------------------------------


def test_static_source_answers_from_its_mapping() -> None:
    source = StaticSource({"cus_1": ["a", "b"]})
    assert source.fetch("cus_1") == {"a", "b"}
    assert source.fetch("cus_2") == frozenset()
    assert asyncio.run(source.afetch("cus_1")) == {"a", "b"}


def test_static_source_reads_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps({"cus_1": ["seats-feature"]}))
    assert StaticSource.from_file(path).fetch("cus_1") == {"seats-feature"}


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", '{"cus_1": "seats-feature"}', '{"cus_1": [1]}', '{"": ["a"]}', "\udcff"]
)
def test_a_malformed_file_is_a_value_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=r"bad\.json"):
        StaticSource.from_file(path)


def test_a_missing_file_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.json"):
        StaticSource.from_file(tmp_path / "nope.json")


def test_a_slow_stripe_times_out_as_an_outage(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.latency = 2.0
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0, timeout=0.2)
    with pytest.raises(SourceUnavailable, match="APIConnectionError"):
        source.fetch("cus_1")
    with pytest.raises(SourceUnavailable, match="APIConnectionError"):
        asyncio.run(source.afetch("cus_1"))


# -- the seams: protocols checked with isinstance ---------------------------------------------------


class _SyncOnly:
    """A user's own source with the sync side only: no base class, just the right members."""

    livemode: bool | None = False

    def fetch(self, customer: str) -> frozenset[str]:
        return frozenset({"seats-feature"})


def test_the_shipped_sources_satisfy_the_protocols_they_implement(source: StripeSource) -> None:
    static = StaticSource({})
    assert isinstance(source, Source)
    assert isinstance(source, AsyncSource)
    assert isinstance(source, PortalSessions)
    assert isinstance(static, Source)
    assert isinstance(static, AsyncSource)
    assert not isinstance(static, PortalSessions)


def test_a_users_object_with_fetch_and_livemode_is_a_source_without_being_an_async_one() -> None:
    assert isinstance(_SyncOnly(), Source)
    assert not isinstance(_SyncOnly(), AsyncSource)
    assert not isinstance(_SyncOnly(), PortalSessions)


def test_an_object_without_fetch_or_livemode_is_no_source() -> None:
    class NoLivemode:
        def fetch(self, customer: str) -> frozenset[str]:
            return frozenset()

    assert not isinstance(NoLivemode(), Source)
    assert not isinstance(object(), Source)


def test_the_gate_names_the_same_portal_protocol_as_the_core() -> None:
    from entitlegate import gate

    assert gate.PortalSessions is PortalSessions
