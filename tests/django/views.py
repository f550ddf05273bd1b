"""Views of the test project, one per way of gating."""

from __future__ import annotations

import asyncio
import threading

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View

from entitlegate_django import FeatureRequiredMixin, requires_feature, requires_limit, requires_usage


@requires_feature("seats-feature")
def seats(request: HttpRequest) -> HttpResponse:
    return HttpResponse("seats page")


@requires_feature("analytics", "export")
def analytics_export(request: HttpRequest) -> HttpResponse:
    return HttpResponse("analytics and export")


@requires_feature(any_of=("gold", "silver"))
def metal(request: HttpRequest) -> HttpResponse:
    return HttpResponse("a metal plan")


@requires_feature("seats-feature")
async def aseats(request: HttpRequest) -> HttpResponse:
    # Proves the view body ran in the event loop's own thread.
    asyncio.get_running_loop()
    return HttpResponse(f"async seats page on {threading.current_thread().name}")


class SeatsView(FeatureRequiredMixin, View):
    required_features = ("seats-feature",)

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class seats page")


class AsyncSeatsView(FeatureRequiredMixin, View):
    required_features = ("seats-feature",)

    async def get(self, request: HttpRequest) -> HttpResponse:
        asyncio.get_running_loop()
        return HttpResponse("async class seats page")


class MetalView(FeatureRequiredMixin, View):
    any_of_features = ("gold", "silver")

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class metal page")


class DecoratedView(View):
    @method_decorator(requires_feature("seats-feature"))
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("decorated method")


class AsyncDecoratedView(View):
    @method_decorator(requires_feature("seats-feature"))
    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("async decorated method")


def page(request: HttpRequest) -> HttpResponse:
    """An ungated page (the rules cover /pro/... only)."""
    return HttpResponse(f"page at {request.path}")


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def lazy(request: HttpRequest) -> HttpResponse:
    return render(request, "lazy.html")


def limit_page(request: HttpRequest) -> HttpResponse:
    return render(request, "limit.html")


def my_features(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"features": sorted(request.entitlements.features)})  # type: ignore[attr-defined]


def my_feature_check(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"seats": "seats-feature" in request.entitlements})  # type: ignore[attr-defined]


async def amy_features(request: HttpRequest) -> JsonResponse:
    features = await request.entitlements.afeatures()  # type: ignore[attr-defined]
    return JsonResponse({"features": sorted(features)})


def _team_size(request: HttpRequest) -> int:
    """The seats a request needs: ``?seats=N`` (the team it would make)."""
    return int(request.GET.get("seats", "1"))


@requires_limit("seats", _team_size)
def team(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"team of {_team_size(request)}")


@requires_limit("seats", 3)
def team_of_three(request: HttpRequest) -> HttpResponse:
    return HttpResponse("team of 3")


@requires_limit("seats", _team_size)
async def ateam(request: HttpRequest) -> HttpResponse:
    asyncio.get_running_loop()
    return HttpResponse(f"async team of {_team_size(request)}")


class TeamView(View):
    @method_decorator(requires_limit("seats", _team_size))
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class team")


class AsyncTeamView(View):
    @method_decorator(requires_limit("seats", _team_size))
    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("async class team")


def my_limit(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"seats": request.entitlements.limit("seats")})  # type: ignore[attr-defined]


async def amy_limit(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"seats": await request.entitlements.alimit("seats")})  # type: ignore[attr-defined]


@requires_feature("seats-feature")
@requires_limit("seats", 1)
def checks(request: HttpRequest) -> HttpResponse:
    """Many checks on one request: a rule (/pro), two decorators, the view's own, the template's."""
    export = "export" in request.entitlements  # type: ignore[attr-defined]
    return render(request, "checks.html", {"export": export})


@requires_feature("seats-feature")
@requires_limit("seats", 1)
async def achecks(request: HttpRequest) -> HttpResponse:
    """The async twin of :func:`checks`, without a template (templates render synchronously)."""
    entitlements = request.entitlements  # type: ignore[attr-defined]
    found = [await entitlements.ahas_feature("analytics"), await entitlements.ahas_feature("export")]
    return HttpResponse(f"checked {found}")


@requires_usage("exports", limit="exports")
def export(request: HttpRequest) -> HttpResponse:
    return HttpResponse("exported")


@requires_usage("exports", limit="exports")
async def aexport(request: HttpRequest) -> HttpResponse:
    asyncio.get_running_loop()
    return HttpResponse("async exported")


@requires_usage("exports", limit=4, value=2)
def big_export(request: HttpRequest) -> HttpResponse:
    return HttpResponse("exported twice over")


class ExportView(View):
    @method_decorator(requires_usage("exports", limit="exports"))
    def post(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class exported")
