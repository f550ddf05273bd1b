"""Stripe Connect: a connected account's event (it carries ``account``) changes only the resolver
whose source acts for that account; the platform's own events change only the platform's.

Through the real stripe SDK against the fake Stripe, which keeps each account's customers apart.
"""

from __future__ import annotations

import pytest

from entitlegate import Resolver, StripeSource, WebhookHandler
from tests import stripe_events as ev
from tests.fake_stripe import FakeStripe

CUSTOMER = "cus_connect"


def _handler(fake: FakeStripe, account: str | None) -> WebhookHandler:
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, stripe_account=account)
    return WebhookHandler(Resolver(source), ev.SECRET)


@pytest.fixture
def platform(fake_stripe: FakeStripe) -> WebhookHandler:
    fake_stripe.set_customer(CUSTOMER, ["platform-feature"])
    return _handler(fake_stripe, None)


@pytest.fixture
def connected(fake_stripe: FakeStripe) -> WebhookHandler:
    fake_stripe.set_customer(CUSTOMER, ["connected-feature"], account="acct_connected")
    return _handler(fake_stripe, "acct_connected")


def test_a_connected_accounts_event_applies_to_the_resolver_acting_for_that_account(
    platform: WebhookHandler, connected: WebhookHandler
) -> None:
    payload = ev.summary_event(CUSTOMER, ["upgraded"], account="acct_connected")
    body, header = ev.signed(payload)

    assert connected.handle(body, header).action == "applied"
    assert platform.handle(body, header).action == "ignored"
    assert connected.resolver.features(CUSTOMER) == {"upgraded"}
    assert platform.resolver.features(CUSTOMER) == {"platform-feature"}


def test_a_platform_event_does_not_change_a_connected_accounts_resolver(
    platform: WebhookHandler, connected: WebhookHandler
) -> None:
    body, header = ev.signed(ev.summary_event(CUSTOMER, ["upgraded"]))

    assert connected.handle(body, header).action == "ignored"
    assert platform.handle(body, header).action == "applied"
    assert connected.resolver.features(CUSTOMER) == {"connected-feature"}


@pytest.mark.parametrize(
    "payload",
    [
        ev.summary_event(CUSTOMER, ["x"], account="acct_other"),
        ev.subscription_event(CUSTOMER, "deleted", account="acct_other"),
        ev.customer_deleted_event(CUSTOMER, account="acct_other"),
    ],
)
def test_another_connected_accounts_events_are_ignored(connected: WebhookHandler, payload: dict[str, object]) -> None:
    assert connected.resolver.features(CUSTOMER) == {"connected-feature"}

    result = connected.handle(*ev.signed(payload))

    assert result.action == "ignored"
    assert connected.resolver.features(CUSTOMER) == {"connected-feature"}


def test_an_account_that_is_not_a_string_is_an_invalid_payload(connected: WebhookHandler) -> None:
    from entitlegate import InvalidPayload

    payload = ev.summary_event(CUSTOMER, ["x"])
    payload["account"] = 42
    with pytest.raises(InvalidPayload, match="account"):
        connected.handle(*ev.signed(payload))
