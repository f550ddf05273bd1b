"""The return refresh on RedisCache: its answer reaches every process; the right to ask is per process.

The once-a-minute limit is kept in memory on purpose (see ``entitlegate.upgrade``): the refreshed
set goes to Redis, so a second process never needs a refresh of its own to show the upgrade.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from entitlegate import RedisCache, Resolver, StripeSource, upgrade
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, FakeStripe

pytestmark = pytest.mark.redis


def resolver_on(cache: RedisCache, fake: FakeStripe) -> Resolver:
    return Resolver(StripeSource(api_key=fake.api_key, api_base=fake.url, max_network_retries=0), cache)


def test_a_return_refresh_in_one_process_is_seen_by_another_without_a_call(
    make_cache: Callable[..., RedisCache], fake_stripe: FakeStripe, customer: str
) -> None:
    # local_ttl=0: no in-process tier, so the second resolver reads Redis as another process would.
    here = resolver_on(make_cache(local_ttl=0), fake_stripe)
    there = resolver_on(make_cache(local_ttl=0), fake_stripe)
    fake_stripe.set_customer(customer, [])
    assert there.features(customer) == frozenset()
    fake_stripe.set_customer(customer, ["seats-feature"])  # upgraded in the portal

    assert upgrade.refresh_on_return(here, customer)
    asked = fake_stripe.calls(ACTIVE_ENTITLEMENTS)

    assert there.has_feature(customer, "seats-feature")
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == asked
    assert not upgrade.refresh_on_return(here, customer)  # the same process: once a minute
