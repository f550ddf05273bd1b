"""``{% load entitlegate %}``: ``{% if request|has_feature:"seats-feature" %}``."""

from __future__ import annotations

from django.http import HttpRequest
from django.template import Library

from entitlegate.gate import safe_has_feature
from entitlegate_django.conf import current
from entitlegate_django.entitlements import Entitlements
from entitlegate_django.responses import customer_of

register = Library()


@register.filter
def has_feature(request: HttpRequest, lookup_key: str) -> bool:
    """Whether the request's customer holds ``lookup_key``. Never breaks a page.

    False without a customer; in a Stripe outage, as ``ON_UNAVAILABLE`` says (False under
    ``"raise"``). Templates render synchronously: on a cache miss this asks Stripe.
    """
    config = current()
    entitlements = getattr(request, "entitlements", None)
    if isinstance(entitlements, Entitlements):
        customer = entitlements.customer
    else:
        customer = customer_of(config, request)
    return safe_has_feature(config.resolver, customer, lookup_key)
