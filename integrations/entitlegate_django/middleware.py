"""``EntitlementMiddleware``: a lazy ``request.entitlements`` and ``RULES`` enforcement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from entitlegate.errors import CacheUnavailable, SourceUnavailable
from entitlegate.upgrade import RETURN_MARKER as _RETURN
from entitlegate_django._http import unavailable
from entitlegate_django.conf import current
from entitlegate_django.denied import aback_from_portal, back_from_portal
from entitlegate_django.entitlements import Entitlements
from entitlegate_django.responses import aenforce, enforce

__all__ = ["EntitlementMiddleware", "before_authentication"]

_GetResponse = Callable[[HttpRequest], HttpResponseBase]
_AGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
_for_request = Entitlements.for_request  # read once: a classmethod through its class makes a bound method


class EntitlementMiddleware:
    """Set ``request.entitlements`` and enforce ``RULES`` (URL path prefix -> features).

    The longest matching prefix of ``request.path_info`` wins, and prefixes match on path-segment
    boundaries (``/pro`` covers ``/pro`` and ``/pro/x``, not ``/products``). Nothing is fetched
    for a request that no rule gates and nothing reads, so a Stripe outage never breaks such a
    page; a view that reads ``request.entitlements.features`` in an outage gets a 503. Place it
    after ``AuthenticationMiddleware``: the rules are then enforced before any later middleware
    runs. Placed before it, the rules are enforced just before the view instead (once
    ``request.user`` exists), so a response a later middleware gives on its own is not gated
    (system check W004). Sync and async capable. Loading it (server start) builds the
    ``ENTITLEGATE`` settings, so a wrong value raises ``ImproperlyConfigured`` there.
    """

    sync_capable = True
    async_capable = True
    # Set on an instance (and so called by Django) only when the rules wait for the view.
    process_view: Callable[..., HttpResponseBase | Awaitable[HttpResponseBase | None] | None]

    def __init__(self, get_response: _GetResponse | _AGetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Django loads middleware when the server starts: a wrong ENTITLEGATE fails there, by name,
        # rather than on the first request. (Nothing here talks to Stripe.)
        current()
        # Before AuthenticationMiddleware, request.user does not exist yet when a request comes
        # in, and a CUSTOMER function reading it would fail on every gated path: the rules then
        # wait for process_view, which Django calls after every middleware's way in.
        self._rules_at_view = before_authentication(getattr(settings, "MIDDLEWARE", None) or ())
        if self._rules_at_view:
            self.process_view = self._aenforce_rules if self.is_async else self._enforce_rules

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        config = current()
        request.entitlements = _for_request(config.lookup, request)  # type: ignore[attr-defined]
        if _RETURN in request.META.get("QUERY_STRING", ""):
            back = back_from_portal(request)  # a customer back from the portal: refresh, unmark
            if back is not None:
                return back
        if config.rules and not self._rules_at_view:
            requirement = config.rules.match(request.path_info)
            if requirement is not None:
                denial = enforce(request, requirement, config)
                if denial is not None:
                    return denial
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        config = current()
        request.entitlements = _for_request(config.lookup, request)  # type: ignore[attr-defined]
        if _RETURN in request.META.get("QUERY_STRING", ""):
            back = await aback_from_portal(request)
            if back is not None:
                return back
        if config.rules and not self._rules_at_view:
            requirement = config.rules.match(request.path_info)
            if requirement is not None:
                denial = await aenforce(request, requirement, config)
                if denial is not None:
                    return denial
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return response

    # process_view(request, view_func, view_args, view_kwargs), when the rules wait for the view.
    def _enforce_rules(self, request: HttpRequest, *view: object) -> HttpResponseBase | None:
        config = current()
        requirement = config.rules.match(request.path_info)
        return None if requirement is None else enforce(request, requirement, config)

    async def _aenforce_rules(self, request: HttpRequest, *view: object) -> HttpResponseBase | None:
        config = current()
        requirement = config.rules.match(request.path_info)
        return None if requirement is None else await aenforce(request, requirement, config)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        """Answer a view that met an outage with a 503: Stripe's (``SourceUnavailable``), or a
        shared cache's that could not take a change (``CacheUnavailable``)."""
        if isinstance(exception, (SourceUnavailable, CacheUnavailable)):
            return unavailable()
        return None


_THIS = f"{EntitlementMiddleware.__module__}.{EntitlementMiddleware.__qualname__}"
_AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"


def before_authentication(middleware: Sequence[str]) -> bool:
    """Whether ``MIDDLEWARE`` lists EntitlementMiddleware before AuthenticationMiddleware."""
    listed = list(middleware)
    return _THIS in listed and _AUTHENTICATION in listed and listed.index(_THIS) < listed.index(_AUTHENTICATION)
