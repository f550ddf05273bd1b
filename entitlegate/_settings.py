"""The settings that build a resolver, read and checked by one set of rules for every adapter.

Django's ``ENTITLEGATE`` dict and Flask's ``ENTITLEGATE_*`` keys name the same settings; each
reader (from :mod:`entitlegate._values`, which the core's constructors use too) takes one raw value
and the name the user wrote it under (``ENTITLEGATE['TTL']``, ``ENTITLEGATE_TTL``) and returns the
checked value, or raises ``ValueError`` whose message names that setting. A message never quotes a
secret. The adapters only decide where the values come from and how an error is shown (a Django
system check, a Flask ``init_app`` error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from entitlegate._values import (
    needs_redis,
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
from entitlegate.cache import Cache, MemoryCache
from entitlegate.resolver import Resolver
from entitlegate.sources import StripeSource

__all__ = [
    "DEFAULTS",
    "RESOLVER_KEYS",
    "build_cache",
    "build_resolver",
    "read_api_base",
    "read_api_key",
    "read_cache",
    "read_max_retries",
    "read_on_unavailable",
    "read_stripe_account",
    "read_timeout",
    "read_ttls",
    "read_webhook_secret",
]

#: The settings a resolver is built from, by the name both adapters give them (after a prefix),
#: and the default of each; a user's own Resolver takes the place of all of them.
DEFAULTS: Final[Mapping[str, object]] = {
    "STRIPE_API_KEY": None,  # a secret (sk_…) or restricted (rk_…) key; required
    "STRIPE_ACCOUNT": None,  # a connected account id (acct_…) to act for, with Stripe Connect
    "STRIPE_API_BASE": None,  # another Stripe API address (stripe-mock, a test double)
    "STRIPE_TIMEOUT": 3.0,  # seconds one fetch from Stripe may take in all, every page and retry
    "STRIPE_MAX_RETRIES": 2,  # tries again after a network error, a 409 or a 5xx, within that time
    "CACHE": "memory",  # "memory" (per process), a redis:// / rediss:// / unix:// URL, or redis+cluster:// (shared)
    "TTL": 300.0,  # seconds an answer is trusted without asking Stripe
    "STALE_TTL": 86400.0,  # seconds an answer may still be served while Stripe is down
    "ON_UNAVAILABLE": "raise",  # Stripe down and nothing cached: "raise", "deny" or "allow"
}
RESOLVER_KEYS: Final = tuple(DEFAULTS)


def build_cache(cache: str, name: str) -> Cache:
    """The cache a value :func:`read_cache` passed names: a ``MemoryCache``, or a ``RedisCache`` on the URL.

    Raises ``ImportError`` naming ``name`` and the ``redis`` extra when it is not installed, and
    ``ValueError`` naming ``name`` when redis-py cannot use the URL (which is never quoted).
    """
    if cache == "memory":
        return MemoryCache()
    try:
        # Imported on use: only a Redis URL needs the redis extra.
        from entitlegate.cache.redis import RedisCache
    except ImportError as error:
        raise ImportError(needs_redis(name)) from error
    try:
        return RedisCache(cache)
    except ValueError:
        raise ValueError(f"{name} is not a Redis URL the redis client can use") from None


def build_resolver(
    raw: Mapping[str, object], name: Callable[[str], str], *, alternative: str | None = None
) -> Resolver:
    """The Resolver, over a ``StripeSource``, that ``raw``'s :data:`RESOLVER_KEYS` describe.

    ``raw`` maps those keys (unprefixed) to the user's values; a key it lacks takes its
    :data:`DEFAULTS` value. ``name(key)`` is how the user writes ``key``, for messages;
    ``alternative`` what may take the API key's place. Every key is read before anything is built,
    so a wrong one fails before a connection opens. Raises ``ValueError`` (``ImportError`` for a
    missing redis extra) naming the first wrong setting, never quoting a secret.
    """

    def read(key: str) -> object:
        return raw.get(key, DEFAULTS[key])

    api_key = read_api_key(read("STRIPE_API_KEY"), name("STRIPE_API_KEY"), alternative=alternative)
    account = read_stripe_account(read("STRIPE_ACCOUNT"), name("STRIPE_ACCOUNT"))
    api_base = read_api_base(read("STRIPE_API_BASE"), name("STRIPE_API_BASE"))
    timeout = read_timeout(read("STRIPE_TIMEOUT"), name("STRIPE_TIMEOUT"))
    max_retries = read_max_retries(read("STRIPE_MAX_RETRIES"), name("STRIPE_MAX_RETRIES"))
    cache = read_cache(read("CACHE"), name("CACHE"))
    ttl, stale_ttl = read_ttls(read("TTL"), read("STALE_TTL"), name("TTL"), name("STALE_TTL"))
    on_unavailable = read_on_unavailable(read("ON_UNAVAILABLE"), name("ON_UNAVAILABLE"))
    source = StripeSource(
        api_key=api_key, stripe_account=account, api_base=api_base, timeout=timeout, max_retries=max_retries
    )
    return Resolver(
        source, build_cache(cache, name("CACHE")), ttl=ttl, stale_ttl=stale_ttl, on_unavailable=on_unavailable
    )
