"""Caches a :class:`~entitlegate.Resolver` keeps entries in."""

from entitlegate.cache._base import Binding, Cache, Entry, supersedes
from entitlegate.cache.memory import MemoryCache

__all__ = ["Binding", "Cache", "Entry", "MemoryCache", "supersedes"]
