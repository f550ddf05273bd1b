"""The Stripe webhook endpoint: a blueprint with one POST route at ``ENTITLEGATE_WEBHOOK_URL``.

It answers as every entitlegate adapter does (:class:`entitlegate.webhooks.WebhookAnswer`): 200
with a JSON summary of what the event did; 400 for a bad signature or body; 503 when the event
could not be applied now (Stripe delivers it again). Never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue

from entitlegate_flask._state import state_of

__all__ = ["BLUEPRINT_NAME", "make_blueprint"]

logger = logging.getLogger("entitlegate")

BLUEPRINT_NAME = "entitlegate"


def make_blueprint(url: str) -> Blueprint:
    """A fresh blueprint (one per app) whose endpoint ``entitlegate.webhook`` answers POST at ``url``."""
    blueprint = Blueprint(BLUEPRINT_NAME, __name__)
    blueprint.add_url_rule(url, "webhook", receive_webhook, methods=["POST"])
    blueprint.url_value_preprocessor(_exempt_from_csrf)
    return blueprint


def receive_webhook() -> ResponseReturnValue:
    """Verify and apply one Stripe webhook delivery."""
    handler = state_of(current_app).webhook
    assert handler is not None  # the blueprint is registered only with a handler
    # Read outside the try: a body over the app's MAX_CONTENT_LENGTH is werkzeug's own 413.
    payload = request.get_data(cache=False)
    answer = handler.respond(payload, request.headers.get("Stripe-Signature"))
    return answer.body, answer.status


def _exempt_from_csrf(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Stripe cannot send a CSRF token. Flask-WTF's CSRFProtect (when an app has one) checks in an
    # app-wide before_request hook; URL value preprocessors run before every before_request hook
    # and only for this blueprint's requests, so exempting here works whichever extension was set
    # up first, costs other routes nothing, and never imports flask_wtf.
    csrf = current_app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(current_app.blueprints[BLUEPRINT_NAME])
