"""The account's feature catalog in Redis, so one process's fetch serves every process.

A :class:`~entitlegate.catalog.Catalog` with this store asks Redis before it asks Stripe, and
writes what it fetched back; a write never replaces a catalog fetched later (a script compares the
two fetch times in Redis). The catalog is one hash per livemode and account: ``features`` (JSON,
Stripe's own Feature shape) and ``fetched_at`` (epoch seconds), kept for the stale window. While
the cache remembers a Redis outage the store refuses at once, and the catalog asks Stripe itself.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from entitlegate.catalog import Feature
from entitlegate.errors import CacheUnavailable

if TYPE_CHECKING:
    import redis
    import redis.cluster

__all__ = ["RedisCatalogStore"]

# KEYS[1] the catalog hash; ARGV: features JSON, fetched_at, key lifetime in ms (0: for ever).
_SAVE = """
local held = redis.call('HGET', KEYS[1], 'fetched_at')
if held and tonumber(held) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'features', ARGV[1], 'fetched_at', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


class RedisCatalogStore:
    """A :class:`~entitlegate.catalog.CatalogStore` on a RedisCache's connection (made by
    :meth:`RedisCache.catalog_store`). Thread-safe; the async twins run in a worker thread, since
    a catalog is read or written once per ttl at most."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        key: str,
        *,
        keep: float,
        unavailable: Callable[[], bool],
    ) -> None:
        self.key = key
        self._client = client
        self._keep_ms = math.ceil(keep * 1000) if math.isfinite(keep) else 0
        self._unavailable = unavailable
        self._save = client.register_script(_SAVE)

    def __repr__(self) -> str:
        return f"RedisCatalogStore({self.key!r})"

    def load(self) -> tuple[tuple[Feature, ...], float] | None:
        """The stored features and when they were fetched, or None when Redis holds none."""
        self._refuse_in_outage()
        held: dict[bytes, bytes] = self._client.hgetall(self.key)  # type: ignore[assignment]
        if b"features" not in held or b"fetched_at" not in held:
            return None
        features = tuple(Feature.from_stripe(item) for item in json.loads(held[b"features"]))
        return features, float(held[b"fetched_at"])

    def save(self, features: tuple[Feature, ...], fetched_at: float) -> None:
        """Store ``features`` unless Redis holds a catalog fetched later."""
        self._refuse_in_outage()
        self._save(keys=[self.key], args=[json.dumps([_stripe_shape(f) for f in features]), fetched_at, self._keep_ms])

    async def aload(self) -> tuple[tuple[Feature, ...], float] | None:
        """Async twin of :meth:`load`."""
        return await asyncio.to_thread(self.load)

    async def asave(self, features: tuple[Feature, ...], fetched_at: float) -> None:
        """Async twin of :meth:`save`."""
        await asyncio.to_thread(self.save, features, fetched_at)

    def _refuse_in_outage(self) -> None:
        if self._unavailable():
            raise CacheUnavailable(f"Redis is unavailable: the catalog at {self.key!r} is not shared now")


def _stripe_shape(feature: Feature) -> dict[str, Any]:
    return {
        "id": feature.id,
        "object": "entitlements.feature",
        "lookup_key": feature.lookup_key,
        "name": feature.name,
        "active": feature.active,
        "metadata": dict(feature.metadata),
    }
