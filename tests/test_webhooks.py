"""WebhookHandler: verified Stripe events change the cache, in order, exactly once."""

from __future__ import annotations

import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlegate import (
    InvalidPayload,
    InvalidSignature,
    Resolver,
    SourceUnavailable,
    StripeSource,
    WebhookHandler,
    WebhookResult,
)
from tests import stripe_events as ev
from tests.doubles import Clock, CountingSource
from tests.fake_stripe import FakeStripe

NOW = 1_785_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW + 0.5)


@pytest.fixture
def source() -> CountingSource:
    source = CountingSource({"cus_1": {"basic"}})
    source.livemode = False
    return source


@pytest.fixture
def resolver(source: CountingSource, clock: Clock) -> Resolver:
    return Resolver(source, clock=clock, wall_clock=clock)


@pytest.fixture
def handler(resolver: Resolver) -> WebhookHandler:
    return WebhookHandler(resolver, ev.SECRET)


def deliver(handler: WebhookHandler, payload: dict[str, object]) -> WebhookResult:
    return handler.handle(*ev.signed(payload))


def test_a_summary_event_replaces_the_customers_set(handler: WebhookHandler, resolver: Resolver) -> None:
    resolver.features("cus_1")
    result = deliver(handler, ev.summary_event("cus_1", ["seats-feature", "analytics"], created=NOW))
    assert result.action == "applied"
    assert result.customer == "cus_1"
    assert result.event_type == "entitlements.active_entitlement_summary.updated"
    assert resolver.features("cus_1") == {"seats-feature", "analytics"}


def test_a_revocation_is_a_missing_entry_so_the_set_is_replaced_not_merged(
    handler: WebhookHandler, resolver: Resolver
) -> None:
    deliver(handler, ev.summary_event("cus_1", ["a", "b"], created=NOW))
    deliver(handler, ev.summary_event("cus_1", ["b"], created=NOW + 1))
    assert resolver.features("cus_1") == {"b"}


def test_an_applied_event_answers_without_asking_the_source(
    handler: WebhookHandler, resolver: Resolver, source: CountingSource
) -> None:
    deliver(handler, ev.summary_event("cus_2", ["seats-feature"], created=NOW))
    assert resolver.has_feature("cus_2", "seats-feature")
    assert source.calls == 0


def test_an_event_older_than_the_cached_entry_is_stale_and_changes_nothing(
    handler: WebhookHandler, resolver: Resolver
) -> None:
    deliver(handler, ev.summary_event("cus_1", ["new"], created=NOW + 10))
    result = deliver(handler, ev.summary_event("cus_1", ["old"], created=NOW + 5))
    assert result.action == "stale"
    assert resolver.features("cus_1") == {"new"}


def test_an_event_in_the_same_second_as_a_fetch_applies(handler: WebhookHandler, resolver: Resolver) -> None:
    resolver.features("cus_1")  # fetched at NOW + 0.5
    result = deliver(handler, ev.summary_event("cus_1", ["upgraded"], created=NOW))
    assert result.action == "applied"
    assert resolver.features("cus_1") == {"upgraded"}


def test_an_event_within_the_clock_skew_before_a_fetch_applies(handler: WebhookHandler, resolver: Resolver) -> None:
    resolver.features("cus_1")  # fetched at NOW + 0.5 by this host's clock: versioned NOW - 1.5
    result = deliver(handler, ev.summary_event("cus_1", ["upgraded"], created=NOW - 1))
    assert result.action == "applied"  # the host's clock may be ahead: the fetch may predate it
    assert resolver.features("cus_1") == {"upgraded"}


def test_an_event_from_before_a_fetch_less_the_clock_skew_is_stale(handler: WebhookHandler, resolver: Resolver) -> None:
    resolver.features("cus_1")  # fetched at NOW + 0.5: versioned NOW - 1.5, in second NOW - 2
    assert deliver(handler, ev.summary_event("cus_1", ["older"], created=NOW - 3)).action == "stale"


def test_a_redelivered_event_is_a_duplicate(handler: WebhookHandler) -> None:
    payload = ev.summary_event("cus_1", ["a"], created=NOW)
    assert deliver(handler, payload).action == "applied"
    assert deliver(handler, payload).action == "duplicate"


@pytest.mark.parametrize("kind", ["created", "updated", "deleted", "paused", "resumed", "trial_will_end"])
def test_subscription_events_invalidate_the_customer(
    handler: WebhookHandler, resolver: Resolver, source: CountingSource, kind: str
) -> None:
    resolver.features("cus_1")
    source.mapping["cus_1"] = frozenset({"pro"})
    result = deliver(handler, ev.subscription_event("cus_1", kind, created=NOW - 100))
    assert (result.action, result.customer) == ("invalidated", "cus_1")
    assert resolver.features("cus_1") == {"pro"}
    assert source.calls == 2


def test_customer_deleted_leaves_the_customer_the_empty_set(
    handler: WebhookHandler, resolver: Resolver, source: CountingSource
) -> None:
    resolver.features("cus_1")
    assert deliver(handler, ev.customer_deleted_event("cus_1")).action == "applied"
    assert resolver.features("cus_1") == frozenset()
    assert source.calls == 1


def test_an_invalidation_is_never_stale(handler: WebhookHandler, resolver: Resolver) -> None:
    deliver(handler, ev.summary_event("cus_1", ["a"], created=NOW + 50))
    assert deliver(handler, ev.subscription_event("cus_1", created=NOW - 1000)).action == "invalidated"


def test_other_event_types_are_ignored(handler: WebhookHandler) -> None:
    result = deliver(handler, ev.event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"}))
    assert result.action == "ignored"
    assert result.customer is None


def test_an_event_from_the_other_mode_is_ignored(handler: WebhookHandler, resolver: Resolver) -> None:
    result = deliver(handler, ev.summary_event("cus_1", ["live-feature"], livemode=True, created=NOW))
    assert result.action == "ignored"
    assert resolver.features("cus_1") == {"basic"}


def test_a_truncated_summary_is_refetched_from_stripe(fake_stripe: FakeStripe) -> None:
    keys = [f"feature-{i:02d}" for i in range(25)]
    fake_stripe.set_customer("cus_big", keys)
    resolver = Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url))
    handler = WebhookHandler(resolver, ev.SECRET)
    result = deliver(handler, ev.summary_event("cus_big", keys[:10], has_more=True))
    assert result.action == "applied"
    assert resolver.features("cus_big") == set(keys)
    assert fake_stripe.calls() == 1


def test_a_truncated_summary_in_an_outage_raises_and_is_not_remembered(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_big", ["a"])
    resolver = Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0))
    handler = WebhookHandler(resolver, ev.SECRET)
    payload = ev.summary_event("cus_big", ["a"], has_more=True)
    fake_stripe.always_fail = 503
    with pytest.raises(SourceUnavailable):
        deliver(handler, payload)
    fake_stripe.always_fail = None
    assert deliver(handler, payload).action == "applied"  # Stripe's retry applies it


def test_a_stripe_source_filters_events_by_its_keys_mode(fake_stripe: FakeStripe) -> None:
    resolver = Resolver(StripeSource(api_key="sk_live_abc", api_base=fake_stripe.url))
    handler = WebhookHandler(resolver, ev.SECRET)
    assert deliver(handler, ev.summary_event("cus_1", ["x"], livemode=False)).action == "ignored"
    assert deliver(handler, ev.summary_event("cus_1", ["x"], livemode=True)).action == "applied"


def test_1000_shuffled_events_end_with_the_newest_set(resolver: Resolver, handler: WebhookHandler) -> None:
    payloads = [ev.summary_event("cus_1", [f"plan-{i}"], created=NOW + i) for i in range(1000)]
    random.Random(7).shuffle(payloads)
    for payload in payloads:
        deliver(handler, payload)
    assert resolver.features("cus_1") == {"plan-999"}


@pytest.mark.asyncio
async def test_ahandle_is_the_async_twin(handler: WebhookHandler, resolver: Resolver) -> None:
    body, header = ev.signed(ev.summary_event("cus_1", ["a"], created=NOW))
    assert (await handler.ahandle(body, header)).action == "applied"
    assert (await handler.ahandle(body, header)).action == "duplicate"
    stale = ev.signed(ev.summary_event("cus_1", ["b"], created=NOW - 5))
    assert (await handler.ahandle(*stale)).action == "stale"
    invalidate = ev.signed(ev.subscription_event("cus_1"))
    assert (await handler.ahandle(*invalidate)).action == "invalidated"
    assert await resolver.afeatures("cus_1") == {"basic"}


# -- bad input -----------------------------------------------------------------------------------


def test_a_wrong_secret_is_an_invalid_signature(handler: WebhookHandler) -> None:
    body, header = ev.signed(ev.summary_event("cus_1", ["a"]), "whsec_someone_else")
    with pytest.raises(InvalidSignature):
        handler.handle(body, header)


def test_a_timestamp_outside_tolerance_is_an_invalid_signature(handler: WebhookHandler) -> None:
    body, header = ev.signed(ev.summary_event("cus_1", ["a"]), timestamp=int(time.time()) - 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        handler.handle(body, header)


def test_a_tampered_body_is_an_invalid_signature(handler: WebhookHandler) -> None:
    body, header = ev.signed(ev.summary_event("cus_1", ["a"]))
    with pytest.raises(InvalidSignature):
        handler.handle(body.replace(b'"a"', b'"b"'), header)


@pytest.mark.parametrize("header", [None, "", "   ", "garbage", "t=abc,v1=00", "v1=00", "t=1", "t=1,v1=\u00e9\u00e9"])
def test_a_missing_or_malformed_header_is_an_invalid_signature(handler: WebhookHandler, header: str | None) -> None:
    body, _ = ev.signed(ev.summary_event("cus_1", ["a"]))
    with pytest.raises(InvalidSignature):
        handler.handle(body, header)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"object": "event"}',
        b'{"object": "v2.core.event", "id": "evt_1"}',
        b'{"object": "event", "id": "evt_1", "type": "x", "created": "yesterday", "data": {"object": {}}}',
        b'{"object": "event", "id": "evt_1", "type": "x", "created": 1, "data": []}',
        b'{"object": "event", "id": "evt_1", "type": "x", "created": 1, "livemode": "no", "data": {"object": {}}}',
        b'{"object": "event", "id": "evt_1", "type": "entitlements.active_entitlement_summary.updated", '
        b'"created": 1, "data": {"object": {"customer": "cus_1", "entitlements": {"data": [{"id": 1}]}}}}',
        b'{"object": "event", "id": "evt_1", "type": "entitlements.active_entitlement_summary.updated", '
        b'"created": 1, "data": {"object": {"customer": "cus_1", "entitlements": {"data": [], "has_more": "yes"}}}}',
        b'{"object": "event", "id": "evt_1", "type": "entitlements.active_entitlement_summary.updated", '
        b'"created": 1, "data": {"object": {"entitlements": {"data": []}}}}',
        b'{"object": "event", "id": "evt_1", "type": "customer.subscription.updated", '
        b'"created": 1, "data": {"object": {"customer": 5}}}',
    ],
)
def test_a_body_that_is_not_a_stripe_event_is_an_invalid_payload(handler: WebhookHandler, body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        handler.handle(body, ev.sign(body))


def test_the_handler_never_shows_its_secret(handler: WebhookHandler) -> None:
    assert ev.SECRET not in repr(handler)
    body, header = ev.signed(ev.summary_event("cus_1", ["a"]), "whsec_other")
    with pytest.raises(InvalidSignature) as raised:
        handler.handle(body, header)
    assert ev.SECRET not in str(raised.value)


@pytest.mark.parametrize("secret", ["", "  ", None])
def test_a_missing_secret_fails_at_construction(resolver: Resolver, secret: str | None) -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookHandler(resolver, secret)  # type: ignore[arg-type]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
_event_like = st.fixed_dictionaries(
    {},
    optional={
        "object": st.sampled_from(["event", "list", 3]) | _json,
        "id": st.text(max_size=12) | _json,
        "type": st.sampled_from(
            [ev.summary_event("c", [])["type"], "customer.deleted", "customer.subscription.updated", "x"]
        )
        | _json,
        "created": st.integers() | _json,
        "livemode": st.booleans() | _json,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "object": st.fixed_dictionaries(
                    {},
                    optional={
                        "customer": st.text(max_size=8) | _json,
                        "id": st.text(max_size=8) | _json,
                        "entitlements": st.fixed_dictionaries(
                            {},
                            optional={
                                "data": st.lists(
                                    st.fixed_dictionaries({}, optional={"lookup_key": st.text(max_size=5) | _json})
                                    | _json,
                                    max_size=3,
                                )
                                | _json,
                                "has_more": st.booleans() | _json,
                            },
                        )
                        | _json,
                    },
                )
                | _json,
            },
        )
        | _json,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200), header=st.none() | st.text(max_size=80))
def test_any_bytes_and_any_header_give_a_result_or_one_of_the_two_errors(
    handler: WebhookHandler, body: bytes, header: str | None
) -> None:
    try:
        result = handler.handle(body, header)
    except (InvalidSignature, InvalidPayload):
        return
    assert isinstance(result, WebhookResult)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=_event_like)
def test_any_correctly_signed_json_gives_a_result_or_invalid_payload(
    handler: WebhookHandler, payload: dict[str, object]
) -> None:
    body = json.dumps(payload).encode()
    try:
        result = handler.handle(body, ev.sign(body))
    except InvalidPayload:
        return
    assert isinstance(result, WebhookResult)
    assert result.action in {"applied", "invalidated", "ignored", "stale", "duplicate"}


# -- respond: the HTTP answer every adapter renders ---------------------------------------------


def test_respond_answers_200_with_what_the_event_did(handler: WebhookHandler) -> None:
    payload = ev.summary_event("cus_1", ["a"], created=NOW, event_id="evt_ok")
    answer = handler.respond(*ev.signed(payload))
    assert (answer.status, answer.body) == (
        200,
        {"event_id": "evt_ok", "event_type": payload["type"], "customer": "cus_1", "action": "applied"},
    )


def test_respond_answers_400_for_a_bad_delivery(handler: WebhookHandler) -> None:
    assert handler.respond(b"{}", "t=1,v1=00").body["error"] == "invalid_signature"
    assert handler.respond(b"[]", ev.sign(b"[]")).body["error"] == "invalid_payload"
    assert handler.respond(b"[]", ev.sign(b"[]")).status == 400


def test_respond_answers_503_when_the_event_cannot_be_applied_now(
    handler: WebhookHandler, source: CountingSource
) -> None:
    source.failing = KeyError("a bug somewhere below")
    answer = handler.respond(*ev.signed(ev.summary_event("cus_1", ["a"], has_more=True)))
    assert (answer.status, answer.body["error"]) == (503, "source_unavailable")


@pytest.mark.asyncio
async def test_arespond_is_the_async_twin(handler: WebhookHandler) -> None:
    answer = await handler.arespond(*ev.signed(ev.summary_event("cus_1", ["a"], created=NOW)))
    assert answer.status == 200
    assert (await handler.arespond(b"", None)).status == 400


@pytest.mark.parametrize("secret", ["sk_test_not_a_webhook_secret", "test_secret", " whsec_padded "])
def test_a_secret_that_is_not_a_signing_secret_fails_at_construction(resolver: Resolver, secret: str) -> None:
    with pytest.raises(ValueError, match="WebhookHandler secret") as raised:
        WebhookHandler(resolver, secret)
    assert secret.strip() not in str(raised.value)


@pytest.mark.parametrize("tolerance", [0, -1, 1.5, True])
def test_tolerance_must_be_a_positive_whole_number_of_seconds(resolver: Resolver, tolerance: object) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        WebhookHandler(resolver, ev.SECRET, tolerance=tolerance)  # type: ignore[arg-type]


def test_a_ten_year_old_signature_is_refused_at_the_smallest_tolerance(resolver: Resolver) -> None:
    handler = WebhookHandler(resolver, ev.SECRET, tolerance=1)
    body, header = ev.signed(ev.summary_event("cus_1", ["a"]), timestamp=int(time.time()) - 10 * 365 * 86400)
    with pytest.raises(InvalidSignature, match="tolerance"):
        handler.handle(body, header)
