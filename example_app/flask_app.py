"""The Flask example app: ``flask --app example_app.flask_app run`` (``make run-flask``).

The ``entitlegate_flask`` extension as the README's Flask guide sets it up: a customer loader
(here, the demo sign-in cookie), ``@requires_feature`` on two pages, a team page that shows the
seat limit and gates "add a seat" on it, a denied handler that offers the upgrade, the Jinja
globals ``has_feature`` and ``features`` in the templates, and the webhook blueprint at
``/stripe/webhook``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from entitlegate import Resolver, SourceUnavailable, testing, upgrade
from entitlegate.gate import Outcome, denial_shortfall, denial_usage, portal_url
from entitlegate_flask import Entitlements, requires_feature, requires_usage
from entitlegate_flask.current import request_entitlements
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

demo = Blueprint("demo", __name__)


def create_app() -> Flask:
    """The app, configured from the environment (see ``example_app.environment``).

    Raises ``ValueError`` naming the setting when one is wrong.
    """
    env = environment.from_env()
    app = Flask(__name__)
    app.config.update(
        ENTITLEGATE_WEBHOOK_SECRET=env.webhook_secret,
        ENTITLEGATE_LOGIN_VIEW="demo.signin",  # where a request without a customer goes
    )
    if env.uses_stripe:
        # The usual set-up: the extension builds a StripeSource and the cache from the config.
        app.config.update(
            ENTITLEGATE_STRIPE_API_KEY=env.stripe_api_key,
            ENTITLEGATE_STRIPE_API_BASE=env.stripe_api_base,
            ENTITLEGATE_CACHE=env.cache_url or "memory",
        )
        entitlements = Entitlements()
    else:
        # The embedded demo: a ready Resolver on the fixture takes the place of the Stripe keys.
        entitlements = Entitlements(resolver=env.build_resolver())
    entitlements.customer_loader(demo_customer)
    entitlements.denied_handler(upgrade_offer)
    entitlements.init_app(app)
    app.extensions["example_app"] = env
    app.register_blueprint(demo)
    return app


def demo_customer() -> str | None:
    """The customer loader: the Stripe customer id the visitor signed in as, or None."""
    return parse_customer(request.cookies.get(COOKIE))


def upgrade_offer(feature: str) -> ResponseReturnValue:
    """The denied handler: a 403 page that names the feature (or the limit) and offers the upgrade webhook."""
    shortfall = denial_shortfall(feature)  # set when the denial is a limit's: "seats", 3 allowed, 4 needed
    upgrade = upgrade_for(feature, None if shortfall is None else shortfall.need)
    usage = denial_usage(feature)  # set when the denial is a meter's: "exports", 3 used of 3
    return render_template("upgrade.html", feature=feature, shortfall=shortfall, usage=usage, upgrade=upgrade), 403


# -- pages ----------------------------------------------------------------------------------------


@demo.app_context_processor
def _layout() -> dict[str, Any]:
    env: Environment = current_app.extensions["example_app"]
    return {
        "framework": "Flask",
        "env_line": env.describe(),
        "customer": demo_customer(),
        "pages": [_page_link(page) for page in PAGES],
        "urls": {
            "home": url_for("demo.home"),
            "signin": url_for("demo.signin"),
            "signout": url_for("demo.signout"),
            "grant": url_for("demo.grant"),
            "reread": url_for("demo.reread"),
            "api": url_for("demo.features_json"),
            "team": url_for("demo.team"),
            "add_seat": url_for("demo.add_seat"),
            "run_export": url_for("demo.run_export"),
            "webhook": url_for("entitlegate.webhook"),
        },
    }


def _page_link(page: Page) -> dict[str, str]:
    return {"path": url_for(f"demo.{page.name}"), "title": page.title, "feature": page.feature, "blurb": page.blurb}


@demo.get("/")
def home() -> ResponseReturnValue:
    """What the signed-in customer holds, and which pages that opens."""
    return render_template("home.html")


@demo.get("/seats")
@requires_feature("seats-feature")
def seats() -> ResponseReturnValue:
    """A page for customers holding ``seats-feature`` (a sync view)."""
    return render_template("page.html", page=PAGES[0])


@demo.get("/analytics")
@requires_feature("analytics")
async def analytics() -> ResponseReturnValue:
    """A page for customers holding ``analytics`` (an async view: gated the same way)."""
    return render_template("page.html", page=PAGES[1])


@demo.get("/team")
def team() -> ResponseReturnValue:
    """The team and the seats the customer's plan allows (from its Features' metadata)."""
    if demo_customer() is None:
        return redirect(url_for("demo.signin"), 303)
    seats = request_entitlements().limit(SEATS)  # an outage: SourceUnavailable, answered 503
    return render_template("team.html", team=TEAM, seat_limit=shown(seats))


@demo.post("/team/seats")
def add_seat() -> ResponseReturnValue:
    """ "Add a seat": one seat more than the team has, within the plan's limit (the demo stores nothing)."""
    if demo_customer() is None:
        return redirect(url_for("demo.signin"), 303)
    # Judged here rather than with @requires_limit, so that a visitor who is not signed in to the
    # demo goes to its sign-in page; a denial takes the denied handler's path all the same.
    entitlements = request_entitlements()
    verdict = entitlements.check_limit(ADD_SEAT, ADD_SEAT.needed())
    if verdict.error is not None and verdict.outcome is not Outcome.ALLOWED:
        raise verdict.error  # the outage, answered 503: no upsell when Stripe cannot say
    if not verdict.allowed:
        return upgrade_offer(verdict.feature or SEATS)
    seats = shown(entitlements.limit(SEATS))
    return render_template("team.html", team=TEAM, seat_limit=seats, added=ADD_SEAT.needed())


@demo.get("/exports")
def exports() -> ResponseReturnValue:
    """How many exports the plan allows this month, how many are used, and a button to run one."""
    customer = demo_customer()
    if customer is None:
        return redirect(url_for("demo.signin"), 303)
    return _exports_page(customer)


@demo.post("/exports/run")
@requires_usage(EXPORTS, limit=EXPORTS)  # one use counted per export let through; 403 past the plan's limit
def run_export() -> ResponseReturnValue:
    """ "Export a report": allowed while this month's exports stay within the plan's limit."""
    return _exports_page(demo_customer() or "", exported=True)


def _exports_page(customer: str, exported: bool = False) -> ResponseReturnValue:
    limit = shown(request_entitlements().limit(EXPORTS))  # an outage: SourceUnavailable, answered 503
    used = _resolver().usage(customer, EXPORTS)
    return render_template("exports.html", limit=limit, used=used, exported=exported)


@demo.get("/api/features")
def features_json() -> ResponseReturnValue:
    """The signed-in customer's features as JSON (503 when Stripe cannot say)."""
    customer = demo_customer()
    # In an outage this raises SourceUnavailable, which the extension answers 503.
    features = _resolver().features(customer) if customer else frozenset()
    return {"customer": customer, "features": sorted(features)}


# -- the demo sign-in and the buttons ------------------------------------------------------------


@demo.route("/signin", methods=["GET", "POST"])
def signin() -> ResponseReturnValue:
    """Pick a demo customer (or type any customer id); kept in a cookie."""
    if request.method == "GET":
        return render_template("signin.html", demo_customers=demo_customers(), next=request.args.get("next", ""))
    other = request.form.get("other", "").strip()
    customer = parse_customer(other) if other else parse_customer(request.form.get("customer"))
    if customer is None:
        error = "That is not a Stripe customer id (cus_…)."
        return render_template("signin.html", demo_customers=demo_customers(), next="", error=error), 400
    paths = {url_for(f"demo.{page.name}") for page in PAGES}
    response = redirect(safe_next(request.form.get("next"), paths), 303)
    response.set_cookie(COOKIE, customer, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax")
    return response


@demo.post("/signout")
def signout() -> ResponseReturnValue:
    """Forget the demo customer."""
    response = redirect(url_for("demo.home"), 303)
    response.delete_cookie(COOKIE)
    return response


@demo.post("/upgrade")
def grant() -> ResponseReturnValue:
    """Send this app's webhook a signed summary event granting ``feature`` (a page's or a plan), then open its page."""
    customer = demo_customer()
    if customer is None:
        return redirect(url_for("demo.signin"), 303)
    feature = request.form.get("feature", "")
    if not grantable(feature):
        abort(400)
    page = page_needing(feature)
    then = url_for("demo.team" if page is None else f"demo.{page.name}")
    env: Environment = current_app.extensions["example_app"]
    if env.uses_stripe:
        # With a Stripe key the upgrade is real: the Customer Portal, on the subscription's plan page.
        back = upgrade.marked(request.host_url.rstrip("/") + then)
        try:
            return redirect(portal_url(_resolver(), customer, back, flow="subscription_update"), 303)
        except SourceUnavailable:
            return redirect(then, 303)  # logged by the source; the page still says why not
    held = _resolver().features(customer)  # an outage: SourceUnavailable, answered 503
    event = testing.summary_event(customer, granted(held, feature))
    return _send(event, then)


@demo.post("/reread")
def reread() -> ResponseReturnValue:
    """Send a signed ``customer.subscription.updated``: the next check asks the source again."""
    customer = demo_customer()
    if customer is None:
        return redirect(url_for("demo.signin"), 303)
    return _send(testing.subscription_event(customer), url_for("demo.home"))


def _send(event: dict[str, Any], then: str) -> ResponseReturnValue:
    # Over HTTP to this app's own webhook URL, as Stripe would deliver it. The dev server serves
    # each request in its own thread, so it can answer this one while the button's request waits.
    env: Environment = current_app.extensions["example_app"]
    delivery = webhooks.deliver(url_for("entitlegate.webhook", _external=True), event, env.webhook_secret)
    if delivery.status != 200:
        return render_template("failed.html", delivery=delivery), 502
    return redirect(then, 303)


def _resolver() -> Resolver:
    resolver: Resolver = current_app.extensions["entitlegate"].resolver
    return resolver
