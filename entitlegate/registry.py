"""Every lookup_key and limit name this process gates on, for ``python -m entitlegate check``.

Whatever builds a requirement (a decorator, a mixin, a dependency, a rule, a
:class:`~entitlegate.gate.Requirement`, a :class:`~entitlegate.limits.LimitRequirement`)
registers its names here once, when it is built, not per request. Thread-safe; imports no
framework.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["limit_names", "lookup_keys", "names", "register_limit", "register_lookup_keys"]

_lock = threading.Lock()
_lookup_keys: set[str] = set()
_limit_names: set[str] = set()


def register_lookup_keys(keys: Iterable[str]) -> None:
    """Remember that something in this process gates on each of ``keys``."""
    with _lock:
        _lookup_keys.update(keys)


def register_limit(name: str) -> None:
    """Remember that something in this process checks the limit ``name``."""
    with _lock:
        _limit_names.add(name)


def lookup_keys() -> frozenset[str]:
    """Every lookup_key registered so far."""
    with _lock:
        return frozenset(_lookup_keys)


def limit_names() -> frozenset[str]:
    """Every limit name registered so far."""
    with _lock:
        return frozenset(_limit_names)


def names() -> frozenset[str]:
    """Every lookup_key and limit name registered so far."""
    with _lock:
        return frozenset(_lookup_keys | _limit_names)
