"""The demo sign-in: the visitor picks a customer id, kept in a cookie. Not a login system.

A real app knows its user's Stripe customer id from its own accounts (``user.stripe_customer_id``);
here anyone may be any customer, which is the point of a demo and why the example apps refuse a
live-mode Stripe key.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

__all__ = ["COOKIE", "COOKIE_MAX_AGE", "parse_customer", "safe_next"]

COOKIE = "demo_customer"
COOKIE_MAX_AGE = 7 * 24 * 3600
# What a Stripe customer id looks like: refuse anything else before it reaches a cookie or Stripe.
_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9_]{1,200}")


def parse_customer(value: str | None) -> str | None:
    """The Stripe customer id in ``value`` (a cookie or a form field), or None when it is not one."""
    if value is None:
        return None
    value = value.strip()
    return value if _CUSTOMER_ID.fullmatch(value) else None


def safe_next(target: str | None, allowed: Collection[str]) -> str:
    """Where to go after signing in: the path of ``target`` when it is one of ``allowed``, else ``/``.

    Only a known path of this site, so the sign-in form cannot be used to redirect elsewhere.
    """
    if not target:
        return "/"
    path = urlsplit(target).path
    return path if path in allowed else "/"
