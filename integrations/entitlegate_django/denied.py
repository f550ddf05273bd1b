"""What a denial is (:class:`FeatureDenied`) and the built-in upgrade handler for ``DENIED``."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from entitlegate.errors import SourceUnavailable
from entitlegate.gate import Cause, denial_cause, portal_url
from entitlegate_django.conf import current

__all__ = ["FeatureDenied", "portal_upgrade"]

logger = logging.getLogger("entitlegate")


class FeatureDenied(PermissionDenied):
    """A request lacks a feature (``feature``) or, with ``feature`` None, a Stripe customer.

    Raised by the decorator, the mixin and the middleware when ``DENIED`` is unset, so the site's
    403 page renders (``{{ exception }}`` reads "This page needs the 'x' feature."); handed to the
    ``DENIED`` handler otherwise. ``customer`` is the request's Stripe customer id, or None.
    """

    def __init__(self, feature: str | None, customer: str | None) -> None:
        if feature is None:
            message = "This page needs a Stripe customer account."
        else:
            message = f"This page needs the {feature!r} feature."
        super().__init__(message)
        self.feature = feature
        self.customer = customer


def portal_upgrade(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    """``DENIED`` handler: redirect to a Stripe Customer Portal session, back to this page after.

    Needs the resolver's source to be a :class:`~entitlegate.StripeSource`. A user without a
    customer id, or a portal session Stripe cannot make, gets the 403 (``exception`` re-raised).
    A denial that ``ON_UNAVAILABLE = "deny"`` made during an outage gets the 503 instead: the
    customer may hold the feature, so an upgrade is no answer.
    """
    if exception.feature is not None and denial_cause(exception.feature) is Cause.UNAVAILABLE:
        # Imported here: responses imports this module for FeatureDenied.
        from entitlegate_django.responses import unavailable

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
