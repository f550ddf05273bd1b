"""Turning a request into a gate check, and the gate's verdict into a Django response.

The one place the decorator, the mixin and the middleware decide: :func:`enforce` and its async
twin return None to let the request through, or the response that answers it instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.exceptions import SynchronousOnlyOperation
from django.http import HttpRequest, HttpResponseBase

from entitlegate.gate import Outcome, Requirement, Verdict
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate_django import conf
from entitlegate_django._http import UNAVAILABLE_MESSAGE, unavailable
from entitlegate_django.conf import Config, current
from entitlegate_django.denied import FeatureDenied
from entitlegate_django.entitlements import Entitlements, entitlements_of

__all__ = [
    "UNAVAILABLE_MESSAGE",
    "aenforce",
    "aenforce_limit",
    "aenforce_usage",
    "enforce",
    "enforce_limit",
    "enforce_usage",
    "unavailable",
]

_ALLOWED = Outcome.ALLOWED  # an enum member read through its class costs ~70 ns: read it once
_NO_CUSTOMER = Verdict(Outcome.NO_CUSTOMER)
_answered = Entitlements.answered  # read once: a classmethod through its class makes a bound method


def enforce(request: HttpRequest, requirement: Requirement, config: Config | None = None) -> HttpResponseBase | None:
    """None when the request meets ``requirement``, else the response for the denial.

    Raises :class:`FeatureDenied` (a ``PermissionDenied``: the site's 403) when ``DENIED`` is unset.
    """
    if config is None:
        config = conf.built or current()  # current() without its call, once built: the gated path of every view
    # entitlements_of, inlined: this is the gated path of every decorated view.
    entitlements = request.__dict__.get("entitlements")
    if entitlements is None:
        entitlements = request.entitlements = _answered(config.lookup, request)  # type: ignore[attr-defined]
    elif not isinstance(entitlements, Entitlements):
        entitlements = entitlements_of(request, config)
    verdict = entitlements.check(requirement)
    if verdict.outcome is _ALLOWED:
        return None
    return _refuse(request, verdict, entitlements, config)


async def aenforce(
    request: HttpRequest, requirement: Requirement, config: Config | None = None
) -> HttpResponseBase | None:
    """Async twin of :func:`enforce`: on a cache hit it never leaves the event loop."""
    if config is None:
        config = current()
    entitlements = entitlements_of(request, config)
    verdict = await entitlements.acheck(requirement)
    if verdict.outcome is _ALLOWED:
        return None
    return await _arefuse(request, verdict, entitlements, config)


def enforce_limit(
    request: HttpRequest, requirement: LimitRequirement, config: Config | None = None
) -> HttpResponseBase | None:
    """None when the customer's limit ``requirement.name`` covers the request's need, else the denial.

    The need (a callable of the request) is asked only for a request with a customer. A denial
    takes the path of :func:`enforce`'s, naming the limit.
    """
    if config is None:
        config = current()
    entitlements = entitlements_of(request, config)
    if entitlements.customer is None:
        verdict = _NO_CUSTOMER
    else:
        verdict = entitlements.check_limit(requirement, requirement.needed(request))
    if verdict.outcome is _ALLOWED:
        return None
    return _refuse(request, verdict, entitlements, config)


async def aenforce_limit(
    request: HttpRequest, requirement: LimitRequirement, config: Config | None = None
) -> HttpResponseBase | None:
    """Async twin of :func:`enforce_limit`: a need function that touches the database runs in a thread."""
    if config is None:
        config = current()
    entitlements = entitlements_of(request, config)
    if await entitlements.acustomer() is None:
        verdict = _NO_CUSTOMER
    else:
        try:
            need = requirement.needed(request)
        except SynchronousOnlyOperation:
            need = await sync_to_async(requirement.needed)(request)
        verdict = await entitlements.acheck_limit(requirement, need)
    if verdict.outcome is _ALLOWED:
        return None
    return await _arefuse(request, verdict, entitlements, config)


def enforce_usage(
    request: HttpRequest, requirement: UsageRequirement, config: Config | None = None
) -> HttpResponseBase | None:
    """None when the customer's use of ``requirement.meter`` is admitted (and so counted), else the denial.

    A denial takes the path of :func:`enforce`'s, naming the meter.
    """
    if config is None:
        config = current()
    entitlements = entitlements_of(request, config)
    verdict = entitlements.check_usage(requirement)
    if verdict.outcome is _ALLOWED:
        return None
    return _refuse(request, verdict, entitlements, config)


async def aenforce_usage(
    request: HttpRequest, requirement: UsageRequirement, config: Config | None = None
) -> HttpResponseBase | None:
    """Async twin of :func:`enforce_usage`."""
    if config is None:
        config = current()
    entitlements = entitlements_of(request, config)
    verdict = await entitlements.acheck_usage(requirement)
    if verdict.outcome is _ALLOWED:
        return None
    return await _arefuse(request, verdict, entitlements, config)


def _refuse(request: HttpRequest, verdict: Verdict, entitlements: Entitlements, config: Config) -> HttpResponseBase:
    if verdict.outcome is Outcome.UNAVAILABLE:
        return unavailable()
    if verdict.outcome is Outcome.NO_CUSTOMER and _has_login() and not _signed_in(request):
        return _login_redirect(request)
    denial = FeatureDenied(verdict.feature, entitlements.customer)
    if config.denied is None:
        raise denial
    return config.denied(request, denial)


async def _arefuse(
    request: HttpRequest, verdict: Verdict, entitlements: Entitlements, config: Config
) -> HttpResponseBase:
    if verdict.outcome is Outcome.UNAVAILABLE:
        return unavailable()
    if verdict.outcome is Outcome.NO_CUSTOMER and _has_login() and not await _asigned_in(request):
        return _login_redirect(request)
    denial = FeatureDenied(verdict.feature, await entitlements.acustomer())
    if config.denied is None:
        raise denial
    # A denied handler is a plain function that may use the database: run it as Django runs a
    # sync view under ASGI. Only denials pay for the thread.
    response: HttpResponseBase = await sync_to_async(config.denied)(request, denial)
    return response


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
