"""Checks of the values that configure entitlegate, shared by the core's constructors and the settings.

Each reader takes one raw value and the name the user wrote it under (``StripeSource api_key``,
``ENTITLEGATE['TTL']``, ``ENTITLEGATE_TTL``) and returns the checked value, or raises
``ValueError`` whose message names it. A message never quotes a secret: not the API key, not the
webhook secret, not a Redis URL (which may carry a password). This module imports nothing else of
entitlegate, so every other module may use it.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Final, Literal, cast, get_args
from urllib.parse import urlsplit

__all__ = [
    "OnUnavailable",
    "needs_redis",
    "read_api_base",
    "read_api_key",
    "read_cache",
    "read_max_retries",
    "read_on_unavailable",
    "read_stripe_account",
    "read_timeout",
    "read_ttls",
    "read_webhook_secret",
    "shown",
]

OnUnavailable = Literal["raise", "deny", "allow"]

_KEY_PREFIXES: Final = ("sk_", "rk_")
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
# Prefixes of the values no message may quote, whichever setting they were wrongly put in.
_SECRET_PREFIXES: Final = ("sk_", "rk_", "whsec_")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PLAIN_WORD: Final = re.compile(r"[\w.+-]{0,40}")  # nothing a URL, a password or a pasted line needs


def read_api_key(value: object, name: str, *, alternative: str | None = None) -> str:
    """A Stripe secret (``sk_…``) or restricted (``rk_…``) key, without surrounding whitespace.

    ``alternative`` says what may take the key's place (shown when the key is missing). Raises
    ``ValueError`` naming ``name``; the message never quotes any of the value.
    """
    if value is None:
        instead = f" ({alternative})" if alternative else ""
        raise ValueError(f"{name} is required{instead}: a Stripe secret (sk_…) or restricted (rk_…) key")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a Stripe secret (sk_…) or restricted (rk_…) key string, not {_type(value)}")
    if value != value.strip():
        raise ValueError(f"{name} has whitespace around the key (a copy-paste slip?): remove it")
    if value.startswith("pk_"):
        raise ValueError(f"{name} is a publishable key (pk_…), which cannot read entitlements: use sk_… or rk_…")
    if not value.startswith(_KEY_PREFIXES):
        raise ValueError(f"{name} must be a Stripe secret (sk_…) or restricted (rk_…) key")
    return value


def read_webhook_secret(value: object, name: str) -> str:
    """A webhook endpoint's signing secret (``whsec_…``), without surrounding whitespace.

    Raises ``ValueError`` naming ``name`` (also for None: the caller decides whether the secret
    may be missing); the message never quotes any of the value.
    """
    if value is None:
        raise ValueError(f"{name} is required: the webhook endpoint's signing secret (whsec_…)")
    if not isinstance(value, str):
        raise ValueError(f"{name} must be the webhook endpoint's signing secret (whsec_…), not {_type(value)}")
    if value != value.strip():
        raise ValueError(f"{name} has whitespace around the secret (a copy-paste slip?): remove it")
    if not value.startswith("whsec_"):
        raise ValueError(f"{name} must be the webhook endpoint's signing secret (whsec_…)")
    return value


def read_stripe_account(value: object, name: str) -> str | None:
    """A connected account id (``acct_…``) to act for, or None. Raises ``ValueError`` naming ``name``."""
    if value is None or (isinstance(value, str) and value.startswith("acct_")):
        return value
    raise ValueError(f"{name} must be a connected account id (acct_…) or None, got {shown(value)}")


def read_api_base(value: object, name: str) -> str | None:
    """An ``http(s)://`` address for the Stripe API, or None (Stripe's own).

    Raises ``ValueError`` naming ``name``; a wrong URL is described, not quoted (it may carry a
    password).
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or not _has_host(value):
        raise ValueError(
            f"{name} must be an http(s):// URL such as 'https://api.stripe.com', or None, got {shown(value)}"
        )
    return value


def read_cache(value: object, name: str) -> str:
    """``"memory"``, or a ``redis://``, ``rediss://`` or ``unix://`` URL for a shared cache.

    ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names any one node of a Redis
    Cluster: the cache then talks to the whole cluster.

    Raises ``ValueError`` naming ``name`` for anything else, and ``ImportError`` naming it and the
    ``redis`` extra for a Redis URL when redis-py is not installed. The URL is never quoted.
    """
    if value == "memory":
        return "memory"
    if not isinstance(value, str) or not value.startswith(_REDIS_SCHEMES):
        raise ValueError(f'{name} must be "memory" or a redis://, rediss:// or unix:// URL, got {shown(value)}')
    if not _importable("redis"):
        raise ImportError(needs_redis(name))
    return value


def read_ttls(ttl: object, stale_ttl: object, ttl_name: str, stale_ttl_name: str) -> tuple[float, float]:
    """``(ttl, stale_ttl)`` in seconds: numbers >= 0, and ``stale_ttl`` at least ``ttl``.

    Raises ``ValueError`` naming the setting that is wrong (both, when they disagree).
    """
    seconds = _seconds(ttl, ttl_name), _seconds(stale_ttl, stale_ttl_name)
    if seconds[1] < seconds[0]:
        raise ValueError(f"{stale_ttl_name} ({seconds[1]:g}) must be at least {ttl_name} ({seconds[0]:g})")
    return seconds


def read_on_unavailable(value: object, name: str) -> OnUnavailable:
    """What a check answers when Stripe is down and nothing is cached: ``"raise"``, ``"deny"`` or ``"allow"``.

    Raises ``ValueError`` naming ``name``.
    """
    if value not in get_args(OnUnavailable):
        raise ValueError(f'{name} must be "raise", "deny" or "allow", got {shown(value)}')
    return cast(OnUnavailable, value)


def read_timeout(value: object, name: str) -> float:
    """The seconds one fetch from Stripe may take in all (every page and retry): a number > 0.

    Raises ``ValueError`` naming ``name``.
    """
    # bool is an int to Python, and NaN compares false with everything: both are refused.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a number of seconds > 0, got {shown(value)}")
    return float(value)


def read_max_retries(value: object, name: str) -> int:
    """How many times a failed request to Stripe is tried again: a whole number >= 0.

    Raises ``ValueError`` naming ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {shown(value)}")
    return value


def _seconds(value: object, name: str) -> float:
    # bool is an int to Python, and NaN compares false with everything: both are refused.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {shown(value)}")
    return float(value)


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # a malformed IPv6 address
        return False


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked with sys.modules[name] = None
        return False


def needs_redis(name: str) -> str:
    return f'{name} is a Redis URL, which needs the redis extra: pip install "entitlegate[redis]"'


def _type(value: object) -> str:
    return type(value).__name__


def shown(value: object) -> str:
    """``value`` as a message may show it: what may be or hold a secret is described, not quoted."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if not isinstance(value, str):
        return f"a value of type {_type(value)}"  # a container may hold a URL or a key
    scheme = _SCHEME.match(value)
    if scheme is not None:
        return f"a URL starting {scheme.group()!r}"  # the rest may carry a password
    if _PLAIN_WORD.fullmatch(value) and not any(prefix in value for prefix in _SECRET_PREFIXES):
        return repr(value)
    return "a string not shown here (it may hold a secret)"
