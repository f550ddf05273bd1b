"""Turning a request into a gate check, and the gate's verdict into a Django response.

The one place the decorator, the mixin and the middleware decide: :func:`enforce` and its async
twin return None to let the request through, or the response that answers it instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.apps import apps
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from entitlegate.gate import Outcome, Requirement, acheck, check
from entitlegate_django.conf import Config, current
from entitlegate_django.denied import FeatureDenied
from entitlegate_django.entitlements import acustomer_for, customer_for

__all__ = ["aenforce", "enforce", "unavailable"]

_ALLOWED = Outcome.ALLOWED  # an enum member read through its class costs ~70 ns: read it once

UNAVAILABLE_MESSAGE = "This page is temporarily unavailable: your plan could not be checked. Try again shortly."


def enforce(request: HttpRequest, requirement: Requirement, config: Config | None = None) -> HttpResponseBase | None:
    """None when the request meets ``requirement``, else the response for the denial.

    Raises :class:`FeatureDenied` (a ``PermissionDenied``: the site's 403) when ``DENIED`` is unset.
    """
    if config is None:
        config = current()
    customer = customer_for(config, request)
    verdict = check(config.resolver, customer, requirement)
    if verdict.outcome is _ALLOWED:
        return None
    if verdict.outcome is Outcome.UNAVAILABLE:
        return unavailable()
    if verdict.outcome is Outcome.NO_CUSTOMER and _has_login() and not _signed_in(request):
        return _login_redirect(request)
    denial = FeatureDenied(verdict.feature, customer)
    if config.denied is None:
        raise denial
    return config.denied(request, denial)


async def aenforce(
    request: HttpRequest, requirement: Requirement, config: Config | None = None
) -> HttpResponseBase | None:
    """Async twin of :func:`enforce`: on a cache hit it never leaves the event loop."""
    if config is None:
        config = current()
    customer = await acustomer_for(config, request)
    verdict = await acheck(config.resolver, customer, requirement)
    if verdict.outcome is _ALLOWED:
        return None
    if verdict.outcome is Outcome.UNAVAILABLE:
        return unavailable()
    if verdict.outcome is Outcome.NO_CUSTOMER and _has_login() and not await _asigned_in(request):
        return _login_redirect(request)
    denial = FeatureDenied(verdict.feature, customer)
    if config.denied is None:
        raise denial
    # A denied handler is a plain function that may use the database: run it as Django runs a
    # sync view under ASGI. Only denials pay for the thread.
    response: HttpResponseBase = await sync_to_async(config.denied)(request, denial)
    return response


def unavailable() -> HttpResponse:
    """The 503 answered when Stripe is down and nothing usable is cached."""
    return HttpResponse(UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8")


def _has_login() -> bool:
    # A site without django.contrib.auth has no login page to send anyone to: a request without
    # a customer is then denied (403) like a signed-in user without one, never a 500.
    return apps.is_installed("django.contrib.auth")


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return user is not None and bool(user.is_authenticated)


async def _asigned_in(request: HttpRequest) -> bool:
    auser = getattr(request, "auser", None)  # Django >= 5.0
    if auser is not None:
        user = await auser()
        return bool(user.is_authenticated)
    return await sync_to_async(_signed_in)(request)


def _login_redirect(request: HttpRequest) -> HttpResponseBase:
    # As django.contrib.auth's login_required does it: a relative "next" when the login page is
    # on this site. Imported here: auth's views need the app registry, which may not be ready yet.
    from django.conf import settings
    from django.contrib.auth import REDIRECT_FIELD_NAME
    from django.contrib.auth.views import redirect_to_login
    from django.shortcuts import resolve_url

    path = request.build_absolute_uri()
    login_url = resolve_url(settings.LOGIN_URL)
    login_scheme, login_netloc = urlsplit(login_url)[:2]
    current_scheme, current_netloc = urlsplit(path)[:2]
    if (not login_scheme or login_scheme == current_scheme) and (not login_netloc or login_netloc == current_netloc):
        path = request.get_full_path()
    return redirect_to_login(path, login_url, REDIRECT_FIELD_NAME)
