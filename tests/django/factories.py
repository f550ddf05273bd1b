"""RESOLVER and DENIED targets for the settings tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate.gate import denial_body
from entitlegate_django import FeatureDenied

static_resolver = Resolver(StaticSource({"cus_static": ["seats-feature"]}))


def make_static_resolver() -> Resolver:
    return Resolver(StaticSource({"cus_factory": ["seats-feature"]}))


def not_a_resolver() -> str:
    return "nope"


def pricing_page(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    return HttpResponse(f"upgrade for {exception.feature}", status=402)


async def async_denied(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    return HttpResponse("never")


denials: list[FeatureDenied] = []  # what keep_denial was handed


def keep_denial(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    denials.append(exception)
    return HttpResponse(f"upgrade for {exception.feature}", status=402)


# Usage: starter allows 3 exports a period, team 100; cus_free's features carry no limit (0).
USAGE_CUSTOMERS = {"cus_starter": ["starter"], "cus_team": ["team"], "cus_free": []}
USAGE_PLANS = {"starter": {"exports": "3"}, "team": {"exports": "100"}}


def make_usage_resolver() -> Resolver:
    return Resolver(StaticSource(USAGE_CUSTOMERS, features=USAGE_PLANS), MemoryCache())


def json_denial(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    """A DENIED handler as an API site writes one: the JSON body every adapter shares."""
    if exception.feature is None:
        raise exception
    return JsonResponse(denial_body(exception.feature), status=403)
