"""``EntitlementMiddleware``: a lazy ``request.entitlements`` and ``RULES`` enforcement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from entitlegate.errors import CacheUnavailable, SourceUnavailable
from entitlegate_django.conf import current
from entitlegate_django.entitlements import Entitlements
from entitlegate_django.responses import aenforce, enforce, unavailable

__all__ = ["EntitlementMiddleware"]

_GetResponse = Callable[[HttpRequest], HttpResponseBase]
_AGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class EntitlementMiddleware:
    """Set ``request.entitlements`` and enforce ``RULES`` (URL path prefix -> features).

    The longest matching prefix of ``request.path_info`` wins, and prefixes match on path-segment
    boundaries (``/pro`` covers ``/pro`` and ``/pro/x``, not ``/products``). Nothing is fetched
    for a request that no rule gates and nothing reads, so a Stripe outage never breaks such a
    page; a view that reads ``request.entitlements.features`` in an outage gets a 503. Place it
    after ``AuthenticationMiddleware``. Sync and async capable. Loading it (server start) builds
    the ``ENTITLEGATE`` settings, so a wrong value raises ``ImproperlyConfigured`` there.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: _GetResponse | _AGetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Django loads middleware when the server starts: a wrong ENTITLEGATE fails there, by name,
        # rather than on the first request. (Nothing here talks to Stripe.)
        current()

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        config = current()
        request.entitlements = Entitlements(request, config)  # type: ignore[attr-defined]
        if config.rules:
            requirement = config.rules.match(request.path_info)
            if requirement is not None:
                denial = enforce(request, requirement, config)
                if denial is not None:
                    return denial
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        config = current()
        request.entitlements = Entitlements(request, config)  # type: ignore[attr-defined]
        if config.rules:
            requirement = config.rules.match(request.path_info)
            if requirement is not None:
                denial = await aenforce(request, requirement, config)
                if denial is not None:
                    return denial
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """Answer a view that met an outage with a 503: Stripe's (``SourceUnavailable``), or a
        shared cache's that could not take a change (``CacheUnavailable``)."""
        if isinstance(exception, (SourceUnavailable, CacheUnavailable)):
            return unavailable()
        return None
