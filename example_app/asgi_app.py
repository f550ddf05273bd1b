"""The Starlette example app: ``uvicorn --factory example_app.asgi_app:create_app`` (``make run-asgi``).

``entitlegate_asgi`` as the README's ASGI guide sets it up: Starlette's
``AuthenticationMiddleware`` (here reading the demo sign-in cookie) before
``EntitlementMiddleware``, ``@requires_feature`` on two pages, a team page that shows the seat
limit and ``@requires_limit`` on its "add a seat", an ``on_denied`` page that offers the
upgrade, and ``webhook_app`` at ``/stripe/webhook``.
It shares its Jinja templates with the Flask app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser, requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from entitlegate import SourceUnavailable, WebhookHandler, testing, upgrade
from entitlegate.gate import aportal_url, denial_shortfall, denial_usage
from entitlegate_asgi import (
    EntitlementMiddleware,
    Entitlements,
    requires_feature,
    requires_limit,
    requires_usage,
    webhook_app,
)
from example_app import environment, webhooks
from example_app.catalog import (
    ADD_SEAT,
    EXPORTS,
    PAGES,
    SEATS,
    TEAM,
    Page,
    demo_customers,
    grantable,
    granted,
    page_needing,
    shown,
    upgrade_for,
)
from example_app.environment import Environment
from example_app.signin import COOKIE, COOKIE_MAX_AGE, parse_customer, safe_next

__all__ = ["create_app"]

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
URLS = {
    "home": "/",
    "signin": "/signin",
    "signout": "/signout",
    "grant": "/upgrade",
    "reread": "/reread",
    "api": "/api/features",
    "team": "/team",
    "add_seat": "/team/seats",
    "exports": "/exports",
    "run_export": "/exports/run",
    "webhook": "/stripe/webhook",
}


def create_app() -> Starlette:
    """The app, configured from the environment (see ``example_app.environment``).

    Raises ``ValueError`` naming the setting when one is wrong.
    """
    env = environment.from_env()
    resolver = env.build_resolver()
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/signin", signin, methods=["GET", "POST"], name="signin"),
            Route("/signout", signout, methods=["POST"]),
            Route("/seats", seats),
            Route("/analytics", analytics),
            Route("/team", team),
            Route("/team/seats", add_seat, methods=["POST"]),
            Route("/exports", exports),
            Route("/exports/run", run_export, methods=["POST"]),
            Route("/api/features", features_json),
            Route("/upgrade", grant, methods=["POST"]),
            Route("/reread", reread, methods=["POST"]),
            Route(URLS["webhook"], webhook_app(WebhookHandler(resolver, env.webhook_secret)), name="stripe-webhook"),
        ],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=DemoSignIn()),  # first: it sets scope["user"]
            Middleware(EntitlementMiddleware, resolver=resolver, customer=stripe_customer, on_denied=upgrade_offer),
        ],
    )
    app.state.env = env
    return app


class DemoSignIn(AuthenticationBackend):
    """Signs the visitor in as the customer in the demo cookie; the user's name is the customer id."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        customer = parse_customer(conn.cookies.get(COOKIE))
        if customer is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(customer)


def stripe_customer(scope: Scope) -> str | None:
    """``EntitlementMiddleware``'s ``customer``: the signed-in user's Stripe customer id, or None."""
    user: BaseUser = scope["user"]
    return user.identity if user.is_authenticated else None


def upgrade_offer(scope: Scope, feature: str) -> Response:
    """``on_denied``: a 403 page that names the feature (or the limit) and offers the upgrade webhook."""
    request = Request(scope)
    shortfall = denial_shortfall(feature)  # set when the denial is a limit's: "seats", 3 allowed, 4 needed
    upgrade = upgrade_for(feature, None if shortfall is None else shortfall.need)
    usage = denial_usage(feature)  # set when the denial is a meter's: "exports", 3 used of 3
    context = {"feature": feature, "shortfall": shortfall, "usage": usage, "upgrade": upgrade}
    return TEMPLATES.TemplateResponse(request, "upgrade.html", _context(request, **context), status_code=403)


# -- pages ----------------------------------------------------------------------------------------


def _context(request: Request, **extra: Any) -> dict[str, Any]:
    # The middleware loaded the entitlements before any of these render (a gated endpoint, or an
    # endpoint that awaited load()); a template gets features and has_feature as Flask's do.
    entitlements: Entitlements = request.state.entitlements
    try:
        features = entitlements.features
    except SourceUnavailable:
        features = frozenset()  # a page never breaks for an outage: it shows no features
    env: Environment = request.app.state.env
    return {
        "framework": "Starlette",
        "env_line": env.describe(),
        "customer": entitlements.customer,
        "features": features,
        "has_feature": features.__contains__,
        "pages": [_page_link(page) for page in PAGES],
        "urls": URLS,
        **extra,
    }


def _page_link(page: Page) -> dict[str, str]:
    return {"path": f"/{page.name}", "title": page.title, "feature": page.feature, "blurb": page.blurb}


async def home(request: Request) -> Response:
    """What the signed-in customer holds, and which pages that opens."""
    await request.state.entitlements.load()  # no rule gates "/": load before reading
    return TEMPLATES.TemplateResponse(request, "home.html", _context(request))


@requires("authenticated", redirect="signin")  # no customer: to the sign-in page rather than a 401
@requires_feature("seats-feature")
async def seats(request: Request) -> Response:
    """A page for customers holding ``seats-feature``."""
    return TEMPLATES.TemplateResponse(request, "page.html", _context(request, page=PAGES[0]))


@requires("authenticated", redirect="signin")
@requires_feature("analytics")
def analytics(request: Request) -> Response:
    """A page for customers holding ``analytics`` (a sync endpoint: it runs in the thread pool)."""
    return TEMPLATES.TemplateResponse(request, "page.html", _context(request, page=PAGES[1]))


@requires("authenticated", redirect="signin")
async def team(request: Request) -> Response:
    """The team and the seats the customer's plan allows (from its Features' metadata)."""
    seats = await request.state.entitlements.alimit(SEATS)  # an outage: SourceUnavailable, answered 503
    return TEMPLATES.TemplateResponse(request, "team.html", _context(request, team=TEAM, seat_limit=shown(seats)))


@requires("authenticated", redirect="signin")
@requires_limit(ADD_SEAT.name, ADD_SEAT.need)  # 4 seats: more than Starter's 3, within Pro's 25
async def add_seat(request: Request) -> Response:
    """ "Add a seat": one seat more than the team has (the demo stores nothing)."""
    seats = shown(request.state.entitlements.limit(SEATS))  # loaded by requires_limit
    context = _context(request, team=TEAM, seat_limit=seats, added=ADD_SEAT.needed())
    return TEMPLATES.TemplateResponse(request, "team.html", context)


@requires("authenticated", redirect="signin")
async def exports(request: Request) -> Response:
    """How many exports the plan allows this month, how many are used, and a button to run one."""
    return await _exports_page(request)


@requires("authenticated", redirect="signin")
@requires_usage(EXPORTS, limit=EXPORTS)  # one use counted per export let through; 403 past the plan's limit
async def run_export(request: Request) -> Response:
    """ "Export a report": allowed while this month's exports stay within the plan's limit."""
    return await _exports_page(request, exported=True)


async def _exports_page(request: Request, exported: bool = False) -> Response:
    entitlements: Entitlements = await request.state.entitlements.load()
    limit = shown(await entitlements.alimit(EXPORTS))  # an outage: SourceUnavailable, answered 503
    used = await entitlements.resolver.ausage(entitlements.customer or "", EXPORTS)
    context = _context(request, limit=limit, used=used, exported=exported)
    return TEMPLATES.TemplateResponse(request, "exports.html", context)


async def features_json(request: Request) -> Response:
    """The signed-in customer's features as JSON (in an outage the middleware answers 503)."""
    entitlements = await request.state.entitlements.load()
    return JSONResponse({"customer": entitlements.customer, "features": sorted(entitlements.features)})


# -- the demo sign-in and the buttons ------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    # The forms here are urlencoded: parsed without request.form(), which needs python-multipart.
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {name: values[0] for name, values in fields.items()}


async def signin(request: Request) -> Response:
    """Pick a demo customer (or type any customer id); kept in a cookie."""
    await request.state.entitlements.load()
    if request.method == "GET":
        context = _context(request, demo_customers=demo_customers(), next=request.query_params.get("next", ""))
        return TEMPLATES.TemplateResponse(request, "signin.html", context)
    form = await _form(request)
    other = form.get("other", "").strip()
    customer = parse_customer(other) if other else parse_customer(form.get("customer"))
    if customer is None:
        context = _context(request, demo_customers=demo_customers(), next="", error="That is not a customer id.")
        return TEMPLATES.TemplateResponse(request, "signin.html", context, status_code=400)
    response = RedirectResponse(safe_next(form.get("next"), {f"/{page.name}" for page in PAGES}), 303)
    response.set_cookie(COOKIE, customer, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax")
    return response


async def signout(request: Request) -> Response:
    """Forget the demo customer."""
    response = RedirectResponse("/", 303)
    response.delete_cookie(COOKIE)
    return response


async def grant(request: Request) -> Response:
    """Send this app's webhook a signed summary event granting ``feature`` (a page's or a plan), then open its page."""
    entitlements = await request.state.entitlements.load()
    if entitlements.customer is None:
        return RedirectResponse("/signin", 303)
    feature = (await _form(request)).get("feature", "")
    if not grantable(feature):
        return Response("no page or plan needs that feature", 400)
    page = page_needing(feature)
    then = URLS["team"] if page is None else f"/{page.name}"
    env: Environment = request.app.state.env
    if env.uses_stripe:
        # With a Stripe key the upgrade is real: the Customer Portal, on the subscription's plan page.
        back = upgrade.marked(str(request.base_url).rstrip("/") + then)
        try:
            url = await aportal_url(entitlements.resolver, entitlements.customer, back, flow="subscription_update")
        except SourceUnavailable:
            return RedirectResponse(then, 303)  # logged by the source; the page still says why not
        return RedirectResponse(url, 303)
    # In an outage, features raises SourceUnavailable and the middleware answers 503.
    event = testing.summary_event(entitlements.customer, granted(entitlements.features, feature))
    return await _send(request, event, then)


async def reread(request: Request) -> Response:
    """Send a signed ``customer.subscription.updated``: the next check asks the source again."""
    entitlements = await request.state.entitlements.load()
    if entitlements.customer is None:
        return RedirectResponse("/signin", 303)
    return await _send(request, testing.subscription_event(entitlements.customer), "/")


async def _send(request: Request, event: dict[str, Any], then: str) -> Response:
    # Over HTTP to this app's own webhook URL, as Stripe would deliver it; awaited, so the event
    # loop serves that POST meanwhile.
    env: Environment = request.app.state.env
    delivery = await webhooks.adeliver(str(request.url_for("stripe-webhook")), event, env.webhook_secret)
    if delivery.status != 200:
        return TEMPLATES.TemplateResponse(request, "failed.html", _context(request, delivery=delivery), status_code=502)
    return RedirectResponse(then, 303)
