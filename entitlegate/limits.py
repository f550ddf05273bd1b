"""A limit a request needs, for the adapters' ``requires_limit`` and ``RequiresLimit``.

The adapters build a :class:`LimitRequirement` once, at decoration, and judge each request's
customer with :func:`judge_limit` (or ask :meth:`Resolver.within_limit` directly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from entitlegate import registry
from entitlegate.catalog import Limit

__all__ = ["LimitRequirement"]


@dataclass(frozen=True, slots=True)
class LimitRequirement:
    """A request needs ``need`` of the customer's limit ``name``.

    ``need`` is a whole number >= 0, or a callable the adapter calls with its request (Django,
    ASGI) or with nothing (Flask) that returns one. Building one registers ``name`` in
    :mod:`entitlegate.registry`. Raises ``ValueError`` for a blank name or a bad need.
    """

    name: str
    need: int | Callable[..., int] = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a limit name must be a non-blank string, got {self.name!r}")
        if not callable(self.need):
            _whole(self.need)
        registry.register_limit(self.name)

    def needed(self, *args: Any) -> int:
        """The need for this request: ``need`` itself, or what calling it with ``args`` returns."""
        need = self.need(*args) if callable(self.need) else self.need
        return _whole(need)

    def missing(self, limits: Mapping[str, Limit], need: int) -> bool:
        """Whether ``need`` exceeds the limit in ``limits`` (absent: 0)."""
        return need > limits.get(self.name, 0)


def _whole(need: object) -> int:
    if isinstance(need, bool) or not isinstance(need, int) or need < 0:
        raise ValueError(f"a limit's need must be a whole number >= 0, got {need!r}")
    return need
