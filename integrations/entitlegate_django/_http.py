"""The responses the package answers with itself, whichever module decides to: a leaf, importing nothing here."""

from __future__ import annotations

from django.http import HttpResponse

__all__ = ["UNAVAILABLE_MESSAGE", "unavailable"]

UNAVAILABLE_MESSAGE = "This page is temporarily unavailable: your plan could not be checked. Try again shortly."


def unavailable() -> HttpResponse:
    """The 503 answered when Stripe is down and nothing usable is cached."""
    return HttpResponse(UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8")
