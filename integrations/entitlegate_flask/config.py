"""The ``ENTITLEGATE_*`` config keys: read once at ``init_app``, checked, turned into objects.

Every error names the key it is about and never quotes a secret (the API key, the webhook
secret, or a Redis URL, which may carry a password).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entitlegate import MemoryCache, Resolver, StripeSource, WebhookHandler
from entitlegate.cache import Cache
from entitlegate.resolver import OnUnavailable

__all__ = ["DEFAULT_WEBHOOK_URL", "KEYS", "PREFIX", "Settings", "read_settings"]

PREFIX = "ENTITLEGATE_"
DEFAULT_WEBHOOK_URL = "/stripe/webhook"

# The keys that build the Resolver; Entitlements(resolver=...) takes their place.
_RESOLVER_KEYS = (
    "STRIPE_API_KEY",
    "STRIPE_ACCOUNT",
    "STRIPE_API_BASE",
    "CACHE",
    "TTL",
    "STALE_TTL",
    "ON_UNAVAILABLE",
)
KEYS = (*_RESOLVER_KEYS, "WEBHOOK_SECRET", "WEBHOOK_URL", "LOGIN_VIEW")

_POLICIES = ("raise", "deny", "allow")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Settings:
    """The objects one app's config describes."""

    resolver: Resolver
    webhook: WebhookHandler | None
    webhook_url: str | None
    login_view: str | None


def read_settings(config: Mapping[str, Any], resolver: Resolver | None = None) -> Settings:
    """Build a :class:`Settings` from a Flask config; ``ValueError`` naming the key when one is wrong.

    ``resolver``, when given, is used as is, and setting any key it takes the place of is an error
    (two sources of truth for one answer).
    """
    _reject_unknown_keys(config)
    if resolver is None:
        resolver = _build_resolver(config)
    else:
        for name in _RESOLVER_KEYS:
            if config.get(PREFIX + name) is not None:
                raise ValueError(
                    f"{PREFIX}{name} is set, but Entitlements(resolver=...) was given and takes the place of "
                    f"the {PREFIX}STRIPE_API_KEY/CACHE/TTL/... keys: configure the Resolver instead, or drop "
                    f"{PREFIX}{name}"
                )
    webhook_url = _webhook_url(config)
    webhook = None if webhook_url is None else WebhookHandler(resolver, _webhook_secret(config))
    return Settings(resolver, webhook, webhook_url, _login_view(config))


def _reject_unknown_keys(config: Mapping[str, Any]) -> None:
    for key in config:
        if isinstance(key, str) and key.startswith(PREFIX) and key[len(PREFIX) :] not in KEYS:
            known = ", ".join(PREFIX + name for name in KEYS)
            raise ValueError(f"{key} is not an entitlegate setting (a typo?); the settings are: {known}")


def _build_resolver(config: Mapping[str, Any]) -> Resolver:
    ttl = _seconds(config, "TTL", 300.0)
    stale_ttl = _seconds(config, "STALE_TTL", 86400.0)
    if stale_ttl < ttl:
        raise ValueError(f"{PREFIX}STALE_TTL ({stale_ttl:g}) must be at least {PREFIX}TTL ({ttl:g})")
    source = StripeSource(
        api_key=_api_key(config),
        stripe_account=_stripe_account(config),
        api_base=_api_base(config),
    )
    return Resolver(
        source,
        _cache(config),
        ttl=ttl,
        stale_ttl=stale_ttl,
        on_unavailable=_on_unavailable(config),
    )


def _api_key(config: Mapping[str, Any]) -> str:
    key = config.get(PREFIX + "STRIPE_API_KEY")
    if key is None:
        raise ValueError(
            f"{PREFIX}STRIPE_API_KEY is not set: set it to your Stripe secret or restricted key "
            f"(sk_... or rk_...), or pass Entitlements(resolver=...)"
        )
    # The value is a secret: say what is wrong with it without quoting any of it.
    if not isinstance(key, str):
        raise ValueError(f"{PREFIX}STRIPE_API_KEY must be a string, not {type(key).__name__}")
    if not key.startswith(("sk_", "rk_")) or not key.strip() or key != key.strip():
        raise ValueError(
            f"{PREFIX}STRIPE_API_KEY must be a Stripe secret or restricted key (sk_... or rk_...); a publishable "
            f"key (pk_...) cannot read entitlements"
        )
    return key


def _stripe_account(config: Mapping[str, Any]) -> str | None:
    account = config.get(PREFIX + "STRIPE_ACCOUNT")
    if account is not None and (not isinstance(account, str) or not account.startswith("acct_")):
        raise ValueError(f"{PREFIX}STRIPE_ACCOUNT must be a connected account id (acct_...), got {account!r}")
    return account


def _api_base(config: Mapping[str, Any]) -> str | None:
    base = config.get(PREFIX + "STRIPE_API_BASE")
    if base is not None and (not isinstance(base, str) or not base.startswith(("http://", "https://"))):
        raise ValueError(f"{PREFIX}STRIPE_API_BASE must be an http(s) URL such as 'https://api.stripe.com'")
    return base


def _cache(config: Mapping[str, Any]) -> Cache:
    cache = config.get(PREFIX + "CACHE", "memory")
    if cache == "memory":
        return MemoryCache()
    if not isinstance(cache, str) or not cache.startswith(_REDIS_SCHEMES):
        # A URL of another kind may still carry a password: quote only what cannot.
        shown = "a URL of another scheme" if isinstance(cache, str) and "://" in cache else repr(cache)
        raise ValueError(f"{PREFIX}CACHE must be 'memory' or a redis:// (rediss://, unix://) URL, got {shown}")
    try:
        # Imported only for a Redis URL, so the redis extra stays optional.
        redis_module = importlib.import_module("entitlegate.cache.redis")
    except ImportError as error:
        raise ImportError(
            f'{PREFIX}CACHE is a Redis URL, which needs the redis extra: pip install "entitlegate[redis]"'
        ) from error
    try:
        redis_cache: Cache = redis_module.RedisCache(cache)
    except ValueError:
        # The URL may carry a password: never repeat it.
        raise ValueError(f"{PREFIX}CACHE is not a Redis URL the redis client can use") from None
    return redis_cache


def _seconds(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(PREFIX + name, _MISSING)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{PREFIX}{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _on_unavailable(config: Mapping[str, Any]) -> OnUnavailable:
    policy = config.get(PREFIX + "ON_UNAVAILABLE", "raise")
    if policy == "raise":
        return "raise"
    if policy == "deny":
        return "deny"
    if policy == "allow":
        return "allow"
    raise ValueError(f"{PREFIX}ON_UNAVAILABLE must be one of {_POLICIES}, got {policy!r}")


def _webhook_url(config: Mapping[str, Any]) -> str | None:
    url = config.get(PREFIX + "WEBHOOK_URL", DEFAULT_WEBHOOK_URL)
    if url is not None and (not isinstance(url, str) or not url.startswith("/")):
        raise ValueError(f"{PREFIX}WEBHOOK_URL must be a path starting with '/' (or None for no webhook), got {url!r}")
    return url


def _webhook_secret(config: Mapping[str, Any]) -> str:
    secret = config.get(PREFIX + "WEBHOOK_SECRET")
    if secret is None:
        raise ValueError(
            f"{PREFIX}WEBHOOK_SECRET is not set: set it to the signing secret (whsec_...) of the Stripe webhook "
            f"endpoint at {PREFIX}WEBHOOK_URL, or set {PREFIX}WEBHOOK_URL = None to mount no webhook"
        )
    if not isinstance(secret, str) or not secret.startswith("whsec_") or secret != secret.strip():
        raise ValueError(f"{PREFIX}WEBHOOK_SECRET must be the endpoint's signing secret (whsec_...)")
    return secret


def _login_view(config: Mapping[str, Any]) -> str | None:
    view = config.get(PREFIX + "LOGIN_VIEW")
    if view is not None and (not isinstance(view, str) or not view.strip()):
        raise ValueError(f"{PREFIX}LOGIN_VIEW must be the name of an endpoint, such as 'auth.login', got {view!r}")
    return view
