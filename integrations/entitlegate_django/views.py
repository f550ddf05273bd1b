"""The Stripe webhook endpoint: ``path("stripe/webhook/", stripe_webhook)`` in the urlconf.

Answers 200 (JSON: the event id and what was done) for an event applied, invalidated, ignored,
stale or duplicate; 400 for a bad signature or body; 503 when Stripe must be asked again (a
truncated event during an outage) or ``WEBHOOK_SECRET`` is unset, so Stripe delivers the event
again later. Never a 500 for anything a request can carry.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from entitlegate.errors import InvalidPayload, InvalidSignature, SourceUnavailable
from entitlegate.webhooks import WebhookHandler, WebhookResult
from entitlegate_django.conf import current

__all__ = ["astripe_webhook", "stripe_webhook"]

logger = logging.getLogger("entitlegate")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Receive a Stripe webhook (POST only, CSRF exempt)."""
    handler = _handler()
    if handler is None:
        return _not_configured()
    try:
        result = handler.handle(request.body, request.headers.get("Stripe-Signature"))
    except (InvalidSignature, InvalidPayload) as error:
        return _bad_request(error)
    except SourceUnavailable:
        return _retry_later()
    return _done(result)


async def astripe_webhook(request: HttpRequest) -> HttpResponse:
    """Async twin of :func:`stripe_webhook`, for ASGI sites (POST only, CSRF exempt)."""
    # Checked here rather than with require_POST, which only wraps async views from Django 5.0.
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    handler = _handler()
    if handler is None:
        return _not_configured()
    try:
        result = await handler.ahandle(request.body, request.headers.get("Stripe-Signature"))
    except (InvalidSignature, InvalidPayload) as error:
        return _bad_request(error)
    except SourceUnavailable:
        return _retry_later()
    return _done(result)


# csrf_exempt only wraps async views from Django 5.0; the attribute is all the CSRF middleware reads.
astripe_webhook.csrf_exempt = True  # type: ignore[attr-defined]


def _handler() -> WebhookHandler | None:
    return current().webhook_handler


def _done(result: WebhookResult) -> JsonResponse:
    return JsonResponse({"id": result.event_id, "type": result.event_type, "action": result.action})


def _bad_request(error: InvalidSignature | InvalidPayload) -> JsonResponse:
    # The messages name the problem and the event id, never the secret.
    return JsonResponse({"error": str(error)}, status=400)


def _retry_later() -> JsonResponse:
    return JsonResponse({"error": "Stripe is unavailable; deliver this event again later"}, status=503)


def _not_configured() -> JsonResponse:
    logger.error("entitlegate received a Stripe webhook but ENTITLEGATE['WEBHOOK_SECRET'] is not set")
    return JsonResponse({"error": "this webhook endpoint is not configured"}, status=503)
