"""Views of the Django example project, and the two functions its ``ENTITLEGATE`` settings name."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from entitlegate import SourceUnavailable, testing, upgrade
from entitlegate.gate import Outcome, denial_shortfall, portal_url
from entitlegate_django import FeatureDenied, get_resolver, requires_feature, requires_usage
from example_app import webhooks
from example_app.catalog import (
    ADD_SEAT,
    EXPORTS,
    PAGES,
    SEATS,
    TEAM,
    demo_customers,
    grantable,
    granted,
    page_needing,
    shown,
    upgrade_for,
)
from example_app.django_app.settings import ENV
from example_app.signin import COOKIE, COOKIE_MAX_AGE, parse_customer, safe_next


def demo_customer(request: HttpRequest) -> str | None:
    """``ENTITLEGATE["CUSTOMER"]``: the Stripe customer id the visitor signed in as, or None."""
    return parse_customer(request.COOKIES.get(COOKIE))


def upgrade_offer(request: HttpRequest, exception: FeatureDenied) -> HttpResponse:
    """``ENTITLEGATE["DENIED"]``: a 403 page that names the feature (or the limit) and offers the upgrade webhook."""
    feature = exception.feature
    if feature is None:
        raise exception  # no customer at all: the plain 403
    shortfall = denial_shortfall(feature)  # set when the denial is a limit's: "seats", 3 allowed, 4 needed
    upgrade = upgrade_for(feature, None if shortfall is None else shortfall.need)
    context = {"feature": feature, "shortfall": shortfall, "usage": exception.usage, "upgrade": upgrade}
    return render(request, "upgrade.html", context, status=403)


def layout(request: HttpRequest) -> dict[str, Any]:
    """Context processor: what every page of the example shows."""
    return {
        "framework": "Django",
        "env_line": ENV.describe(),
        "customer": demo_customer(request),
        "pages": [
            {"path": reverse(page.name), "title": page.title, "feature": page.feature, "blurb": page.blurb}
            for page in PAGES
        ],
    }


# -- pages ----------------------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """What the signed-in customer holds, and which pages that opens."""
    return render(request, "home.html")


@requires_feature("seats-feature")
def seats(request: HttpRequest) -> HttpResponse:
    """A page for customers holding ``seats-feature`` (a sync view)."""
    return render(request, "page.html", {"page": PAGES[0]})


@requires_feature("analytics")
async def analytics(request: HttpRequest) -> HttpResponse:
    """A page for customers holding ``analytics`` (an async view: gated the same way)."""
    return render(request, "page.html", {"page": PAGES[1]})


@require_GET
def team(request: HttpRequest) -> HttpResponse:
    """The team and the seats the customer's plan allows (from its Features' metadata)."""
    if demo_customer(request) is None:
        return redirect("signin")
    seats = request.entitlements.limit(SEATS)  # type: ignore[attr-defined]  # an outage: SourceUnavailable, 503
    return render(request, "team.html", {"team": TEAM, "seat_limit": shown(seats)})


@require_POST
def add_seat(request: HttpRequest) -> HttpResponse:
    """ "Add a seat": one seat more than the team has, within the plan's limit (the demo stores nothing)."""
    customer = demo_customer(request)
    if customer is None:
        return redirect("signin")
    # Judged here rather than with @requires_limit, so that a visitor who is not signed in to the
    # demo goes to its sign-in page; a denial takes the DENIED handler's path all the same.
    entitlements = request.entitlements  # type: ignore[attr-defined]
    verdict = entitlements.check_limit(ADD_SEAT, ADD_SEAT.needed())
    if verdict.error is not None and verdict.outcome is not Outcome.ALLOWED:
        raise verdict.error  # the outage, answered 503: no upsell when Stripe cannot say
    if not verdict.allowed:
        return upgrade_offer(request, FeatureDenied(verdict.feature or SEATS, customer))
    context = {"team": TEAM, "seat_limit": shown(entitlements.limit(SEATS)), "added": ADD_SEAT.needed()}
    return render(request, "team.html", context)


@require_GET
def exports(request: HttpRequest) -> HttpResponse:
    """How many exports the plan allows this month, how many are used, and a button to run one."""
    if demo_customer(request) is None:
        return redirect("signin")
    return _exports_page(request)


@require_POST
@requires_usage(EXPORTS, limit=EXPORTS)  # one use counted per export let through; 403 past the plan's limit
def run_export(request: HttpRequest) -> HttpResponse:
    """ "Export a report": allowed while this month's exports stay within the plan's limit."""
    return _exports_page(request, exported=True)


def _exports_page(request: HttpRequest, exported: bool = False) -> HttpResponse:
    entitlements = request.entitlements  # type: ignore[attr-defined]
    limit = shown(entitlements.limit(EXPORTS))  # an outage: SourceUnavailable, answered 503
    used = get_resolver().usage(entitlements.customer, EXPORTS)
    return render(request, "exports.html", {"limit": limit, "used": used, "exported": exported})


@require_GET
def features_json(request: HttpRequest) -> JsonResponse:
    """The signed-in customer's features as JSON (in an outage the middleware answers 503)."""
    entitlements = request.entitlements  # type: ignore[attr-defined]
    return JsonResponse({"customer": entitlements.customer, "features": sorted(entitlements.features)})


# -- the demo sign-in and the buttons ------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    """Pick a demo customer (or type any customer id); kept in a cookie."""
    context: dict[str, Any] = {"demo_customers": demo_customers(), "next": request.GET.get("next", "")}
    if request.method == "GET":
        return render(request, "signin.html", context)
    other = request.POST.get("other", "").strip()
    customer = parse_customer(other) if other else parse_customer(request.POST.get("customer"))
    if customer is None:
        return render(request, "signin.html", context | {"error": "That is not a customer id."}, status=400)
    response = redirect(safe_next(request.POST.get("next"), {reverse(page.name) for page in PAGES}))
    response.set_cookie(COOKIE, customer, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax")
    return response


@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    """Forget the demo customer."""
    response = redirect("home")
    response.delete_cookie(COOKIE)
    return response


@require_POST
def grant(request: HttpRequest) -> HttpResponse:
    """Send this site's webhook a signed summary event granting ``feature`` (a page's or a plan), then open its page."""
    customer = demo_customer(request)
    if customer is None:
        return redirect("signin")
    feature = request.POST.get("feature", "")
    if not grantable(feature):
        return HttpResponseBadRequest("no page or plan needs that feature")
    page = page_needing(feature)
    then = reverse("team" if page is None else page.name)
    if ENV.uses_stripe:
        # With a Stripe key the upgrade is real: the Customer Portal, on the subscription's plan page.
        back = upgrade.marked(request.build_absolute_uri(then))
        try:
            return redirect(portal_url(get_resolver(), customer, back, flow="subscription_update"), permanent=False)
        except SourceUnavailable:
            return redirect(then)  # logged by the source; the page still says why not
    # In an outage, features raises SourceUnavailable and the middleware answers 503.
    held: frozenset[str] = request.entitlements.features  # type: ignore[attr-defined]
    event = testing.summary_event(customer, granted(held, feature))
    return _send(request, event, then)


@require_POST
def reread(request: HttpRequest) -> HttpResponse:
    """Send a signed ``customer.subscription.updated``: the next check asks the source again."""
    customer = demo_customer(request)
    if customer is None:
        return redirect("signin")
    return _send(request, testing.subscription_event(customer), reverse("home"))


def _send(request: HttpRequest, event: dict[str, Any], then: str) -> HttpResponse:
    # Over HTTP to this site's own webhook URL, as Stripe would deliver it. runserver serves each
    # request in its own thread, so it can answer this one while the button's request waits.
    url = request.build_absolute_uri(reverse("stripe-webhook"))
    delivery = webhooks.deliver(url, event, ENV.webhook_secret)
    if delivery.status != 200:
        return render(request, "failed.html", {"delivery": delivery}, status=502)
    return redirect(then)
