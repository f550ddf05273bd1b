"""The ``ENTITLEGATE`` settings dict: its defaults, how each key is read, and what it builds.

The resolver, the webhook handler and the rest are built once, on first use, and rebuilt when
the setting changes (``override_settings`` in tests), so nothing touches Stripe or Redis at
import time. System checks (``checks.py``) read the same keys with the same readers, so a wrong
value is reported alike at ``manage.py check`` and at first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from entitlegate.cache import Cache, MemoryCache
from entitlegate.gate import Rules
from entitlegate.resolver import Resolver
from entitlegate.sources import StripeSource
from entitlegate.webhooks import WebhookHandler

__all__ = ["DEFAULTS", "Config", "Invalid", "current", "get_resolver"]

#: Every key of the ``ENTITLEGATE`` dict and its default.
DEFAULTS: Final[Mapping[str, Any]] = {
    "STRIPE_API_KEY": None,  # a secret (sk_…) or restricted (rk_…) key; required unless RESOLVER is set
    "STRIPE_ACCOUNT": None,  # a connected account id (acct_…) to act for, with Stripe Connect
    "STRIPE_API_BASE": None,  # another Stripe API address (stripe-mock, a test double)
    "WEBHOOK_SECRET": None,  # the webhook endpoint's signing secret (whsec_…)
    "CACHE": "memory",  # "memory" (per process) or a redis:// / rediss:// / unix:// URL (shared)
    "TTL": 300.0,  # seconds an answer is trusted without asking Stripe
    "STALE_TTL": 86400.0,  # seconds an answer may still be served while Stripe is down
    "ON_UNAVAILABLE": "raise",  # Stripe down and nothing cached: "raise" (503), "deny" or "allow"
    "CUSTOMER": None,  # dotted path of callable(request) -> Stripe customer id | None; required
    "RULES": {},  # URL path prefix -> lookup_key or list of lookup_keys (EntitlementMiddleware)
    "DENIED": None,  # dotted path of callable(request, FeatureDenied) -> response; None: 403
    "RESOLVER": None,  # dotted path of a ready Resolver or a zero-argument factory of one
}

#: The keys RESOLVER takes the place of.
RESOLVER_REPLACES: Final = (
    "STRIPE_API_KEY",
    "STRIPE_ACCOUNT",
    "STRIPE_API_BASE",
    "CACHE",
    "TTL",
    "STALE_TTL",
    "ON_UNAVAILABLE",
)

_POLICIES: Final = ("raise", "deny", "allow")
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")

CustomerFunc = Callable[[HttpRequest], "str | None"]
DeniedHandler = Callable[[HttpRequest, Any], HttpResponseBase]


class Invalid(ImproperlyConfigured):
    """A key of ``ENTITLEGATE`` has a wrong value. The message names the key and never a secret."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"ENTITLEGATE[{key!r}] {message}" if key else f"ENTITLEGATE {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class Config:
    """What the settings build: one resolver, webhook handler, customer function, rules, handler."""

    resolver: Resolver
    customer: CustomerFunc
    rules: Rules
    denied: DeniedHandler | None
    webhook_handler: WebhookHandler | None
    owns_cache: bool = False  # built from CACHE (not handed in by RESOLVER): closed on a settings change


# -- reading one key ----------------------------------------------------------------------------


def raw_settings() -> Mapping[str, Any]:
    """The ``ENTITLEGATE`` dict; raises :class:`Invalid` when it is not a dict."""
    raw = getattr(settings, "ENTITLEGATE", {})
    if not isinstance(raw, Mapping):
        raise Invalid(None, f"must be a dict, not {type(raw).__name__}")
    return raw


def value(raw: Mapping[str, Any], key: str) -> Any:
    return raw.get(key, DEFAULTS[key])


def read_api_key(raw: Mapping[str, Any]) -> str:
    key = value(raw, "STRIPE_API_KEY")
    if key is None:
        raise Invalid("STRIPE_API_KEY", "is required (or RESOLVER): a Stripe secret (sk_…) or restricted (rk_…) key")
    if not isinstance(key, str) or not key.strip():
        raise Invalid("STRIPE_API_KEY", "must be a non-empty string")
    if key.startswith("pk_"):
        raise Invalid("STRIPE_API_KEY", "is a publishable key (pk_…), which cannot read entitlements: use sk_… or rk_…")
    return key


def read_account(raw: Mapping[str, Any]) -> str | None:
    account = value(raw, "STRIPE_ACCOUNT")
    if account is not None and (not isinstance(account, str) or not account.startswith("acct_")):
        raise Invalid("STRIPE_ACCOUNT", f"must be a connected account id like 'acct_…' or None, got {account!r}")
    return account


def read_api_base(raw: Mapping[str, Any]) -> str | None:
    base = value(raw, "STRIPE_API_BASE")
    if base is not None and (not isinstance(base, str) or not base.startswith(("http://", "https://"))):
        raise Invalid("STRIPE_API_BASE", f"must be an http(s):// URL or None, got {base!r}")
    return base


def read_webhook_secret(raw: Mapping[str, Any]) -> str | None:
    secret = value(raw, "WEBHOOK_SECRET")
    if secret is not None and (not isinstance(secret, str) or not secret.strip()):
        raise Invalid("WEBHOOK_SECRET", "must be the webhook endpoint's signing secret ('whsec_…') or None")
    return secret


def read_cache(raw: Mapping[str, Any]) -> str:
    cache = value(raw, "CACHE")
    if cache == "memory":
        return "memory"
    if not isinstance(cache, str) or not cache.startswith(_REDIS_SCHEMES):
        raise Invalid("CACHE", f'must be "memory" or a redis://, rediss:// or unix:// URL, got {_redacted(cache)!r}')
    if not _importable("redis"):
        raise Invalid("CACHE", 'is a Redis URL, which needs the redis extra: pip install "entitlegate[redis]"')
    return cache


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked with sys.modules[name] = None
        return False


def read_ttls(raw: Mapping[str, Any]) -> tuple[float, float]:
    ttls = []
    for key in ("TTL", "STALE_TTL"):
        seconds = value(raw, key)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise Invalid(key, f"must be a number of seconds >= 0, got {seconds!r}")
        ttls.append(float(seconds))
    ttl, stale_ttl = ttls
    if stale_ttl < ttl:
        raise Invalid("STALE_TTL", f"({stale_ttl:g}) must be at least TTL ({ttl:g})")
    return ttl, stale_ttl


def read_policy(raw: Mapping[str, Any]) -> Any:
    policy = value(raw, "ON_UNAVAILABLE")
    if policy not in _POLICIES:
        raise Invalid("ON_UNAVAILABLE", f'must be "raise", "deny" or "allow", got {policy!r}')
    return policy


def read_customer(raw: Mapping[str, Any]) -> CustomerFunc:
    path = value(raw, "CUSTOMER")
    if path is None:
        raise Invalid("CUSTOMER", "is required: the dotted path of a function(request) -> Stripe customer id or None")
    func = _import(raw, "CUSTOMER")
    if not callable(func):
        raise Invalid("CUSTOMER", f"({path!r}) must name a function(request) -> Stripe customer id or None")
    if iscoroutinefunction(func):
        raise Invalid("CUSTOMER", f"({path!r}) must be a plain function, not async: it is called on every check")
    customer: CustomerFunc = func
    return customer


def read_denied(raw: Mapping[str, Any]) -> DeniedHandler | None:
    path = value(raw, "DENIED")
    if path is None:
        return None
    handler = _import(raw, "DENIED")
    if not callable(handler) or iscoroutinefunction(handler):
        raise Invalid("DENIED", f"({path!r}) must name a plain function(request, exception) -> response")
    denied: DeniedHandler = handler
    return denied


def read_rules(raw: Mapping[str, Any]) -> Rules:
    rules = value(raw, "RULES")
    if isinstance(rules, (str, bytes)) or not isinstance(rules, (Mapping, list, tuple)):
        raise Invalid("RULES", f"must be a dict of URL path prefix to lookup_key(s), not {type(rules).__name__}")
    try:
        return Rules(rules)
    except (TypeError, ValueError) as error:
        raise Invalid("RULES", f"is malformed: {error}") from None


def read_resolver_path(raw: Mapping[str, Any]) -> object | None:
    """What RESOLVER names (a Resolver or a factory), imported but not called; None when unset."""
    if value(raw, "RESOLVER") is None:
        return None
    target = _import(raw, "RESOLVER")
    if not isinstance(target, Resolver) and not callable(target):
        raise Invalid("RESOLVER", "must name a Resolver or a zero-argument function that returns one")
    named: object = target
    return named


def _import(raw: Mapping[str, Any], key: str) -> Any:
    path = value(raw, key)
    if not isinstance(path, str):
        raise Invalid(key, f"must be a dotted path string, got {type(path).__name__}")
    try:
        return import_string(path)
    except ImportError as error:
        raise Invalid(key, f"({path!r}) does not import: {error}") from None


def _redacted(url: object) -> object:
    # A Redis URL may carry a password: show its scheme only.
    if isinstance(url, str) and "@" in url:
        return url.split(":", 1)[0] + "://…"
    return url


# -- building -----------------------------------------------------------------------------------


def build(raw: Mapping[str, Any]) -> Config:
    """Read every key and build the objects. Raises :class:`Invalid` naming the first bad key."""
    # Everything that cannot fail late is read before the resolver opens any connection.
    customer, rules, denied, secret = read_customer(raw), read_rules(raw), read_denied(raw), read_webhook_secret(raw)
    resolver = _build_resolver(raw)
    return Config(
        resolver=resolver,
        customer=customer,
        rules=rules,
        denied=denied,
        webhook_handler=WebhookHandler(resolver, secret) if secret is not None else None,
        owns_cache=value(raw, "RESOLVER") is None,
    )


def _build_resolver(raw: Mapping[str, Any]) -> Resolver:
    target = read_resolver_path(raw)
    if target is not None:
        resolver = target if isinstance(target, Resolver) else target()  # type: ignore[operator]
        if not isinstance(resolver, Resolver):
            raise Invalid("RESOLVER", f"must give a Resolver, its factory returned {type(resolver).__name__}")
        return resolver
    ttl, stale_ttl = read_ttls(raw)
    source = StripeSource(api_key=read_api_key(raw), stripe_account=read_account(raw), api_base=read_api_base(raw))
    cache = _build_cache(read_cache(raw))
    return Resolver(source, cache, ttl=ttl, stale_ttl=stale_ttl, on_unavailable=read_policy(raw))


def _build_cache(cache: str) -> Cache:
    if cache == "memory":
        return MemoryCache()
    try:
        # Imported by name, on use: only sites with a Redis CACHE need the redis extra.
        redis_module = importlib.import_module("entitlegate.cache.redis")
    except ImportError as error:
        message = f'is a Redis URL, which needs the redis extra: pip install "entitlegate[redis]" ({error})'
        raise Invalid("CACHE", message) from None
    redis_cache: Cache = redis_module.RedisCache(cache)
    return redis_cache


# -- the one current Config ---------------------------------------------------------------------

_lock = threading.Lock()
_config: Config | None = None


def current() -> Config:
    """The Config of the current settings, built on first use; raises :class:`Invalid` if wrong."""
    config = _config
    if config is None:
        config = _build_current()
    return config


def _build_current() -> Config:
    global _config
    with _lock:
        if _config is None:
            _config = build(raw_settings())
        return _config


def get_resolver() -> Resolver:
    """The :class:`~entitlegate.Resolver` the ``ENTITLEGATE`` settings build (built on first use).

    Use it for checks outside a view, and with :func:`entitlegate.testing.override_features`.
    Rebuilt when the setting changes, so look it up again after ``override_settings``.
    """
    return current().resolver


def _reset(*, setting: str, **kwargs: object) -> None:
    global _config
    if setting != "ENTITLEGATE":
        return
    with _lock:
        old, _config = _config, None
    # A Redis cache built from CACHE has connections and a listener thread of its own.
    close = getattr(old.resolver.cache, "close", None) if old is not None and old.owns_cache else None
    if close is not None:
        close()


setting_changed.connect(_reset, dispatch_uid="entitlegate_django.conf.reset")
