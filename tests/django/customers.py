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


def raises(request: HttpRequest) -> str | None:
    """A CUSTOMER with a bug: it raises (a profile that does not exist, a missing attribute)."""
    raise LookupError("this user has no billing profile")


def blank(request: HttpRequest) -> str:
    """A CUSTOMER with a bug: a CharField of spaces."""
    return "   "


def padded(request: HttpRequest) -> str:
    """A CUSTOMER with a bug: the id with the newline it was stored with."""
    return "cus_1\n"


def username_of(request: HttpRequest) -> str | None:
    """A CUSTOMER written as most sites write one: it reads ``request.user`` without a guard."""
    username: str = request.user.username  # type: ignore[union-attr]
    return username if username.startswith("cus_") else None


calls: list[str] = []  # what counted() was asked, one entry per call


def counted(request: HttpRequest) -> str | None:
    """:func:`customer_of`, counting its calls in :data:`calls`."""
    calls.append(request.path)
    return customer_of(request)


def not_found(request: HttpRequest) -> str:
    """A CUSTOMER that answers a missing profile with Django's own 404."""
    from django.http import Http404

    raise Http404("no billing profile")


def header_customer(request: HttpRequest) -> str | None:
    """The ``X-Customer`` header: who is asking, said per request, with no user in the database."""
    return request.headers.get("X-Customer")
