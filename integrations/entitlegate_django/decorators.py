"""``@requires_feature``, ``@requires_limit``, ``@requires_usage``: gate a function view (``permission_required``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest

from entitlegate.gate import Requirement
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate_django.responses import (
    aenforce,
    aenforce_limit,
    aenforce_usage,
    enforce,
    enforce_limit,
    enforce_usage,
)

__all__ = ["requires_feature", "requires_limit", "requires_usage"]

_View = TypeVar("_View", bound=Callable[..., Any])


def requires_feature(*features: str, any_of: Iterable[str] = ()) -> Callable[[_View], _View]:
    """Let a view run only for customers holding every one of ``features`` (and one of ``any_of``).

    ``@requires_feature("a", "b")`` needs a and b; ``@requires_feature(any_of=("a", "b"))`` a or b.
    An anonymous user is sent to the login page; a signed-in user without a Stripe customer or
    without the feature gets the site's 403 (or the ``DENIED`` handler); a Stripe outage with
    nothing cached gets a 503. Works on sync and async views (an async view stays async and a
    cache hit never leaves the event loop), and on methods through ``method_decorator``.
    Raises ``ValueError`` at decoration for a missing or blank lookup_key.
    """
    requirement = Requirement.of(*features, any_of=any_of)

    def decorator(view: _View) -> _View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_gated(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denial = await aenforce(request, requirement)
                if denial is not None:
                    return denial
                return await view(request, *args, **kwargs)

            async_gated.required_features = requirement  # type: ignore[attr-defined]
            return async_gated  # type: ignore[return-value]

        @functools.wraps(view)
        def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            denial = enforce(request, requirement)
            if denial is not None:
                return denial
            # A URL without arguments (the common gated page) calls the view without packing them again.
            return view(request, *args, **kwargs) if args or kwargs else view(request)

        gated.required_features = requirement  # type: ignore[attr-defined]
        return gated  # type: ignore[return-value]

    return decorator


def requires_limit(name: str, need: int | Callable[[HttpRequest], int] = 1) -> Callable[[_View], _View]:
    """Let a view run only when the customer's limit ``name`` (from Feature metadata) covers ``need``.

    ``need`` is a whole number, or a function of the request that returns one (called only for a
    request with a customer; in an async view it runs in the event loop, or in a worker thread
    when it touches the database): ``@requires_limit("seats", lambda request: team_size(request) + 1)``.
    A denial behaves as for :func:`requires_feature` and names the limit: ``FeatureDenied.feature``
    is ``name`` and ``FeatureDenied.shortfall`` the customer's limit and the need. Works on sync
    and async views, and on methods through ``method_decorator``. Raises ``ValueError`` at
    decoration for a blank name or a need that is not a whole number >= 0.
    """
    requirement = LimitRequirement(name, need)

    def decorator(view: _View) -> _View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_limited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denial = await aenforce_limit(request, requirement)
                if denial is not None:
                    return denial
                return await view(request, *args, **kwargs)

            async_limited.required_limit = requirement  # type: ignore[attr-defined]
            return async_limited  # type: ignore[return-value]

        @functools.wraps(view)
        def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            denial = enforce_limit(request, requirement)
            if denial is not None:
                return denial
            return view(request, *args, **kwargs)

        limited.required_limit = requirement  # type: ignore[attr-defined]
        return limited  # type: ignore[return-value]

    return decorator


def requires_usage(meter: str, limit: str | int, value: int = 1) -> Callable[[_View], _View]:
    """Let a view run while the customer's use of the meter ``meter`` stays within their limit.

    ``limit`` names the customer's limit in Feature metadata (``@requires_usage("exports",
    limit="exports")``: the highest ``metadata["exports"]`` of the features they hold, 0 without
    one), or is a whole number for everyone. Each request let through counts ``value`` at once
    (:meth:`entitlegate.Resolver.consume_usage`, atomic: concurrent requests never pass the limit)
    and reports it to Stripe, before the view runs. A denial behaves as for :func:`requires_feature`
    and names the meter: ``FeatureDenied.feature`` is ``meter`` and ``FeatureDenied.usage`` the
    period's total and the limit (JSON clients of the denied handlers get
    ``{"error": "usage_exceeded", "meter", "usage", "limit"}``). A counter that cannot be read (the
    shared cache down, a cold counter with Stripe down) is an outage: 503, or ``ON_UNAVAILABLE``.
    Works on sync and async views, and on methods through ``method_decorator``. Raises
    ``ValueError`` at decoration for a blank meter or limit name, or a bad limit or value.
    """
    requirement = UsageRequirement(meter, limit, value)

    def decorator(view: _View) -> _View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_metered(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denial = await aenforce_usage(request, requirement)
                if denial is not None:
                    return denial
                return await view(request, *args, **kwargs)

            async_metered.required_usage = requirement  # type: ignore[attr-defined]
            return async_metered  # type: ignore[return-value]

        @functools.wraps(view)
        def metered(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            denial = enforce_usage(request, requirement)
            if denial is not None:
                return denial
            return view(request, *args, **kwargs)

        metered.required_usage = requirement  # type: ignore[attr-defined]
        return metered  # type: ignore[return-value]

    return decorator
