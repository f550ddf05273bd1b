"""The ``features`` template variable: the customer's lookup_keys, looked up only if used."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from entitlegate_django.entitlements import entitlements_of

__all__ = ["features"]


def features(request: HttpRequest) -> dict[str, object]:
    """``{"features": ...}``: a lazy set of lookup_keys (``{% if "x" in features %}``).

    Empty without a customer and during a Stripe outage, so it never breaks a page. Nothing is
    fetched unless the template reads it.
    """

    return {"features": SimpleLazyObject(lambda: entitlements_of(request).safe_features())}
