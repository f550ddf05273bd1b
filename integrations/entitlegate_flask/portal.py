"""The built-in denied handler: an upgrade trip through a Stripe Customer Portal session, and back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import overload

from flask import abort, jsonify, redirect, request
from werkzeug.wrappers import Response

from entitlegate import Resolver, SourceUnavailable, upgrade
from entitlegate.gate import Cause, PortalSessions, denial_body, denial_cause, portal_url, prefers_json, upgrade_body
from entitlegate.sources import PortalFlow
from entitlegate_flask.current import request_entitlements

__all__ = ["back_from_portal", "is_portal_handler", "makes_portal_sessions", "portal_redirect"]

logger = logging.getLogger("entitlegate")

_Handler = Callable[[str], Response]
_RETURN = upgrade.RETURN_MARKER.encode()


@overload
def portal_redirect(feature: str) -> Response: ...


@overload
def portal_redirect(
    *, flow: PortalFlow | None = None, configuration: str | None = None, locale: str | None = None
) -> _Handler: ...


def portal_redirect(
    feature: str | None = None,
    *,
    flow: PortalFlow | None = None,
    configuration: str | None = None,
    locale: str | None = None,
) -> Response | _Handler:
    """Send a customer without ``feature`` to a new Stripe Customer Portal session (303).

    Register it with ``entitlements.denied_handler(portal_redirect)``, or with options:
    ``entitlements.denied_handler(portal_redirect(flow="subscription_update", locale="auto"))``
    (``flow="subscription_update"`` opens the plan page of the customer's active subscription;
    ``configuration`` and ``locale`` are the portal's). The portal comes back to the page asked
    for, marked so that the extension refreshes the customer's entitlements once on the way in.
    An API client (``Accept: application/json``) gets a JSON 403 (``gate.denial_body`` plus
    ``"upgrade_url"``) instead of the redirect.

    Needs the app's resolver to use a :class:`~entitlegate.StripeSource` (``init_app`` checks).
    A session Stripe cannot make leaves the 403, with its cause logged; a denial that
    ``ENTITLEGATE_ON_UNAVAILABLE = "deny"`` made during an outage is a 503 (the customer may
    hold the feature: an upgrade is no answer).
    """
    if feature is None:
        return _handler(flow, configuration, locale)
    return _redirect(feature, None, None, None)


def _handler(flow: PortalFlow | None, configuration: str | None, locale: str | None) -> _Handler:
    def portal_redirect(feature: str) -> Response:
        return _redirect(feature, flow, configuration, locale)

    _PORTAL_HANDLERS.add(portal_redirect)
    return portal_redirect


_PORTAL_HANDLERS: set[Callable[..., object]] = {portal_redirect}


def is_portal_handler(handler: object) -> bool:
    """Whether ``handler`` is :func:`portal_redirect` or one it made (``init_app`` then checks the source)."""
    return handler in _PORTAL_HANDLERS


def _redirect(feature: str, flow: PortalFlow | None, configuration: str | None, locale: str | None) -> Response:
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
    wants_json = prefers_json(request.headers.get("Accept", ""))
    try:
        url = portal_url(
            entitlements.resolver,
            customer,
            upgrade.marked(request.url),
            flow=flow,
            configuration=configuration,
            locale=locale,
        )
    except SourceUnavailable as error:
        # The denial stands; only the offer to upgrade is unavailable (logged by the source).
        logger.warning("entitlegate could not open a Stripe Customer Portal session: %s", error)
        if wants_json:
            return _json(denial_body(feature))
        abort(403)
    if wants_json:
        return _json(upgrade_body(feature, url))
    return redirect(url, code=303)


def _json(body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.status_code = 403
    response.headers["Vary"] = "Accept"
    return response


def back_from_portal() -> Response | None:
    """``before_request`` hook: a customer back from the portal is refreshed once, then unmarked (303).

    None, at the cost of one substring test, for every other request.
    """
    raw = request.query_string
    # Every request passes here: no decoding until the marker is seen, and find() rather than
    # `in`, which for bytes first tries the operand as a byte value (a TypeError raised and cleared).
    if not raw or raw.find(_RETURN) < 0:
        return None
    query = raw.decode("latin-1")
    if not upgrade.is_return(query):
        return None
    entitlements = request_entitlements()
    upgrade.refresh_on_return(entitlements.resolver, entitlements.customer)
    return redirect(upgrade.unmarked(request.path, query), code=303)


def makes_portal_sessions(resolver: Resolver) -> bool:
    """Whether the resolver's source can make Customer Portal sessions (a StripeSource can)."""
    return isinstance(resolver.source, PortalSessions)
