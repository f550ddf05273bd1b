"""The test project's CUSTOMER function: users named like a Stripe customer id are that customer."""

from __future__ import annotations

from django.http import HttpRequest


def customer_of(request: HttpRequest) -> str | None:
    """``cus_…`` usernames are Stripe customers; any other signed-in user has no customer id."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    username: str = user.username
    return username if username.startswith("cus_") else None


def no_customer_yet(request: HttpRequest) -> str:
    """A CUSTOMER that answers "" (a blank CharField), which counts as no customer."""
    return ""


def wrong_type(request: HttpRequest) -> int:
    """A CUSTOMER with a bug: it returns a number."""
    return 42
