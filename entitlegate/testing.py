"""Helpers for the tests of apps that use entitlegate."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from entitlegate.resolver import Resolver

__all__ = ["override_features"]

_F = TypeVar("_F", bound=Callable[..., Any])


class override_features:  # noqa: N801 - reads like Django's override_settings, which it mirrors
    """Pin customers' features on a resolver, as a context manager or a decorator.

    ``with override_features(resolver, {"cus_1": {"seats-feature"}}):`` makes every check for
    ``cus_1`` answer from the given set, without touching the source or the cache; other customers
    are answered as usual. Overrides nest (the inner one wins per customer) and are undone on exit.
    As a decorator it works on sync and async functions alike.
    """

    def __init__(self, resolver: Resolver, features: Mapping[str, Iterable[str]]) -> None:
        if not isinstance(resolver, Resolver):
            raise TypeError(f"override_features needs a Resolver, got {type(resolver).__name__}")
        self.resolver = resolver
        self.features = {customer: frozenset(keys) for customer, keys in features.items()}
        self._saved: list[dict[str, frozenset[str]]] = []

    def __enter__(self) -> override_features:
        previous = dict(self.resolver._overrides)
        self._saved.append(previous)
        self.resolver._set_overrides({**previous, **self.features})
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.resolver._set_overrides(self._saved.pop())

    def __call__(self, func: _F) -> _F:
        if inspect.iscoroutinefunction(func):

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
