"""The built-in denied handler: an upgrade redirect to a Stripe Customer Portal session."""

from __future__ import annotations

import logging

from flask import abort, redirect, request
from werkzeug.wrappers import Response

from entitlegate import Resolver, SourceUnavailable
from entitlegate.gate import Cause, PortalSessions, denial_cause, portal_url
from entitlegate_flask.current import request_entitlements

__all__ = ["makes_portal_sessions", "portal_redirect"]

logger = logging.getLogger("entitlegate")


def portal_redirect(feature: str) -> Response:
    """Send a customer without ``feature`` to a new Stripe Customer Portal session (303).

    Register it with ``@entitlements.denied_handler`` (``entitlements.denied_handler(portal_redirect)``);
    the portal sends the customer back to the page they asked for. Needs the app's resolver to use
    a :class:`~entitlegate.StripeSource` (``init_app`` checks). When Stripe does not answer: 503,
    and a denial that ``ENTITLEGATE_ON_UNAVAILABLE = "deny"`` made during an outage is a 503 too
    (the customer may hold the feature: an upgrade is no answer).
    """
    if denial_cause(feature) is Cause.UNAVAILABLE:
        abort(503)
    entitlements = request_entitlements()
    customer = entitlements.customer
    if customer is None:
        abort(403)
    if not makes_portal_sessions(entitlements.resolver):
        # Registered after init_app (which checks) on an app whose source cannot make portal
        # sessions: still a denial, with the reason logged, rather than a server error.
        logger.error("entitlegate: portal_redirect needs a StripeSource, not %r", entitlements.resolver.source)
        abort(403)
    try:
        url = portal_url(entitlements.resolver, customer, request.url)
    except SourceUnavailable:
        abort(503)
    return redirect(url, code=303)


def makes_portal_sessions(resolver: Resolver) -> bool:
    """Whether the resolver's source can make Customer Portal sessions (a StripeSource can)."""
    return isinstance(resolver.source, PortalSessions)
