"""A minimal in-memory Django project for the Django rows: waffle's flag check and gated views.

Django's settings belong to a whole process, so ``python -m bench`` runs these rows in a child
process (``python -m bench.django_site [--quick]``), which prints them as JSON on stdout. The
project: sqlite in memory, the locmem cache (waffle's cache), no middleware, three URLs to one
trivial view — ``/plain`` and ``/other`` as is, ``/gated`` behind ``entitlegate_django.requires_feature`` —
with ``ENTITLEGATE`` naming a resolver on a StaticSource and a customer function below.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from bench.overhead import CUSTOMER, FEATURE, FEATURES, NO_FEATURES, Memo
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_django import requires_feature

SETTINGS = {
    "DEBUG": False,
    "SECRET_KEY": "bench-only-not-a-secret",
    "ALLOWED_HOSTS": ["testserver"],
    "USE_TZ": True,
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "ROOT_URLCONF": "bench.django_site",
    "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth", "waffle", "entitlegate_django"],
    "MIDDLEWARE": [],
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    "WAFFLE_CACHE_NAME": "default",
    "ENTITLEGATE": {"RESOLVER": "bench.django_site.resolver", "CUSTOMER": "bench.django_site.customer"},
}

resolver = Resolver(StaticSource({CUSTOMER: FEATURES}), MemoryCache())


def customer(request: HttpRequest) -> str | None:
    """The request's Stripe customer, from an ``X-Customer`` header."""
    found: str | None = request.META.get("HTTP_X_CUSTOMER")
    return found


def view(request: HttpRequest) -> HttpResponse:
    """The trivial view both URLs serve."""
    return HttpResponse(b"ok")


def empty_decorator(func: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A decorator that does nothing but wrap: the floor any view decorator costs."""

    @functools.wraps(func)
    def wrapper(request: HttpRequest) -> HttpResponse:
        return func(request)

    return wrapper


def hand_written_gate(func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The check written by hand, with none of the adapter: the CUSTOMER function, then ``has_feature``.

    Its wrapper takes the URL's arguments, as a view decorator must (``requires_feature``'s does,
    and so do Django's own, such as ``require_GET``).
    """

    @functools.wraps(func)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        found = customer(request)
        if found is None or not resolver.has_feature(found, FEATURE):
            raise PermissionDenied
        return func(request, *args, **kwargs)

    return wrapper


def hand_written_memo_gate(func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The check written by hand with entitlegate's per-request promise, and none of its code.

    The customer function and the resolver are asked once per request, whatever else on the page
    checks afterwards: the answer is kept in an object on the request, as ``request.entitlements``
    keeps it. What that promise alone costs, beside the check without it.
    """

    @functools.wraps(func)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        memo: Memo | None = request.__dict__.get("memo")
        if memo is None:
            found = customer(request)
            memo = request.memo = Memo(found, NO_FEATURES if found is None else resolver.features(found))  # type: ignore[attr-defined]
        if memo.customer is None or FEATURE not in memo.features:
            raise PermissionDenied
        return func(request, *args, **kwargs)

    return wrapper


gated_view = requires_feature(FEATURE)(view)
empty_view = empty_decorator(view)
require_get_view = require_GET(view)  # Django's own gate: the URL's arguments passed on, one check
hand_written_view = hand_written_gate(view)
memo_view = hand_written_memo_gate(view)
_PAGES = {
    "plain": view,
    "other": view,
    "gated": gated_view,
    "empty": empty_view,
    "get": require_get_view,
    "hand": hand_written_view,
    "memo": memo_view,
}


def page(request: HttpRequest, name: str) -> HttpResponse:
    """``/plain``, ``/other`` and ``/gated`` through one URL pattern, so all cost the same to resolve."""
    response: HttpResponse = _PAGES[name](request)
    return response


urlpatterns = [path("<slug:name>", page)]


def setup() -> None:
    """Configure Django with :data:`SETTINGS` and create the in-memory database's tables."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(**SETTINGS)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False, skip_checks=True)


def main(argv: list[str]) -> int:
    """Run the Django rows and print them as a JSON list."""
    quick = "--quick" in argv
    setup()
    from bench import django_views, waffle_peer

    rows = waffle_peer.run(quick=quick) + django_views.run(quick=quick)
    json.dump([row.to_json() for row in rows], sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
