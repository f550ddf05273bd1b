"""What a denial is (:class:`FeatureDenied`) and the built-in upgrade handler for ``DENIED``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import overload

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse

from entitlegate import upgrade
from entitlegate.errors import SourceUnavailable
from entitlegate.gate import (
    Cause,
    Shortfall,
    UsageShortfall,
    denial_body,
    denial_cause,
    denial_shortfall,
    denial_usage,
    portal_url,
    prefers_json,
    upgrade_body,
)
from entitlegate.sources import PortalFlow
from entitlegate_django._http import unavailable
from entitlegate_django.conf import current
from entitlegate_django.entitlements import entitlements_of

__all__ = ["FeatureDenied", "aback_from_portal", "back_from_portal", "portal_upgrade"]

logger = logging.getLogger("entitlegate")


class FeatureDenied(PermissionDenied):
    """A request lacks a feature or a limit (``feature``) or, with ``feature`` None, a Stripe customer.

    Raised by the decorators, the mixin and the middleware when ``DENIED`` is unset, so the site's
    403 page renders (``{{ exception }}`` reads "This page needs the 'x' feature."); handed to the
    ``DENIED`` handler otherwise. ``customer`` is the request's Stripe customer id, or None. A
    limit denial names the limit (``feature == "seats"``) and ``shortfall`` says by how much
    (:class:`entitlegate.gate.Shortfall`: ``limit``, ``allowed``, ``need``); it is None otherwise.
    A usage denial names the meter (``feature == "exports"``) and ``usage`` says how much of it
    the period has used (:class:`entitlegate.gate.UsageShortfall`: ``meter``, ``usage``,
    ``limit``, ``value``); it is None otherwise.
    ``entitlegate.gate.denial_body(exception.feature)`` is the JSON body the other adapters
    answer an API client with.
    """

    def __init__(self, feature: str | None, customer: str | None) -> None:
        shortfall = None if feature is None else denial_shortfall(feature)
        usage = None if feature is None else denial_usage(feature)
        if feature is None:
            message = "This page needs a Stripe customer account."
        elif shortfall is not None:
            message = f"This page needs {shortfall.need} of {feature!r}; your plan allows {shortfall.allowed}."
        elif usage is not None:
            message = f"Your plan allows {usage.limit} of {feature!r} this period, and {usage.usage} are used."
        else:
            message = f"This page needs the {feature!r} feature."
        super().__init__(message)
        self.feature = feature
        self.customer = customer
        self.shortfall: Shortfall | None = shortfall
        self.usage: UsageShortfall | None = usage


_Handler = Callable[[HttpRequest, FeatureDenied], HttpResponse]


@overload
def portal_upgrade(request: HttpRequest, exception: FeatureDenied) -> HttpResponse: ...


@overload
def portal_upgrade(
    *, flow: PortalFlow | None = None, configuration: str | None = None, locale: str | None = None
) -> _Handler: ...


def portal_upgrade(
    request: HttpRequest | None = None,
    exception: FeatureDenied | None = None,
    *,
    flow: PortalFlow | None = None,
    configuration: str | None = None,
    locale: str | None = None,
) -> HttpResponse | _Handler:
    """``DENIED`` handler: send a denied customer to a Stripe Customer Portal session (303).

    Use it as is (``"DENIED": "entitlegate_django.denied.portal_upgrade"``), or with options:
    ``upgrade = portal_upgrade(flow="subscription_update", locale="auto")`` in a module of yours,
    and ``DENIED`` naming ``upgrade``. ``flow="subscription_update"`` opens the plan page of the
    customer's active subscription; ``configuration`` and ``locale`` are the portal's. The portal
    comes back to this page, marked so that :class:`~entitlegate_django.middleware.EntitlementMiddleware`
    refreshes the customer's entitlements once on the way in. An API client (``Accept:
    application/json``) gets a JSON 403 (``gate.denial_body`` plus ``"upgrade_url"``) instead.

    Needs the resolver's source to be a :class:`~entitlegate.StripeSource`. A user without a
    customer id gets the 403 (``exception`` re-raised); so does a session Stripe cannot make,
    logged with its cause. A denial that ``ON_UNAVAILABLE = "deny"`` made during an outage gets
    the 503 instead: the customer may hold the feature, so an upgrade is no answer.
    """
    if request is None or exception is None:
        if request is not None or exception is not None:
            raise TypeError("portal_upgrade takes (request, exception), or only keyword options")
        return _handler(flow, configuration, locale)
    return _upgrade(request, exception, None, None, None)


def _handler(flow: PortalFlow | None, configuration: str | None, locale: str | None) -> _Handler:
    def portal_upgrade(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
        return _upgrade(request, exception, flow, configuration, locale)

    return portal_upgrade


def _upgrade(
    request: HttpRequest,
    exception: FeatureDenied,
    flow: PortalFlow | None,
    configuration: str | None,
    locale: str | None,
) -> HttpResponse:
    if exception.feature is not None and denial_cause(exception.feature) is Cause.UNAVAILABLE:
        return unavailable()
    if exception.customer is None or exception.feature is None:
        raise exception
    try:
        url = portal_url(
            current().resolver,
            exception.customer,
            upgrade.marked(request.build_absolute_uri()),
            flow=flow,
            configuration=configuration,
            locale=locale,
        )
    except (SourceUnavailable, TypeError) as error:
        # The denial stands; only the offer to upgrade is unavailable. Say why, then 403.
        logger.warning("entitlegate could not open a Stripe Customer Portal session: %s", error)
        if prefers_json(request.headers.get("Accept", "")):
            return _json(denial_body(exception.feature))
        raise exception from None
    if prefers_json(request.headers.get("Accept", "")):
        return _json(upgrade_body(exception.feature, url))
    return HttpResponseRedirect(url, status=303)


def _json(body: dict[str, object]) -> HttpResponse:
    response = JsonResponse(body, status=403)
    response["Vary"] = "Accept"
    return response


def back_from_portal(request: HttpRequest) -> HttpResponse | None:
    """For the middleware: a request coming back from the portal is refreshed, then unmarked.

    None for every other request (a substring test on the raw query string).
    """
    query = request.META.get("QUERY_STRING", "")
    if not upgrade.is_return(query):
        return None
    entitlements = entitlements_of(request)
    upgrade.refresh_on_return(entitlements.resolver, entitlements.customer)
    return HttpResponseRedirect(upgrade.unmarked(request.path, query), status=303)


async def aback_from_portal(request: HttpRequest) -> HttpResponse | None:
    """Async twin of :func:`back_from_portal`."""
    query = request.META.get("QUERY_STRING", "")
    if not upgrade.is_return(query):
        return None
    entitlements = entitlements_of(request)
    await upgrade.arefresh_on_return(entitlements.resolver, await entitlements.acustomer())
    return HttpResponseRedirect(upgrade.unmarked(request.path, query), status=303)
