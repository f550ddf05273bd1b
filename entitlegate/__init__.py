"""Gate web views on the Stripe entitlements a customer holds, answered from a cache."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from entitlegate._meters import MeterEvent, MeterRejected
from entitlegate.cache import Cache, Entry, MemoryCache
from entitlegate.catalog import Catalog, CatalogSource, Feature
from entitlegate.errors import (
    CacheUnavailable,
    EntitlegateError,
    InvalidPayload,
    InvalidSignature,
    SourceUnavailable,
)
from entitlegate.resolver import Decision, Resolver, ResolverStats
from entitlegate.sources import AsyncSource, PortalSessions, Source, StaticSource, StripeSource
from entitlegate.webhooks import WebhookHandler, WebhookResult

if TYPE_CHECKING:
    from entitlegate.cache.redis import RedisCache

try:
    __version__ = version("entitlegate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncSource",
    "Cache",
    "CacheUnavailable",
    "Catalog",
    "CatalogSource",
    "Decision",
    "EntitlegateError",
    "Entry",
    "Feature",
    "InvalidPayload",
    "InvalidSignature",
    "MemoryCache",
    "MeterEvent",
    "MeterRejected",
    "PortalSessions",
    "RedisCache",
    "Resolver",
    "ResolverStats",
    "Source",
    "SourceUnavailable",
    "StaticSource",
    "StripeSource",
    "WebhookHandler",
    "WebhookResult",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # RedisCache needs the optional redis package: imported on first use, so that
    # `import entitlegate` works without it and names the extra to install when it is missing.
    if name == "RedisCache":
        from entitlegate.cache.redis import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
