"""``make demo``: in each framework, a Starter customer is denied a page and a fourth seat, Stripe's
webhook upgrades them to Pro, and both open.

``python -m example_app.demo`` starts the Django, Flask and Starlette example apps on 127.0.0.1
(free ports, embedded fixture, in-memory cache: no Stripe account), then for each app, as the
demo customer ``cus_demo_starter`` (who holds ``seats-feature`` and ``starter-plan``, 3 seats):

1. asks for ``/analytics``: 403, the customer lacks ``analytics``;
2. sends the app's webhook a summary event signed with the wrong secret: 400, nothing changes;
3. opens the team page, which shows the plan's 3 seats, and adds a seat (the fourth): 403, the
   limit denial; then runs four exports on the exports page, whose ``requires_usage`` allows
   Starter 3 a month: 200, 200, 200, 403, the usage denial;
4. sends the webhook a correctly signed ``entitlements.active_entitlement_summary.updated`` event
   upgrading the customer to Pro (``analytics``, ``pro-plan``), as Stripe would: 200, ``applied``;
5. asks for ``/analytics`` again: 200; the team page shows Pro's 25 seats and adding one: 200.

It prints a table of what happened, stops every server it started (on failure and Ctrl-C too),
and exits 0 only when every step did what it should.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import httpx

from entitlegate import testing
from example_app import webhooks
from example_app.catalog import CUSTOMERS_FILE, demo_customers, granted
from example_app.environment import DEMO_WEBHOOK_SECRET
from example_app.servers import APPS, Server, ServerFailed, serving
from example_app.signin import COOKIE

__all__ = ["Walk", "main", "table", "walk"]

CUSTOMER = "cus_demo_starter"
FEATURE = "analytics"
PAGE = "analytics"
UPGRADE = "pro-plan"  # the plan the webhook moves the customer to: 25 seats
_SEAT_LIMIT = re.compile(r'data-seat-limit="([^"]*)"')
_CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# The walkthrough is the embedded demo: these would point the apps at a Stripe account or Redis.
_NOT_PASSED_ON = ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "CACHE_URL")
_START_TIMEOUT = 40.0


@dataclass
class Walk:
    """What one app did at each step, and whether each was what it should be."""

    server: Server
    page: str = ""
    before: str = "-"
    forged: str = "-"
    seats_before: str = "-"
    exports: str = "-"
    webhook: str = "-"
    after: str = "-"
    seats_after: str = "-"
    features_after: str = "-"
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every step did what it should."""
        return not self.failures

    def expect(self, step: str, seen: str, wanted: str) -> None:
        """Record whether ``seen`` is ``wanted``; print the step either way."""
        if seen == wanted:
            print(f"  ok   {step}: {seen}")
        else:
            print(f"  BAD  {step}: {seen} (expected {wanted})")
            self.failures.append(f"{step}: got {seen}, expected {wanted}")


def walk(server: Server) -> Walk:
    """Deny, webhook, allow: the steps against one running app."""
    app = server.app
    result = Walk(server, page=app.path(PAGE))
    webhook_url = server.url + app.path("stripe/webhook")
    held = set(demo_customers()[CUSTOMER])
    print(f"\n{app.label} ({app.server}) at {server.url}, as {CUSTOMER} holding {', '.join(sorted(held))}")
    try:
        _steps(result, held, webhook_url)
    except httpx.HTTPError as error:
        print(f"  BAD {app.label} stopped answering: {error!r}{server.log_tail()}")
        result.failures.append(f"stopped answering ({error!r})")
    return result


def _steps(result: Walk, held: set[str], webhook_url: str) -> None:
    server, app = result.server, result.server.app
    with httpx.Client(base_url=server.url, cookies={COOKIE: CUSTOMER}, timeout=10.0) as client:
        result.before = str(client.get(result.page).status_code)
        result.expect(f"GET  {result.page}", result.before, "403")

        webhook = f"POST {app.path('stripe/webhook')} summary event granting {FEATURE}"
        forged = testing.summary_event(CUSTOMER, sorted(held | {FEATURE}))
        result.forged = str(webhooks.deliver(webhook_url, forged, "whsec_not_the_endpoints_secret").status)
        result.expect(f"{webhook}, signed with a wrong secret", result.forged, "400")

        result.seats_before = _add_a_seat(result, client)
        result.expect(f"POST {app.path('team/seats')} (a fourth seat)", result.seats_before, "3 seats: 403")

        result.exports = _export_four_times(result, client)
        result.expect(f"POST {app.path('exports/run')} four times (3 a month)", result.exports, "200 200 200 403")

        upgraded = granted(held | {FEATURE}, UPGRADE)
        event = testing.summary_event(CUSTOMER, upgraded)
        upgrade = f"POST {app.path('stripe/webhook')} summary event upgrading to {UPGRADE} with {FEATURE}"
        result.webhook = str(webhooks.deliver(webhook_url, event, DEMO_WEBHOOK_SECRET))
        result.expect(f"{upgrade}, signed as Stripe signs it", result.webhook, "200 applied")

        result.after = str(client.get(result.page).status_code)
        result.expect(f"GET  {result.page}", result.after, "200")

        result.seats_after = _add_a_seat(result, client)
        result.expect(f"POST {app.path('team/seats')} (a fourth seat)", result.seats_after, "25 seats: 200")

        answer = client.get(app.path("api/features"))
        features = answer.json().get("features", []) if answer.status_code == 200 else []
        result.features_after = ", ".join(features) or "none"
        result.expect(f"GET  {app.path('api/features')}", result.features_after, ", ".join(upgraded))


def _add_a_seat(result: Walk, client: httpx.Client) -> str:
    # The team page shows the plan's seat limit (and, in Django, the form's CSRF token); its
    # "add a seat" button posts for one seat more than the team has.
    app = result.server.app
    page = client.get(app.path("team"))
    limit = _SEAT_LIMIT.search(page.text)
    token = _CSRF_TOKEN.search(page.text)
    form = {"csrfmiddlewaretoken": token[1]} if token else {}
    added = client.post(app.path("team/seats"), data=form)
    return f"{limit[1] if limit else '?'} seats: {added.status_code}"


def _export_four_times(result: Walk, client: httpx.Client) -> str:
    # Each export the gate lets through counts one use of the "exports" meter: Starter allows 3.
    app = result.server.app
    statuses = []
    for _ in range(4):
        token = _CSRF_TOKEN.search(client.get(app.path("exports")).text)
        form = {"csrfmiddlewaretoken": token[1]} if token else {}
        statuses.append(str(client.post(app.path("exports/run"), data=form).status_code))
    return " ".join(statuses)


def table(walks: list[Walk]) -> str:
    """The compact summary: one row per framework."""
    header = (
        *("framework", "server", "page", "before", "forged webhook", "add a seat"),
        *("upgrade webhook", "after", "add a seat", "features now"),
    )
    rows = [header] + [
        (
            *(w.server.app.label, w.server.app.server, w.page, w.before, w.forged, w.seats_before),
            *(w.webhook, w.after, w.seats_after, w.features_after),
        )
        for w in walks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _stop(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a CI timeout, `kill`): unwind like Ctrl-C does, so every server is stopped.
    raise SystemExit(128 + signum)


def main() -> int:
    """Run the walkthrough; 0 when every step in every framework did what it should."""
    signal.signal(signal.SIGTERM, _stop)
    env = {name: value for name, value in os.environ.items() if name not in _NOT_PASSED_ON}
    ignored = [name for name in _NOT_PASSED_ON if os.environ.get(name)]
    print(
        f"entitlegate demo: three example apps, the customers in example_app/{CUSTOMERS_FILE.name}, no Stripe account"
    )
    if ignored:
        print(f"(not passed on to the apps: {', '.join(ignored)}; `make run-django` and friends use them)")
    started = time.monotonic()
    try:
        with serving(APPS, env, timeout=_START_TIMEOUT) as servers:
            print(f"servers ready in {time.monotonic() - started:.1f} s")
            walks = [walk(server) for server in servers]
    except ServerFailed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: every server stopped", file=sys.stderr)
        return 130
    print("\n" + table(walks) + "\n")
    failed = [w for w in walks if not w.ok]
    if failed:
        for w in failed:
            print(f"FAILED in {w.server.app.label}: {'; '.join(w.failures)}", file=sys.stderr)
        return 1
    print(
        f"ok: all {len(walks)} apps denied {CUSTOMER} the {PAGE} page and a fourth seat (Starter: 3), then let "
        f"them in once a signed webhook upgraded them to {UPGRADE} (25 seats)\n"
        f"({time.monotonic() - started:.1f} s; every server stopped)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
