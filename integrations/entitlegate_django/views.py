"""The Stripe webhook endpoint: ``path("stripe/webhook/", stripe_webhook)`` in the urlconf.

Answers as every entitlegate adapter does (:class:`entitlegate.webhooks.WebhookAnswer`): 200 with
the event id, type, customer and action; 400 for a bad signature or body (a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` too, in the same JSON rather than Django's HTML page); 503 when
the event could not be applied now, or ``WEBHOOK_SECRET`` is unset, so Stripe delivers it again
later. Never a 500 for anything a request can carry.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from entitlegate.webhooks import WebhookAnswer, WebhookHandler
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
        body = request.body
    except RequestDataTooBig:
        return _too_big()
    return _render(handler.respond(body, request.headers.get("Stripe-Signature")))


async def astripe_webhook(request: HttpRequest) -> HttpResponse:
    """Async twin of :func:`stripe_webhook`, for ASGI sites (POST only, CSRF exempt)."""
    # Checked here rather than with require_POST, which only wraps async views from Django 5.0.
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    handler = _handler()
    if handler is None:
        return _not_configured()
    try:
        body = request.body
    except RequestDataTooBig:
        return _too_big()
    return _render(await handler.arespond(body, request.headers.get("Stripe-Signature")))


# csrf_exempt only wraps async views from Django 5.0; the attribute is all the CSRF middleware reads.
astripe_webhook.csrf_exempt = True  # type: ignore[attr-defined]


def _handler() -> WebhookHandler | None:
    return current().webhook_handler


def _render(answer: WebhookAnswer) -> JsonResponse:
    return JsonResponse(answer.body, status=answer.status)


def _too_big() -> JsonResponse:
    # Django's own answer is its HTML 400 page; Stripe (and whoever reads its delivery log) gets
    # the JSON 400 of every adapter. The limit stays: a Stripe event is far below Django's default.
    message = "the request body is larger than the site's DATA_UPLOAD_MAX_MEMORY_SIZE"
    logger.warning("Stripe webhook refused (400 invalid_payload): %s", message)
    return JsonResponse({"error": "invalid_payload", "message": message}, status=400)


def _not_configured() -> JsonResponse:
    logger.error("entitlegate received a Stripe webhook but ENTITLEGATE['WEBHOOK_SECRET'] is not set")
    return JsonResponse({"error": "not_configured", "message": "this webhook endpoint is not configured"}, status=503)
