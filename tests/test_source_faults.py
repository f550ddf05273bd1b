"""StripeSource against a Stripe that misbehaves: malformed answers, endless lists, refusals, hangs.

Every fault is served over real HTTP by the fake Stripe to the real SDK.
"""

from __future__ import annotations

import logging
import time

import pytest

from entitlegate import Resolver, SourceUnavailable, StripeSource
from entitlegate.sources import RefusedAnswer
from tests.doubles import Clock, CountingSource
from tests.fake_stripe import FakeStripe


def stripe_source(fake: FakeStripe, **options: object) -> StripeSource:
    return StripeSource(api_key=fake.api_key, api_base=fake.url, **options)  # type: ignore[arg-type]


# -- malformed answers --------------------------------------------------------------------------


@pytest.mark.parametrize("lookup_key", [None, 42, ""])
def test_a_lookup_key_that_is_not_a_string_is_a_refused_answer_logged_and_not_cached(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, lookup_key: object
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", lookup_key])
    resolver = Resolver(stripe_source(fake_stripe, max_retries=0))
    with caplog.at_level(logging.ERROR, logger="entitlegate"), pytest.raises(RefusedAnswer, match="lookup_key"):
        resolver.features("cus_1")
    assert "cus_1" in caplog.text
    assert "lookup_key" in caplog.text
    assert resolver.cache.get("cus_1") is None
    with pytest.raises(RefusedAnswer):
        resolver.features("cus_1")  # remembered for retry_after, not asked again at once
    assert fake_stripe.calls() == 1


@pytest.mark.asyncio
async def test_the_async_twin_refuses_a_malformed_lookup_key_too(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [None])
    with pytest.raises(RefusedAnswer, match="lookup_key"):
        await stripe_source(fake_stripe, max_retries=0).afetch("cus_1")


def test_a_list_that_never_ends_is_cut_off_after_a_bounded_number_of_pages(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.endless = True
    source = stripe_source(fake_stripe, max_retries=0, timeout=30)
    with pytest.raises(RefusedAnswer, match="has_more"):
        source.fetch("cus_1")
    assert fake_stripe.calls() == 100


@pytest.mark.asyncio
async def test_the_async_twin_cuts_off_a_list_that_never_ends(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.endless = True
    with pytest.raises(RefusedAnswer, match="has_more"):
        await stripe_source(fake_stripe, max_retries=0, timeout=30).afetch("cus_1")
    assert fake_stripe.calls() == 100


def test_a_user_source_returning_non_string_keys_is_refused_and_not_cached(caplog: pytest.LogCaptureFixture) -> None:
    source = CountingSource({"cus_1": {"seats-feature", None}, "cus_2": {"sso"}})  # type: ignore[arg-type]
    resolver = Resolver(source)
    with caplog.at_level(logging.ERROR, logger="entitlegate"), pytest.raises(RefusedAnswer, match="non-empty strings"):
        resolver.features("cus_1")
    assert "cus_1" in caplog.text
    assert resolver.cache.get("cus_1") is None
    assert resolver.features("cus_2") == {"sso"}  # one customer's bad answer is no outage


@pytest.mark.asyncio
async def test_an_async_user_source_returning_an_empty_key_is_refused() -> None:
    resolver = Resolver(CountingSource({"cus_1": {""}}))
    with pytest.raises(RefusedAnswer):
        await resolver.afeatures("cus_1")


# -- refusals: only the first page's unknown customer is "no features" ----------------------------


def test_a_404_on_a_later_page_is_an_error_not_an_empty_set(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_1", [f"feature-{i:03d}" for i in range(150)])
    fake_stripe.page_failures[2] = 404
    resolver = Resolver(stripe_source(fake_stripe, max_retries=0))
    with caplog.at_level(logging.ERROR, logger="entitlegate"), pytest.raises(RefusedAnswer, match="HTTP 404"):
        resolver.features("cus_1")
    assert resolver.cache.get("cus_1") is None
    assert "configuration problem" in caplog.text
    assert "did not answer" not in caplog.text


@pytest.mark.asyncio
async def test_the_async_twin_treats_a_404_on_a_later_page_as_an_error(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [f"feature-{i:03d}" for i in range(150)])
    fake_stripe.page_failures[2] = 404
    with pytest.raises(RefusedAnswer, match="HTTP 404"):
        await stripe_source(fake_stripe, max_retries=0).afetch("cus_1")


def test_the_unknown_customer_answer_is_stripes_404_naming_the_customer_param(fake_stripe: FakeStripe) -> None:
    source = stripe_source(fake_stripe, max_retries=0)
    error = None
    try:
        source._client.v1.entitlements.active_entitlements.list({"customer": "cus_nobody"})
    except Exception as raised:  # the SDK's own error, as Stripe's answer maps to it
        error = raised
    assert getattr(error, "http_status", None) == 404
    assert getattr(error, "code", None) == "resource_missing"
    assert getattr(error, "param", None) == "customer"
    assert "No such customer: 'cus_nobody'" in str(error)
    assert source.fetch("cus_nobody") == frozenset()


@pytest.mark.parametrize("status", [400, 402, 404])
def test_any_other_refusal_on_the_first_page_is_logged_as_a_configuration_problem(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.always_fail = status  # a 404 without param "customer": not the customer's absence
    with caplog.at_level(logging.ERROR, logger="entitlegate"), pytest.raises(RefusedAnswer, match=str(status)):
        stripe_source(fake_stripe, max_retries=0).fetch("cus_1")
    assert "configuration problem" in caplog.text


# -- a hung or trickling Stripe: one deadline per fetch ------------------------------------------


def test_a_hung_stripe_costs_one_deadline_however_many_retries(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.hang()
    source = stripe_source(fake_stripe, timeout=0.5, max_retries=2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"within 0.5 s .*STRIPE_TIMEOUT"):
        source.fetch("cus_1")
    assert time.monotonic() - started < 0.9  # three tries of 0.5 s each, with back-off, took > 2 s


def test_an_answer_that_trickles_in_does_not_outlive_the_deadline(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.trickle = 0.02  # ~250 bytes: ~5 s, each byte well inside any socket timeout
    source = stripe_source(fake_stripe, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        source.fetch("cus_1")
    assert time.monotonic() - started < 1.5
    fake_stripe.trickle = 0.0
    assert source.fetch("cus_1") == {"a"}  # the half-read connection was not reused


@pytest.mark.asyncio
async def test_the_async_twin_does_not_outlive_the_deadline_on_a_trickle(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.trickle = 0.02
    source = stripe_source(fake_stripe, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="STRIPE_TIMEOUT"):
        await source.afetch("cus_1")
    assert time.monotonic() - started < 1.5
    await source.aclose()


def test_max_network_retries_is_still_accepted_and_must_agree_with_max_retries(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.failures.append(500)
    assert stripe_source(fake_stripe, max_network_retries=1).fetch("cus_1") == {"a"}
    assert fake_stripe.calls() == 2
    with pytest.raises(ValueError, match="max_retries"):
        stripe_source(fake_stripe, max_retries=1, max_network_retries=2)


# -- the Resolver remembers an outage ------------------------------------------------------------


def test_a_hung_stripe_is_remembered_and_stale_is_served_at_once(fake_stripe: FakeStripe) -> None:
    clock = Clock()
    fake_stripe.set_customer("cus_1", ["a"])
    fake_stripe.set_customer("cus_2", ["b"])
    resolver = Resolver(stripe_source(fake_stripe, timeout=0.3, max_retries=0), ttl=60, retry_after=5, clock=clock)
    assert resolver.features("cus_1") == {"a"}
    assert resolver.features("cus_2") == {"b"}
    clock.advance(61)
    fake_stripe.hang()
    assert resolver.features("cus_1") == {"a"}  # waits one deadline, then serves stale
    calls = fake_stripe.calls()
    started = time.monotonic()
    assert resolver.features("cus_2") == {"b"}  # the outage is remembered: stale at once
    assert resolver.has_feature("cus_1", "a") is True
    assert time.monotonic() - started < 0.1
    assert fake_stripe.calls() == calls
    fake_stripe.release()
    clock.advance(5)
    assert resolver.features("cus_2") == {"b"}  # one probe, and Stripe answers again
    assert fake_stripe.calls() == calls + 1


@pytest.mark.asyncio
async def test_the_async_miss_path_remembers_an_outage_too() -> None:
    clock = Clock()
    source = CountingSource({"cus_1": {"a"}})
    resolver = Resolver(source, ttl=60, retry_after=5, clock=clock)
    await resolver.afeatures("cus_1")
    clock.advance(61)
    source.failing = SourceUnavailable("down")
    assert await resolver.afeatures("cus_1") == {"a"}
    assert await resolver.afeatures("cus_1") == {"a"}
    assert source.calls == 2


def test_an_outage_and_the_recovery_are_logged_once_naming_the_cause_never_the_key(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    fake_stripe.set_customer("cus_1", ["a"])
    resolver = Resolver(
        stripe_source(fake_stripe, max_retries=0), ttl=0, retry_after=1, on_unavailable="deny", clock=clock
    )
    fake_stripe.always_fail = 503
    with caplog.at_level(logging.INFO, logger="entitlegate"):
        for _ in range(5):
            assert resolver.has_feature("cus_1", "a") is False
            clock.advance(1)
        fake_stripe.always_fail = None
        assert resolver.has_feature("cus_1", "a") is True
        assert resolver.has_feature("cus_1", "a") is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    recoveries = [r for r in caplog.records if "answering again" in r.getMessage()]
    assert len(warnings) == 1
    assert "HTTP 503" in warnings[0].getMessage()
    assert "denying" in warnings[0].getMessage()
    assert len(recoveries) == 1
    assert fake_stripe.api_key not in caplog.text


def test_a_refused_answer_is_not_remembered_as_an_outage(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_bad", [None])
    fake_stripe.set_customer("cus_good", ["a"])
    resolver = Resolver(stripe_source(fake_stripe, max_retries=0))
    with pytest.raises(RefusedAnswer):
        resolver.features("cus_bad")
    assert resolver.features("cus_good") == {"a"}


def test_the_stripe_sdks_own_debug_log_never_shows_a_key(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk_test_wrong_key_0123456789"
    fake_stripe.set_customer("cus_1", ["a"])
    source = StripeSource(api_key=key, api_base=fake_stripe.url, max_retries=0)
    with caplog.at_level(logging.DEBUG, logger="stripe"), pytest.raises(SourceUnavailable):
        source.fetch("cus_1")
    assert "Invalid API Key provided" in caplog.text  # Stripe's answer was logged, and its key blanked
    assert "sk_test_" not in caplog.text
    assert "6789" not in caplog.text


def test_a_refused_answer_asked_again_and_again_is_logged_once_a_while(
    fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    fake_stripe.set_customer("cus_1", [None])
    # retry_after=0: nothing is remembered, so each check asks Stripe and the log must limit itself.
    resolver = Resolver(stripe_source(fake_stripe, max_retries=0), on_unavailable="deny", retry_after=0)
    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        for _ in range(5):
            assert resolver.has_feature("cus_1", "a") is False
    assert fake_stripe.calls() == 5
    assert len(caplog.records) == 1


def test_a_refused_answer_is_remembered_for_that_customer_so_each_request_does_not_page_again(
    fake_stripe: FakeStripe,
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", ["sso"])
    fake_stripe.endless = True
    clock = Clock()
    resolver = Resolver(stripe_source(fake_stripe, max_retries=0, timeout=30), retry_after=5.0, clock=clock)
    with pytest.raises(RefusedAnswer):
        resolver.features("cus_1")
    asked = fake_stripe.calls()
    for _ in range(3):
        with pytest.raises(RefusedAnswer, match="cus_1"):
            resolver.features("cus_1")
    assert fake_stripe.calls() == asked  # remembered: not 100 more requests per check
    fake_stripe.endless = False
    assert resolver.features("cus_2") == {"sso"}  # one customer's bad answer is no outage
    clock.advance(5.0)
    assert resolver.features("cus_1") == {"seats-feature"}  # asked again once the memory expires


@pytest.mark.asyncio
async def test_the_async_twin_remembers_a_refused_answer_too() -> None:
    source = CountingSource({"cus_1": {""}})
    resolver = Resolver(source)
    for _ in range(3):
        with pytest.raises(RefusedAnswer):
            await resolver.afeatures("cus_1")
    assert source.calls == 1
