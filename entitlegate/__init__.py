"""Gate web views on the Stripe entitlements a customer holds, answered from a cache."""

from importlib.metadata import PackageNotFoundError, version

from entitlegate.cache import Cache, Entry, MemoryCache
from entitlegate.errors import EntitlegateError, InvalidPayload, InvalidSignature, SourceUnavailable
from entitlegate.resolver import Resolver, ResolverStats
from entitlegate.sources import Source, StaticSource, StripeSource
from entitlegate.webhooks import WebhookHandler, WebhookResult

try:
    __version__ = version("entitlegate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Cache",
    "EntitlegateError",
    "Entry",
    "InvalidPayload",
    "InvalidSignature",
    "MemoryCache",
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
