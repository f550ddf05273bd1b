"""Caches a :class:`~entitlegate.Resolver` keeps entries in."""

from entitlegate.cache._base import Cache, Entry, supersedes
from entitlegate.cache.memory import MemoryCache

__all__ = ["Cache", "Entry", "MemoryCache", "supersedes"]
