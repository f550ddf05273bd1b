"""The built-in denied handler: an upgrade redirect to a Stripe Customer Portal session."""

from __future__ import annotations

import logging

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from entitlegate import SourceUnavailable
from entitlegate.gate import portal_url
from entitlegate_flask import per_request
from flask import abort, request

__all__ = ["portal_redirect"]

logger = logging.getLogger("entitlegate")


def portal_redirect(feature: str) -> Response:
    """Send a customer without ``feature`` to a new Stripe Customer Portal session (303).

    Register it with ``@entitlements.denied_handler`` (``entitlements.denied_handler(portal_redirect)``);
    the portal sends the customer back to the page they asked for. Needs the app's resolver to use
    a :class:`~entitlegate.StripeSource` (``init_app`` checks). When Stripe does not answer: 503.
    """
    answers = per_request.current()
    if answers.customer is None:
        abort(403)
    try:
        url = portal_url(answers.resolver, answers.customer, request.url)
    except SourceUnavailable:
        abort(503)
    except TypeError:
        # Registered after init_app (which checks) on an app whose source cannot make portal
        # sessions: deny, and say why once per denial rather than fail the request.
        logger.error(
            "entitlegate: portal_redirect needs a StripeSource; %r cannot make portal sessions", answers.resolver.source
        )
        abort(403)
    return redirect(url, code=303)
