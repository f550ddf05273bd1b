"""``{% load entitlegate %}``: ``{% if request|has_feature:"seats-feature" %}``, ``{{ request|limit:"seats" }}``."""

from __future__ import annotations

from django.http import HttpRequest
from django.template import Library

from entitlegate.catalog import Limit
from entitlegate_django.entitlements import entitlements_of

register = Library()


@register.filter
def has_feature(request: object, lookup_key: str) -> bool:
    """Whether the request's customer holds ``lookup_key``. Never breaks a page.

    False without a customer (or without a ``request`` in the context); in a Stripe outage, as
    ``ON_UNAVAILABLE`` says (False under ``"raise"``). Templates render synchronously: on a cache
    miss this asks Stripe, once per request whatever the number of checks.
    """
    if not isinstance(request, HttpRequest):
        return False
    return entitlements_of(request).safe_has_feature(lookup_key)


@register.filter
def limit(request: object, name: str) -> Limit:
    """The request's customer's limit ``name`` (``inf`` for "unlimited"). Never breaks a page.

    0 without a customer, when no feature carries it, and in a Stripe outage (a number is never
    guessed up).
    """
    if not isinstance(request, HttpRequest):
        return 0
    return entitlements_of(request).safe_limit(name)
