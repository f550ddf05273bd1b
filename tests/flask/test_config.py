"""Start-up: every wrong or missing ENTITLEGATE_* key fails init_app with its name, never a secret."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_flask import Entitlements, portal_redirect
from tests.flask.conftest import AppFactory

API_KEY = "ENTITLEGATE_STRIPE_API_KEY"
SECRET_KEY_VALUE = "sk_test_do_not_print_me_123"


def test_missing_api_key_names_the_key(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match=API_KEY):
        make_app(ENTITLEGATE_STRIPE_API_KEY=...)


@pytest.mark.parametrize("key", ["pk_live_do_not_print_me", " sk_test_do_not_print_me", "do_not_print_me"])
def test_api_key_that_is_not_a_secret_key_is_refused_without_quoting_it(make_app: AppFactory, key: str) -> None:
    with pytest.raises(ValueError, match=API_KEY) as error:
        make_app(ENTITLEGATE_STRIPE_API_KEY=key)
    assert "do_not_print_me" not in str(error.value)


def test_a_publishable_key_is_refused_as_one(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match=f"{API_KEY} is a publishable key"):
        make_app(ENTITLEGATE_STRIPE_API_KEY="pk_test_123")


def test_missing_webhook_secret_names_the_key(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="ENTITLEGATE_WEBHOOK_SECRET"):
        make_app(ENTITLEGATE_WEBHOOK_SECRET=...)


def test_wrong_webhook_secret_is_refused_without_quoting_it(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="ENTITLEGATE_WEBHOOK_SECRET") as error:
        make_app(ENTITLEGATE_WEBHOOK_SECRET="sk_test_do_not_print_me")
    assert "do_not_print_me" not in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ENTITLEGATE_TTL", "300"),
        ("ENTITLEGATE_TTL", -1),
        ("ENTITLEGATE_TTL", True),
        ("ENTITLEGATE_TTL", None),
        ("ENTITLEGATE_STALE_TTL", float("nan")),
        ("ENTITLEGATE_ON_UNAVAILABLE", "maybe"),
        ("ENTITLEGATE_CACHE", "disk"),
        ("ENTITLEGATE_STRIPE_ACCOUNT", "cus_1"),
        ("ENTITLEGATE_STRIPE_API_BASE", "api.stripe.com"),
        ("ENTITLEGATE_STRIPE_API_BASE", "https://"),
        ("ENTITLEGATE_WEBHOOK_URL", "stripe/webhook"),
        ("ENTITLEGATE_LOGIN_VIEW", ""),
    ],
)
def test_wrong_value_names_the_key(make_app: AppFactory, key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=key):
        make_app(**{key: value})


def test_stale_ttl_shorter_than_ttl_names_both_keys(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match=r"ENTITLEGATE_STALE_TTL .* ENTITLEGATE_TTL"):
        make_app(ENTITLEGATE_TTL=600, ENTITLEGATE_STALE_TTL=60)


def test_cache_url_is_never_quoted(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="ENTITLEGATE_CACHE") as error:
        make_app(ENTITLEGATE_CACHE="memcached://user:do_not_print_me@cache:11211")
    assert "do_not_print_me" not in str(error.value)


def test_unknown_key_is_reported_as_a_likely_typo(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="ENTITLEGATE_TTLS is not an entitlegate setting"):
        make_app(ENTITLEGATE_TTLS=30)


def test_unknown_key_names_the_closest_setting(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match=r"ENTITLEGATE_LOGIN_VEIW .*\(did you mean ENTITLEGATE_LOGIN_VIEW\?\)"):
        make_app(ENTITLEGATE_LOGIN_VEIW="login")


def test_settings_build_the_resolver(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_TTL=30, ENTITLEGATE_STALE_TTL=60, ENTITLEGATE_ON_UNAVAILABLE="deny")
    resolver = app.extensions["entitlegate"].resolver
    assert (resolver.ttl, resolver.stale_ttl, resolver.on_unavailable) == (30.0, 60.0, "deny")
    assert isinstance(resolver.cache, MemoryCache)


def test_stripe_account_reaches_the_source(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_STRIPE_ACCOUNT="acct_123")
    assert app.extensions["entitlegate"].resolver.source.stripe_account == "acct_123"


def test_a_given_resolver_needs_no_stripe_settings(make_app: AppFactory) -> None:
    resolver = Resolver(StaticSource({"cus_1": ["seats-feature"]}))
    entitlements = Entitlements(resolver=resolver)
    entitlements.customer_loader(lambda: "cus_1")
    app = make_app(entitlements, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)
    assert app.extensions["entitlegate"].resolver is resolver
    assert app.test_client().get("/seats").status_code == 200


def test_a_given_resolver_conflicts_with_the_settings_it_replaces(make_app: AppFactory) -> None:
    entitlements = Entitlements(resolver=Resolver(StaticSource({})))
    with pytest.raises(ValueError, match="ENTITLEGATE_STRIPE_API_KEY is set, but Entitlements\\(resolver="):
        make_app(entitlements, ENTITLEGATE_STRIPE_API_BASE=...)


def test_resolver_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="Resolver"):
        Entitlements(resolver=StaticSource({}))  # type: ignore[arg-type]


def test_portal_redirect_needs_a_source_that_makes_portal_sessions(make_app: AppFactory) -> None:
    entitlements = Entitlements(resolver=Resolver(StaticSource({})))
    entitlements.denied_handler(portal_redirect)
    with pytest.raises(ValueError, match="portal_redirect needs"):
        make_app(entitlements, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)


def test_init_app_twice_on_one_app_is_refused(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="already"):
        Entitlements().init_app(app)


def test_no_secret_shows_in_reprs(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_STRIPE_API_KEY=SECRET_KEY_VALUE)
    state = app.extensions["entitlegate"]
    shown = repr(state) + repr(state.hooks) + repr(state.resolver) + repr(state.webhook)
    assert SECRET_KEY_VALUE not in shown
    assert app.config["ENTITLEGATE_WEBHOOK_SECRET"] not in shown


def test_redis_cache_without_the_redis_extra_says_what_to_install(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "entitlegate.cache.redis", None)  # as if the extra were missing
    with pytest.raises(ImportError, match=r'pip install "entitlegate\[redis\]"'):
        make_app(ENTITLEGATE_CACHE="redis://127.0.0.1:1/0")


def test_import_without_flask_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "entitlegate_flask" or name.startswith("entitlegate_flask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flask", None)  # as if Flask were not installed
    with pytest.raises(ImportError, match=r'pip install "entitlegate\[flask\]"'):
        importlib.import_module("entitlegate_flask")


def test_public_names_are_pinned() -> None:
    import entitlegate_flask

    assert entitlegate_flask.__all__ == [
        "Entitlements",
        "EntitlementsExtension",
        "current_entitlements",
        "portal_redirect",
        "requires_feature",
        "requires_limit",
        "requires_usage",
    ]
