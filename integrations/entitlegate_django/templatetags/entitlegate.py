"""``{% load entitlegate %}``: ``{% if request|has_feature:"seats-feature" %}``."""

from __future__ import annotations

from django.http import HttpRequest
from django.template import Library

from entitlegate.gate import safe_has_feature
from entitlegate_django.conf import current
from entitlegate_django.entitlements import customer_for

register = Library()


@register.filter
def has_feature(request: HttpRequest, lookup_key: str) -> bool:
    """Whether the request's customer holds ``lookup_key``. Never breaks a page.

    False without a customer; in a Stripe outage, as ``ON_UNAVAILABLE`` says (False under
    ``"raise"``). Templates render synchronously: on a cache miss this asks Stripe.
    """
    config = current()
    return safe_has_feature(config.resolver, customer_for(config, request), lookup_key)
