"""The settings that build a resolver: one set of rules for every adapter, errors that name the setting.

The adapters' own tests (tests/django, tests/flask) show the same rules through each framework;
these pin the rules themselves, and that no message ever quotes a secret.
"""

from __future__ import annotations

import string
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entitlegate import MemoryCache, StripeSource
from entitlegate._settings import (
    DEFAULTS,
    RESOLVER_KEYS,
    build_cache,
    build_resolver,
    read_api_base,
    read_api_key,
    read_cache,
    read_max_retries,
    read_on_unavailable,
    read_stripe_account,
    read_timeout,
    read_ttls,
    read_webhook_secret,
)

NAME = "SETTING_NAME"  # what an adapter passes: ENTITLEGATE['STRIPE_API_KEY'], ENTITLEGATE_STRIPE_API_KEY, …


def flask_name(key: str) -> str:
    return f"ENTITLEGATE_{key}"


# -- the API key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk_test_123", "sk_live_123", "rk_test_123", "rk_live_123"])
def test_a_secret_or_restricted_key_is_accepted(key: str) -> None:
    assert read_api_key(key, NAME) == key


def test_a_missing_api_key_is_required_and_says_what_may_replace_it() -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} is required \(or pass a Resolver\): a Stripe secret"):
        read_api_key(None, NAME, alternative="or pass a Resolver")


def test_a_publishable_key_gets_its_own_message() -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} is a publishable key \(pk_…\), which cannot read entitlements"):
        read_api_key("pk_live_123", NAME)


@pytest.mark.parametrize("key", ["", "123", "sk-test-123", "whsec_123", "SK_TEST_123"])
def test_an_api_key_must_start_sk_or_rk(key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be a Stripe secret \(sk_…\) or restricted \(rk_…\) key$"):
        read_api_key(key, NAME)


@pytest.mark.parametrize("key", [" sk_test_123", "sk_test_123 ", "sk_test_123\n", "\tpk_test_123"])
def test_an_api_key_with_surrounding_whitespace_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} has whitespace around the key"):
        read_api_key(key, NAME)


@pytest.mark.parametrize("key", [123, b"sk_test_123", ["sk_test_123"]])
def test_an_api_key_that_is_not_a_string_is_refused_by_its_type(key: object) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be .* key string, not {type(key).__name__}$"):
        read_api_key(key, NAME)


# -- the webhook secret ---------------------------------------------------------------------------


def test_a_signing_secret_is_accepted() -> None:
    assert read_webhook_secret("whsec_123", NAME) == "whsec_123"


def test_a_missing_webhook_secret_is_refused() -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} is required"):
        read_webhook_secret(None, NAME)


@pytest.mark.parametrize("secret", ["", "sk_test_123", "WHSEC_123", "whsec"])
def test_a_webhook_secret_must_start_whsec(secret: str) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be the webhook endpoint's signing secret \(whsec_…\)$"):
        read_webhook_secret(secret, NAME)


@pytest.mark.parametrize("secret", [" whsec_123", "whsec_123 ", "whsec_123\r\n"])
def test_a_webhook_secret_with_surrounding_whitespace_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} has whitespace around the secret"):
        read_webhook_secret(secret, NAME)


def test_a_webhook_secret_that_is_not_a_string_is_refused_by_its_type() -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be .*, not list$"):
        read_webhook_secret(["whsec_123"], NAME)


# -- the Connect account and the API address ------------------------------------------------------


@pytest.mark.parametrize("account", [None, "acct_123"])
def test_a_connected_account_id_or_none_is_accepted(account: str | None) -> None:
    assert read_stripe_account(account, NAME) == account


@pytest.mark.parametrize("account", ["cus_123", "", 123])
def test_anything_else_is_not_a_connected_account(account: object) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be a connected account id \(acct_…\) or None, got"):
        read_stripe_account(account, NAME)


@pytest.mark.parametrize("base", [None, "https://api.stripe.com", "http://127.0.0.1:12111"])
def test_an_http_url_or_none_is_an_api_base(base: str | None) -> None:
    assert read_api_base(base, NAME) == base


@pytest.mark.parametrize("base", ["api.stripe.com", "ftp://api.stripe.com", "https://", "http://[::1", 443])
def test_anything_else_is_not_an_api_base(base: object) -> None:
    with pytest.raises(ValueError, match=rf"^{NAME} must be an http\(s\):// URL"):
        read_api_base(base, NAME)


# -- the cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["memory", "redis://localhost:6379/0", "rediss://cache:6380", "unix:///tmp/r.sock"])
def test_memory_or_a_redis_url_is_a_cache(cache: str) -> None:
    assert read_cache(cache, NAME) == cache


@pytest.mark.parametrize("cache", ["Memory", "memcached://localhost", "redis:/localhost", None, 6379])
def test_anything_else_is_not_a_cache(cache: object) -> None:
    with pytest.raises(ValueError, match=rf'^{NAME} must be "memory" or a redis://, rediss:// or unix:// URL, got'):
        read_cache(cache, NAME)


def test_a_wrong_cache_that_is_a_plain_word_is_quoted_to_help() -> None:
    with pytest.raises(ValueError, match=r"got 'memroy'$"):
        read_cache("memroy", NAME)


def test_a_redis_url_without_redis_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # makes "import redis" fail, as without the extra

    with pytest.raises(ImportError, match=rf'^{NAME} is a Redis URL, which needs .*pip install "entitlegate\[redis\]"'):
        read_cache("redis://:hunter2@localhost:6379/0", NAME)


def test_building_a_redis_cache_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "entitlegate.cache.redis", None)

    with pytest.raises(ImportError, match=rf'^{NAME} is a Redis URL, .*pip install "entitlegate\[redis\]"') as caught:
        build_cache("redis://:hunter2@localhost:6379/0", NAME)

    assert "hunter2" not in str(caught.value)


def test_a_redis_url_the_client_refuses_is_named_not_quoted() -> None:
    pytest.importorskip("redis")

    with pytest.raises(ValueError, match=rf"^{NAME} is not a Redis URL the redis client can use$"):
        build_cache("redis://:hunter2@localhost:hunter3/0", NAME)


def test_memory_builds_a_memory_cache() -> None:
    assert isinstance(build_cache("memory", NAME), MemoryCache)


# -- the TTLs and the outage policy ---------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "stale_ttl"), [(0, 0), (300, 86400), (1.5, 1.5), (0, float("inf"))])
def test_ttls_are_seconds_at_least_zero(ttl: float, stale_ttl: float) -> None:
    assert read_ttls(ttl, stale_ttl, "TTL_NAME", "STALE_NAME") == (float(ttl), float(stale_ttl))


@pytest.mark.parametrize("seconds", [-1, "300", None, True, float("nan")])
def test_a_ttl_that_is_not_seconds_names_the_ttl(seconds: object) -> None:
    with pytest.raises(ValueError, match=r"^TTL_NAME must be a number of seconds >= 0"):
        read_ttls(seconds, 86400, "TTL_NAME", "STALE_NAME")


@pytest.mark.parametrize("seconds", [-1, "86400", None, False, float("nan")])
def test_a_stale_ttl_that_is_not_seconds_names_the_stale_ttl(seconds: object) -> None:
    with pytest.raises(ValueError, match=r"^STALE_NAME must be a number of seconds >= 0"):
        read_ttls(300, seconds, "TTL_NAME", "STALE_NAME")


def test_a_stale_ttl_shorter_than_the_ttl_names_both() -> None:
    with pytest.raises(ValueError, match=r"^STALE_NAME \(60\) must be at least TTL_NAME \(600\)$"):
        read_ttls(600, 60, "TTL_NAME", "STALE_NAME")


@pytest.mark.parametrize("policy", ["raise", "deny", "allow"])
def test_raise_deny_and_allow_are_the_outage_policies(policy: str) -> None:
    assert read_on_unavailable(policy, NAME) == policy


@pytest.mark.parametrize("policy", ["Deny", "ignore", None, True])
def test_anything_else_is_not_an_outage_policy(policy: object) -> None:
    with pytest.raises(ValueError, match=rf'^{NAME} must be "raise", "deny" or "allow", got'):
        read_on_unavailable(policy, NAME)


# -- the builder ----------------------------------------------------------------------------------


def test_the_defaults_build_a_stripe_resolver_on_a_memory_cache() -> None:
    resolver = build_resolver({"STRIPE_API_KEY": "sk_test_123"}, flask_name)

    assert isinstance(resolver.source, StripeSource)
    assert isinstance(resolver.cache, MemoryCache)
    assert (resolver.ttl, resolver.stale_ttl, resolver.on_unavailable) == (300.0, 86400.0, "raise")


def test_every_setting_reaches_the_resolver() -> None:
    raw = {
        "STRIPE_API_KEY": "rk_test_123",
        "STRIPE_ACCOUNT": "acct_123",
        "STRIPE_API_BASE": "http://127.0.0.1:12111",
        "TTL": 5,
        "STALE_TTL": 50,
        "ON_UNAVAILABLE": "allow",
    }

    resolver = build_resolver(raw, flask_name)

    assert isinstance(resolver.source, StripeSource)
    assert resolver.source.stripe_account == "acct_123"
    assert (resolver.ttl, resolver.stale_ttl, resolver.on_unavailable) == (5.0, 50.0, "allow")


def test_the_builder_gives_the_source_its_timeout_and_retries() -> None:
    resolver = build_resolver(
        {"STRIPE_API_KEY": "sk_test_123", "STRIPE_TIMEOUT": 1.5, "STRIPE_MAX_RETRIES": 0}, flask_name
    )
    assert isinstance(resolver.source, StripeSource)
    assert (resolver.source._timeout, resolver.source._max_retries) == (1.5, 0)


def test_the_resolver_keys_are_the_keys_with_defaults() -> None:
    assert (
        RESOLVER_KEYS
        == tuple(DEFAULTS)
        == (
            "STRIPE_API_KEY",
            "STRIPE_ACCOUNT",
            "STRIPE_API_BASE",
            "STRIPE_TIMEOUT",
            "STRIPE_MAX_RETRIES",
            "CACHE",
            "TTL",
            "STALE_TTL",
            "ON_UNAVAILABLE",
        )
    )


@pytest.mark.parametrize(
    ("key", "wrong"),
    [
        ("STRIPE_API_KEY", "pk_test_123"),
        ("STRIPE_ACCOUNT", "cus_123"),
        ("STRIPE_API_BASE", "api.stripe.com"),
        ("CACHE", "disk"),
        ("TTL", -1),
        ("STALE_TTL", "a day"),
        ("ON_UNAVAILABLE", "maybe"),
        ("STRIPE_TIMEOUT", 0),
        ("STRIPE_TIMEOUT", "3"),
        ("STRIPE_MAX_RETRIES", -1),
        ("STRIPE_MAX_RETRIES", 1.5),
    ],
)
def test_the_builder_names_a_wrong_setting_as_the_adapter_writes_it(key: str, wrong: object) -> None:
    with pytest.raises(ValueError, match=f"^ENTITLEGATE_{key} "):
        build_resolver({"STRIPE_API_KEY": "sk_test_123", key: wrong}, flask_name)


def test_the_builder_says_what_may_replace_a_missing_api_key() -> None:
    with pytest.raises(ValueError, match=r"^ENTITLEGATE_STRIPE_API_KEY is required \(or pass a Resolver\)"):
        build_resolver({}, flask_name, alternative="or pass a Resolver")


# -- no message quotes a secret -------------------------------------------------------------------

# Distinctive enough that finding it in a message means it was quoted.
_secret_part = st.text(alphabet=string.ascii_letters + string.digits, min_size=16, max_size=40)
_around = st.sampled_from(["", " ", "\n", "\t ", "'"])
_READERS: list[Any] = [
    read_api_key,
    read_webhook_secret,
    read_stripe_account,
    read_api_base,
    read_cache,
    read_on_unavailable,
    read_timeout,
    read_max_retries,
    lambda value, name: read_ttls(value, 0, name, "STALE"),
]


def _message(reader: Any, value: object) -> str:
    try:
        reader(value, NAME)
    except (ValueError, ImportError) as error:
        return str(error)
    return ""


@given(
    prefix=st.sampled_from(["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"]),
    secret=_secret_part,
    before=_around,
    after=_around,
)
def test_no_message_quotes_a_stripe_secret_whichever_setting_it_is_put_in(
    prefix: str, secret: str, before: str, after: str
) -> None:
    value = f"{before}{prefix}{secret}{after}"

    for reader in _READERS:
        assert secret not in _message(reader, value)
        assert secret not in _message(reader, [value])


@given(
    scheme=st.sampled_from(["redis", "rediss", "unix", "memcached", "https", "ftp", "redis-ish"]),
    separator=st.sampled_from(["://", ":/", ":", "//"]),
    user=st.sampled_from(["", "default", "user"]),
    password=_secret_part,
    rest=st.sampled_from(["@localhost:6379/0", "@cache", "@localhost:notaport/0", "@", ""]),
    before=_around,
)
def test_no_message_quotes_a_password_in_a_url(
    scheme: str, separator: str, user: str, password: str, rest: str, before: str
) -> None:
    url = f"{before}{scheme}{separator}{user}:{password}{rest}"

    for reader in _READERS:
        assert password not in _message(reader, url)
        assert password not in _message(reader, {"url": url})
