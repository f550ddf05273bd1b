"""A limit a request needs (``requires_limit``), or a use it counts against one (``requires_usage``).

The adapters build a :class:`LimitRequirement` or a :class:`UsageRequirement` once, at decoration,
and judge each request's customer with :func:`~entitlegate.gate.judge_limit` /
:func:`~entitlegate.gate.judge_usage` (through :class:`~entitlegate.entitlements.Entitlements`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from entitlegate import registry
from entitlegate.catalog import Limit

__all__ = ["LimitRequirement", "UsageRequirement"]


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


@dataclass(frozen=True, slots=True)
class UsageRequirement:
    """A request uses ``value`` of the meter ``meter``, allowed while the period's total stays within ``limit``.

    ``meter`` is a Stripe meter's ``event_name``. ``limit`` names the customer's limit in Feature
    metadata (``"exports"``: the highest ``metadata["exports"]`` over the features they hold, 0 when
    none carries it), or is a whole number >= 0 that holds for every customer. ``value`` is a whole
    number >= 1. Building one registers a named ``limit`` in :mod:`entitlegate.registry`. Raises
    ``ValueError`` for a blank meter or limit name, a limit that is no whole number >= 0, or a bad value.
    """

    meter: str
    limit: str | int
    value: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.meter, str) or not self.meter.strip():
            raise ValueError(f"a usage meter must be a non-blank string (a meter's event_name), got {self.meter!r}")
        if isinstance(self.limit, str):
            if not self.limit.strip():
                raise ValueError(f"a usage limit name must be a non-blank string, got {self.limit!r}")
        elif isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(
                f"a usage limit must be a limit name (a string) or a whole number >= 0, got {self.limit!r}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 1:
            raise ValueError(f"a usage value must be a whole number >= 1, got {self.value!r}")
        if isinstance(self.limit, str):
            registry.register_limit(self.limit)

    def limit_in(self, limits: Mapping[str, Limit]) -> Limit:
        """The customer's limit: ``limit`` itself when it is a number, else its value in ``limits`` (absent: 0)."""
        limit = self.limit
        return limits.get(limit, 0) if isinstance(limit, str) else limit


def _whole(need: object) -> int:
    if isinstance(need, bool) or not isinstance(need, int) or need < 0:
        raise ValueError(f"a limit's need must be a whole number >= 0, got {need!r}")
    return need
