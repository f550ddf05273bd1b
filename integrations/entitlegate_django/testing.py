"""Helpers for the tests of Django sites that use entitlegate."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction

from entitlegate import testing
from entitlegate_django.conf import get_resolver

__all__ = ["override_features"]

_F = TypeVar("_F", bound=Callable[..., Any])


class override_features:  # noqa: N801 - reads like override_settings, which it sits beside
    """Pin customers' features on the site's resolver: ``@override_features({"cus_1": {"x"}})``.

    Like :func:`entitlegate.testing.override_features`, but it finds the resolver the settings
    build when it is entered, so it works as a decorator on sync and async tests and inside
    ``override_settings`` (enter it after any ``override_settings`` that changes ``ENTITLEGATE``:
    a settings change builds a new resolver, without the pins).
    """

    def __init__(self, features: Mapping[str, Iterable[str]]) -> None:
        self.features = {customer: frozenset(keys) for customer, keys in features.items()}
        self._active: list[testing.override_features] = []

    def __enter__(self) -> override_features:
        pinned = testing.override_features(get_resolver(), self.features)
        pinned.__enter__()
        self._active.append(pinned)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active.pop().__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
