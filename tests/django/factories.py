"""RESOLVER and DENIED targets for the settings tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from entitlegate import Resolver, StaticSource
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
