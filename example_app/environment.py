"""Which Stripe and which cache the example apps use, read once from the environment.

Nothing set: the embedded demo, the customers in ``customers.json`` (``StaticSource``) and an
in-memory cache, with a fixed webhook secret, so nothing needs a Stripe account.
``STRIPE_API_KEY`` and ``STRIPE_WEBHOOK_SECRET`` (both): Stripe's test mode for real.
``CACHE_URL=redis://…``: a Redis cache shared by every process, in either mode.
``STRIPE_API_BASE``: another Stripe API address (a local double such as stripe-mock).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from entitlegate import MemoryCache, Resolver, StaticSource, StripeSource
from entitlegate.cache import Cache
from entitlegate.sources import Source
from example_app.catalog import CUSTOMERS_FILE

__all__ = ["DEMO_WEBHOOK_SECRET", "Environment", "from_env", "resolver_from_env"]

#: The embedded demo's webhook signing secret. Public on purpose: it guards nothing real.
DEMO_WEBHOOK_SECRET = "whsec_entitlegate_demo_not_a_secret"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class Environment:
    """The example apps' settings. The key, the secret and the cache URL stay out of the repr."""

    stripe_api_key: str | None = field(default=None, repr=False)
    webhook_secret: str = field(default=DEMO_WEBHOOK_SECRET, repr=False)
    cache_url: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None

    @property
    def uses_stripe(self) -> bool:
        """Whether answers come from Stripe (else from the fixture)."""
        return self.stripe_api_key is not None

    def describe(self) -> str:
        """One line for a page or a log: where answers come from and where they are kept."""
        source = "Stripe (test mode)" if self.uses_stripe else f"the fixture {CUSTOMERS_FILE.name}"
        cache = "a Redis cache shared by every process" if self.cache_url else "an in-memory cache"
        return f"features from {source}, kept in {cache}"

    def build_source(self) -> Source:
        """``StripeSource`` with a key, else ``StaticSource`` on the fixture."""
        if self.stripe_api_key is None:
            return StaticSource.from_file(CUSTOMERS_FILE)
        return StripeSource(api_key=self.stripe_api_key, api_base=self.stripe_api_base)

    def build_cache(self) -> Cache:
        """``RedisCache`` for a ``CACHE_URL``, else ``MemoryCache``."""
        if self.cache_url is None:
            return MemoryCache()
        # Imported here: only a Redis CACHE_URL needs the redis extra.
        from entitlegate.cache.redis import RedisCache

        return RedisCache(self.cache_url)

    def build_resolver(self) -> Resolver:
        """The resolver these settings describe."""
        return Resolver(self.build_source(), self.build_cache())


def from_env(environ: Mapping[str, str] | None = None) -> Environment:
    """Read ``STRIPE_API_KEY``, ``STRIPE_WEBHOOK_SECRET``, ``CACHE_URL`` and ``STRIPE_API_BASE``.

    Raises ``ValueError`` naming the variable when one is wrong, and never quoting a secret.
    """
    env = os.environ if environ is None else environ
    key = env.get("STRIPE_API_KEY") or None
    secret = env.get("STRIPE_WEBHOOK_SECRET") or None
    cache_url = env.get("CACHE_URL") or None
    api_base = env.get("STRIPE_API_BASE") or None
    if (key is None) != (secret is None):
        have, lack = ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET") if key else ("STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY")
        raise ValueError(f"{have} is set but {lack} is not: set both to use Stripe, or neither for the embedded demo")
    if key is not None:
        if key.startswith(("sk_live_", "rk_live_")):
            raise ValueError(
                "STRIPE_API_KEY is a live-mode key: the example apps let anyone sign in as any customer and "
                "grant features, so they take a test-mode key only (sk_test_… or rk_test_…)"
            )
        if not key.startswith(("sk_test_", "rk_test_")):
            raise ValueError("STRIPE_API_KEY must be a test-mode secret or restricted key (sk_test_… or rk_test_…)")
    if secret is not None and not secret.startswith("whsec_"):
        raise ValueError("STRIPE_WEBHOOK_SECRET must be the webhook endpoint's signing secret (whsec_…)")
    if cache_url is not None and not cache_url.startswith(_REDIS_SCHEMES):
        raise ValueError("CACHE_URL must be a redis://, rediss:// or unix:// URL (unset: an in-memory cache)")
    if api_base is not None and not api_base.startswith(("http://", "https://")):
        raise ValueError(f"STRIPE_API_BASE must be an http(s):// URL, got {api_base!r}")
    return Environment(key, secret or DEMO_WEBHOOK_SECRET, cache_url, api_base)


def resolver_from_env() -> Resolver:
    """The resolver the environment describes: Django's ``ENTITLEGATE["RESOLVER"]`` names this."""
    return from_env().build_resolver()
