"""``entitlegate inspect``, as a real subprocess against the fake Stripe and a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from entitlegate import RedisCache, Resolver, StripeSource
from tests.fake_stripe import FakeStripe
from tests.redis_server import RedisServer
from tests.test_cli import run


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, empty."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture
def app_resolver(fake_stripe: FakeStripe, redis_url: str) -> Iterator[Resolver]:
    """The app's resolver, as a web process has it: the fake Stripe and the shared Redis."""
    cache = RedisCache(redis_url)
    yield Resolver(StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url), cache, ttl=300)
    cache.close()


def test_inspect_without_a_cache_shows_what_stripe_says(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics", "sso"])
    done = run(fake_stripe, "inspect", "cus_1")
    assert done.returncode == 0, done.stderr
    assert "no cache to look at" in done.stdout
    assert "Stripe now:\n  features    analytics, sso" in done.stdout


def test_inspect_shows_the_redis_entry_with_its_version_age_and_time_left(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    app_resolver.features("cus_1")
    done = run(fake_stripe, "inspect", "cus_1", "--cache", redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    redis_part = done.stdout.split("Redis entry:")[1].split("Stripe now:")[0]
    assert "features    analytics" in redis_part
    assert " UTC  (age " in redis_part
    assert "fresh for   " in redis_part
    assert "stale window 24.0 h left" in redis_part
    assert "local copy (this process):\n  none" in done.stdout
    assert "difference: none" in done.stdout
    assert redis_url not in done.stdout + done.stderr


def test_inspect_reads_the_cache_from_entitlegate_cache(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    app_resolver.features("cus_1")
    done = run(fake_stripe, "inspect", "cus_1", env={"ENTITLEGATE_CACHE": redis_url})
    assert "Redis entry:\n  features    analytics" in done.stdout


def test_inspect_reports_a_cached_set_that_differs_from_stripe_and_exits_1(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_1", ["analytics", "sso"])
    app_resolver.features("cus_1")
    fake_stripe.set_customer("cus_1", ["analytics", "audit-log"])  # a webhook that never arrived
    done = run(fake_stripe, "inspect", "cus_1", "--cache", redis_url)
    assert done.returncode == 1
    assert "difference (Redis entry): sso only in the Redis entry; audit-log only at Stripe" in done.stdout


def test_inspect_leaves_the_cache_as_it_found_it(fake_stripe: FakeStripe, redis_url: str) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    run(fake_stripe, "inspect", "cus_1", "--cache", redis_url)
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("*cus_1*") == []


def test_inspect_json_has_every_tier_limits_and_the_check_of_a_feature(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_feature("analytics", {"seats": "5"})
    fake_stripe.set_customer("cus_1", ["analytics"])
    before = time.time()
    app_resolver.features("cus_1")
    done = run(fake_stripe, "inspect", "cus_1", "--cache", redis_url, "--feature", "analytics", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    entry = report["tiers"]["redis"]
    assert entry["features"] == ["analytics"]
    assert entry["fresh"] is True
    assert 0 < entry["ttl_left"] <= 300
    assert entry["age"] >= 0
    assert entry["version"].endswith(" UTC")
    assert time.strftime("%Y-%m-%d", time.gmtime(before)) in entry["version"]
    assert report["tiers"]["local"] is None
    assert report["stripe"] == {"features": ["analytics"]}
    assert report["limits"] == {"redis": {"seats": "5"}, "stripe": {"seats": "5"}}
    assert report["check"] == {"allowed": True, "source": "cache", "from": "redis"}
    assert report["difference"] == {}


def test_inspect_of_an_invalidated_entry_says_the_next_check_asks_stripe(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    app_resolver.features("cus_1")
    app_resolver.invalidate("cus_1")
    done = run(fake_stripe, "inspect", "cus_1", "--cache", redis_url, "--feature", "sso")
    assert "fresh for   0 s (expired or invalidated: the next check asks Stripe)" in done.stdout
    assert "a check of 'sso' now: denied (source 'source', from stripe)" in done.stdout


def test_inspect_with_stripe_down_shows_the_cache_and_exits_2(
    fake_stripe: FakeStripe, redis_url: str, app_resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    app_resolver.features("cus_1")
    fake_stripe.always_fail = 503
    done = run(fake_stripe, "inspect", "cus_1", "--cache", redis_url)
    assert done.returncode == 2
    assert "Redis entry:\n  features    analytics" in done.stdout
    assert "Stripe now:\n  did not answer: Stripe did not answer" in done.stdout
    assert "entitlegate inspect: cannot ask Stripe about cus_1" in done.stderr


def test_inspect_with_a_rejected_key_exits_2_and_never_echoes_it(fake_stripe: FakeStripe) -> None:
    wrong = "sk_test_wrong_0123456789abcdef"
    done = run(fake_stripe, "inspect", "cus_1", env={"STRIPE_API_KEY": wrong})
    assert done.returncode == 2
    assert "Stripe rejected the API key" in done.stderr
    assert "0123456789" not in done.stdout + done.stderr


def test_inspect_with_redis_down_says_so_and_exits_1(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    done = run(fake_stripe, "inspect", "cus_1", "--cache", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert "Redis entry:\n  Redis at redis://127.0.0.1:1/0 did not answer" in done.stdout
    assert "Stripe now:\n  features    analytics" in done.stdout


def test_a_cache_that_is_not_a_redis_url_is_a_usage_error(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "inspect", "cus_1", "--cache", "memcached://secret@host")
    assert done.returncode == 2
    assert "--cache must be" in done.stderr
    assert "secret" not in done.stderr


def test_inspect_has_help(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "inspect", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: entitlegate inspect")
