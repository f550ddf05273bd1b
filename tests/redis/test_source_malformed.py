"""A malformed answer from Stripe never reaches Redis (it was a TypeError there: an HTTP 500)."""

from __future__ import annotations

import pytest

from entitlegate import RedisCache, Resolver, StripeSource
from entitlegate.sources import RefusedAnswer
from tests.fake_stripe import FakeStripe


def test_a_malformed_lookup_key_is_refused_before_it_reaches_redis(fake_stripe: FakeStripe, redis_url: str) -> None:
    fake_stripe.set_customer("cus_1", [None])
    cache = RedisCache(redis_url)
    try:
        resolver = Resolver(
            StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_retries=0),
            cache,
            on_unavailable="deny",
        )
        assert resolver.has_feature("cus_1", "seats-feature") is False  # not a TypeError: a 500
        with pytest.raises(RefusedAnswer):
            resolver.features("cus_1")
        assert cache.get("cus_1") is None
    finally:
        cache.close()
