"""The ``ENTITLEGATE_*`` config keys: read once at ``init_app``, checked, turned into objects.

Every error names the key it is about and never quotes a secret (the API key, the webhook
secret, or a Redis URL, which may carry a password). The keys that build the resolver follow the
rules of ``entitlegate._settings``, the same as Django's ``ENTITLEGATE`` dict.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entitlegate import Resolver, WebhookHandler, _settings

__all__ = ["DEFAULT_WEBHOOK_URL", "KEYS", "PREFIX", "Settings", "read_settings"]

PREFIX = "ENTITLEGATE_"
DEFAULT_WEBHOOK_URL = "/stripe/webhook"

# The keys that build the Resolver; Entitlements(resolver=...) takes their place.
_RESOLVER_KEYS = _settings.RESOLVER_KEYS
KEYS = (*_RESOLVER_KEYS, "WEBHOOK_SECRET", "WEBHOOK_URL", "LOGIN_VIEW")


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
            closest = difflib.get_close_matches(key[len(PREFIX) :].upper(), KEYS, n=1)
            typo = f"(did you mean {PREFIX}{closest[0]}?)" if closest else "(a typo?)"
            raise ValueError(f"{key} is not an entitlegate setting {typo}; the settings are: {known}")


def _build_resolver(config: Mapping[str, Any]) -> Resolver:
    raw = {name: config[PREFIX + name] for name in _RESOLVER_KEYS if PREFIX + name in config}
    return _settings.build_resolver(raw, lambda name: PREFIX + name, alternative="or pass Entitlements(resolver=...)")


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
    return _settings.read_webhook_secret(secret, PREFIX + "WEBHOOK_SECRET")


def _login_view(config: Mapping[str, Any]) -> str | None:
    view = config.get(PREFIX + "LOGIN_VIEW")
    if view is not None and (not isinstance(view, str) or not view.strip()):
        raise ValueError(f"{PREFIX}LOGIN_VIEW must be the name of an endpoint, such as 'auth.login', got {view!r}")
    return view
