"""The ENTITLEGATE settings: built lazily, rebuilt on change, wrong values named at first use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from entitlegate import MemoryCache, StripeSource
from entitlegate_django import get_resolver
from tests.django import factories
from tests.fake_stripe import FakeStripe


def test_the_resolver_is_built_from_the_settings(entitlegate_settings: dict[str, Any]) -> None:
    resolver = get_resolver()

    assert isinstance(resolver.source, StripeSource)
    assert isinstance(resolver.cache, MemoryCache)
    assert (resolver.ttl, resolver.stale_ttl, resolver.on_unavailable) == (300.0, 86400.0, "raise")


def test_the_resolver_is_built_once() -> None:
    assert get_resolver() is get_resolver()


def test_override_settings_rebuilds_the_resolver(entitlegate_settings: dict[str, Any]) -> None:
    before = get_resolver()

    with override_settings(ENTITLEGATE={**entitlegate_settings, "TTL": 5, "ON_UNAVAILABLE": "deny"}):
        inside = get_resolver()

    assert inside is not before
    assert (inside.ttl, inside.on_unavailable) == (5.0, "deny")
    assert get_resolver().ttl == 300.0


def test_stripe_account_is_sent_with_every_request(
    client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    configure(STRIPE_ACCOUNT="acct_1")
    fake_stripe.set_customer("cus_9", ["seats-feature"], account="acct_1")

    assert get_resolver().features("cus_9") == {"seats-feature"}
    assert fake_stripe.requests[0].headers["Stripe-Account"] == "acct_1"


def test_resolver_setting_names_a_ready_resolver(configure: Callable[..., None]) -> None:
    configure(RESOLVER="tests.django.factories.static_resolver")

    assert get_resolver() is factories.static_resolver


def test_resolver_setting_names_a_factory(configure: Callable[..., None]) -> None:
    configure(RESOLVER="tests.django.factories.make_static_resolver")

    assert get_resolver().features("cus_factory") == {"seats-feature"}


@pytest.mark.django_db
def test_a_resolver_from_the_setting_gates_views(
    client: Client, django_user_model: Any, configure: Callable[..., None]
) -> None:
    configure(RESOLVER="tests.django.factories.static_resolver")
    client.force_login(django_user_model.objects.create(username="cus_static"))

    assert client.get("/seats/").status_code == 200


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"STRIPE_API_KEY": None}, r"ENTITLEGATE\['STRIPE_API_KEY'\] is required"),
        ({"STRIPE_API_KEY": "pk_test_123"}, r"ENTITLEGATE\['STRIPE_API_KEY'\] is a publishable key"),
        ({"CUSTOMER": None}, r"ENTITLEGATE\['CUSTOMER'\] is required"),
        ({"CUSTOMER": "tests.django.nowhere.customer"}, r"ENTITLEGATE\['CUSTOMER'\] \('tests.django.nowhere"),
        ({"CUSTOMER": "tests.django.factories.async_denied"}, r"ENTITLEGATE\['CUSTOMER'\] .* not async"),
        ({"CACHE": "memcached://x"}, r"ENTITLEGATE\['CACHE'\] must be \"memory\" or a redis"),
        ({"TTL": -1}, r"ENTITLEGATE\['TTL'\] must be a number of seconds"),
        ({"TTL": 10, "STALE_TTL": 5}, r"ENTITLEGATE\['STALE_TTL'\] \(5\) must be at least ENTITLEGATE\['TTL'\] \(10\)"),
        ({"ON_UNAVAILABLE": "ignore"}, r"ENTITLEGATE\['ON_UNAVAILABLE'\] must be"),
        ({"RULES": {"pro": "x"}}, r"ENTITLEGATE\['RULES'\] is malformed: rule prefix must be a path"),
        ({"RULES": "/pro"}, r"ENTITLEGATE\['RULES'\] must be a dict"),
        ({"DENIED": "tests.django.factories.async_denied"}, r"ENTITLEGATE\['DENIED'\] .* plain function"),
        ({"RESOLVER": "tests.django.factories.not_a_resolver"}, r"ENTITLEGATE\['RESOLVER'\] must give a Resolver"),
        ({"STRIPE_ACCOUNT": "cus_1"}, r"ENTITLEGATE\['STRIPE_ACCOUNT'\] must be a connected account id"),
        ({"WEBHOOK_SECRET": ""}, r"ENTITLEGATE\['WEBHOOK_SECRET'\] must be"),
    ],
)
def test_a_wrong_setting_fails_with_its_name(
    configure: Callable[..., None], keys: dict[str, Any], message: str
) -> None:
    configure(**keys)

    with pytest.raises(ImproperlyConfigured, match=message):
        get_resolver()


def test_a_settings_error_never_shows_the_api_key(configure: Callable[..., None]) -> None:
    configure(STRIPE_API_KEY="pk_live_secretish_value")

    with pytest.raises(ImproperlyConfigured) as caught:
        get_resolver()

    assert "secretish" not in str(caught.value)


def test_a_redis_url_with_a_password_is_not_shown(configure: Callable[..., None]) -> None:
    configure(CACHE="redis:/user:hunter2@localhost/0")

    with pytest.raises(ImproperlyConfigured) as caught:
        get_resolver()

    assert "hunter2" not in str(caught.value)


def test_entitlegate_must_be_a_dict(settings: Any) -> None:
    settings.ENTITLEGATE = ["STRIPE_API_KEY"]

    with pytest.raises(ImproperlyConfigured, match="ENTITLEGATE must be a dict"):
        get_resolver()


def test_the_resolver_repr_shows_no_secret(entitlegate_settings: dict[str, Any]) -> None:
    from entitlegate_django.conf import current

    text = repr(current())

    assert entitlegate_settings["STRIPE_API_KEY"] not in text
    assert entitlegate_settings["WEBHOOK_SECRET"] not in text


@pytest.mark.redis
def test_a_redis_cache_url_builds_a_shared_cache_that_gates_views(
    configure: Callable[..., None], redis_server: Any, fake_stripe: FakeStripe
) -> None:
    redis_module = pytest.importorskip("entitlegate.cache.redis")
    configure(CACHE=redis_server.url)
    fake_stripe.set_customer("cus_redis", ["seats-feature"])

    resolver = get_resolver()

    assert isinstance(resolver.cache, redis_module.RedisCache)
    assert resolver.has_feature("cus_redis", "seats-feature")


@pytest.mark.redis
def test_a_settings_change_closes_the_redis_cache_the_settings_built(
    configure: Callable[..., None], redis_server: Any, fake_stripe: FakeStripe
) -> None:
    pytest.importorskip("entitlegate.cache.redis")
    configure(CACHE=redis_server.url)
    fake_stripe.set_customer("cus_redis", ["seats-feature"])
    get_resolver().features("cus_redis")
    assert _redis_listeners()

    configure(CACHE="memory")

    deadline = time.monotonic() + 5
    while _redis_listeners() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _redis_listeners()


def _redis_listeners() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "entitlegate-redis-listener"]


def test_a_wrong_setting_fails_when_the_server_loads_the_middleware(configure: Callable[..., None]) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    configure(ON_UNAVAILABLE="sometimes")

    with pytest.raises(ImproperlyConfigured, match=r"ENTITLEGATE\['ON_UNAVAILABLE'\]"):
        WSGIHandler()
