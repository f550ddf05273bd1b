"""What a denial is (:class:`FeatureDenied`) and the built-in upgrade handler for ``DENIED``."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from entitlegate.errors import SourceUnavailable
from entitlegate.gate import Cause, Shortfall, denial_cause, denial_shortfall, portal_url
from entitlegate_django._http import unavailable
from entitlegate_django.conf import current

__all__ = ["FeatureDenied", "portal_upgrade"]

logger = logging.getLogger("entitlegate")


class FeatureDenied(PermissionDenied):
    """A request lacks a feature or a limit (``feature``) or, with ``feature`` None, a Stripe customer.

    Raised by the decorators, the mixin and the middleware when ``DENIED`` is unset, so the site's
    403 page renders (``{{ exception }}`` reads "This page needs the 'x' feature."); handed to the
    ``DENIED`` handler otherwise. ``customer`` is the request's Stripe customer id, or None. A
    limit denial names the limit (``feature == "seats"``) and ``shortfall`` says by how much
    (:class:`entitlegate.gate.Shortfall`: ``limit``, ``allowed``, ``need``); it is None otherwise.
    ``entitlegate.gate.denial_body(exception.feature)`` is the JSON body the other adapters
    answer an API client with.
    """

    def __init__(self, feature: str | None, customer: str | None) -> None:
        shortfall = None if feature is None else denial_shortfall(feature)
        if feature is None:
            message = "This page needs a Stripe customer account."
        elif shortfall is not None:
            message = f"This page needs {shortfall.need} of {feature!r}; your plan allows {shortfall.allowed}."
        else:
            message = f"This page needs the {feature!r} feature."
        super().__init__(message)
        self.feature = feature
        self.customer = customer
        self.shortfall: Shortfall | None = shortfall


def portal_upgrade(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    """``DENIED`` handler: redirect to a Stripe Customer Portal session, back to this page after.

    Needs the resolver's source to be a :class:`~entitlegate.StripeSource`. A user without a
    customer id, or a portal session Stripe cannot make, gets the 403 (``exception`` re-raised).
    A denial that ``ON_UNAVAILABLE = "deny"`` made during an outage gets the 503 instead: the
    customer may hold the feature, so an upgrade is no answer.
    """
    if exception.feature is not None and denial_cause(exception.feature) is Cause.UNAVAILABLE:
        return unavailable()
    if exception.customer is None:
        raise exception
    try:
        url = portal_url(current().resolver, exception.customer, request.build_absolute_uri())
    except (SourceUnavailable, TypeError) as error:
        # The denial stands; only the offer to upgrade is unavailable. Say why, then 403.
        logger.warning("entitlegate could not open a Stripe Customer Portal session: %s", error)
        raise exception from None
    return HttpResponseRedirect(url)
