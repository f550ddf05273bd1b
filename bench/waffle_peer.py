"""Section 1, the peer: django-waffle 5's ``flag_is_active`` on a cached flag.

What a Django team would otherwise use to gate a feature per account: a waffle Flag that holds
the account's user. Runs in the child process :mod:`bench.django_site` sets up (sqlite in
memory, waffle's cache on locmem). The flag and its user ids are in the cache before timing.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import RequestFactory
from waffle import flag_is_active
from waffle.models import Flag

from bench._timing import Row, ns_row

SECTION = "1 hit"


def run(*, quick: bool = False) -> list[Row]:
    """ns per warmed ``flag_is_active``: a flag naming the user, and a flag on for everyone."""
    user = User.objects.create(username="customer")
    per_user = Flag.objects.create(name="seats-feature", everyone=None, superusers=False)
    per_user.users.add(user)
    Flag.objects.create(name="everyone-feature", everyone=True)
    request = RequestFactory().get("/")
    request.user = user
    for name in ("seats-feature", "everyone-feature"):
        if flag_is_active(request, name) is not True:
            raise RuntimeError(f"waffle flag {name!r} is not active for the bench user: the bench is broken")
    names = {"active": flag_is_active, "request": request}
    number = 500 if quick else 5_000
    repeat = 3 if quick else 7
    return [
        ns_row(
            SECTION,
            "django-waffle `flag_is_active`, flag holding the user (cached)",
            "active(request, 'seats-feature')",
            globals_=names,
            number=number,
            repeat=repeat,
            note="the per-account gate: flag and its user ids both from waffle's locmem cache",
        ),
        ns_row(
            SECTION,
            "django-waffle `flag_is_active`, flag on for everyone (cached)",
            "active(request, 'everyone-feature')",
            globals_=names,
            number=number,
            repeat=repeat,
            note="waffle's cheapest flag: one cache read",
        ),
    ]
