"""``entitlegate webhook setup`` / ``check``: a webhook endpoint with exactly the events entitlegate handles.

The events are :data:`entitlegate.webhooks.HANDLED_EVENTS`. ``check`` calls wrong an endpoint
that lacks one of them (the cache would miss changes) or that Stripe has disabled; events the
handler ignores are reported as extra, which costs deliveries but is not wrong (another part of
the app may share the endpoint).
"""

from __future__ import annotations

import argparse
from typing import Any

import stripe

from entitlegate._cli_context import FINDING, OK, Context, UsageError, Verb, common_options, stripe_failure, table
from entitlegate.webhooks import HANDLED_EVENTS, SUMMARY_UPDATED

__all__ = ["WEBHOOK"]

_PAGE = 100
_MAX_PAGES = 100  # 10,000 endpoints; Stripe allows 16 per account


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="webhook_action", metavar="ACTION", required=True)
    setup = actions.add_parser(
        "setup",
        help="create a webhook endpoint with exactly the events entitlegate handles, and print its secret once",
        description="Create a Stripe webhook endpoint at URL subscribed to exactly the events entitlegate "
        f"handles ({len(HANDLED_EVENTS)}), and print its signing secret once.",
    )
    common_options(setup)
    setup.add_argument("--url", required=True, help="the address of the app's webhook view (https://…)")
    setup.add_argument("--description", default="entitlegate", help="shown in the Dashboard (default: entitlegate)")
    setup.set_defaults(webhook_run=_setup)
    check = actions.add_parser(
        "check",
        help="list the account's webhook endpoints and check the one at URL for missing, disabled or extra events",
        description="List the account's webhook endpoints and check the one at URL (without --url: every "
        f"endpoint that receives {SUMMARY_UPDATED}). Exit 1 when an event is missing or the endpoint "
        "is disabled.",
    )
    common_options(check)
    check.add_argument("--url", help="the endpoint to check (default: those receiving the summary event)")
    check.set_defaults(webhook_run=_check)


def _run(context: Context) -> int:
    status: int = context.args.webhook_run(context)
    return status


def _endpoints(context: Context) -> list[Any]:
    client, options = context.stripe()
    service = client.v1.webhook_endpoints
    params: dict[str, Any] = {"limit": _PAGE}
    found: list[Any] = []
    try:
        for _ in range(_MAX_PAGES):
            page = service.list(params, options)  # type: ignore[arg-type]
            found.extend(page.data)
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
    except stripe.StripeError as error:
        raise stripe_failure("list the webhook endpoints", error) from None
    return found


def _setup(context: Context) -> int:
    url = context.args.url
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"--url must be the http(s):// address of the webhook view, got {url!r}")
    existing = [endpoint for endpoint in _endpoints(context) if endpoint.url == url]
    if existing:
        print(
            f"an endpoint at {url} exists already ({existing[0].id}); a second would deliver every event twice. "
            f"`entitlegate webhook check --url {url}` says whether it is right.",
            file=context.out,
        )
        return FINDING
    client, options = context.stripe()
    params: dict[str, Any] = {
        "url": url,
        "enabled_events": list(HANDLED_EVENTS),
        "description": context.args.description,
    }
    try:
        endpoint = client.v1.webhook_endpoints.create(params, options)  # type: ignore[arg-type]
    except stripe.StripeError as error:
        raise stripe_failure("create the webhook endpoint", error) from None
    print(f"created {endpoint.id} at {url}, sending {len(HANDLED_EVENTS)} events:", file=context.out)
    for event in HANDLED_EVENTS:
        print(f"  {event}", file=context.out)
    print(
        f"\nIts signing secret, shown this once (Stripe will not show it again through the API):\n\n"
        f"  {endpoint.secret}\n\n"
        "Set it where the app reads it, and keep it out of version control:\n"
        '  Django: ENTITLEGATE = {"WEBHOOK_SECRET": ...}   Flask: ENTITLEGATE_WEBHOOK_SECRET\n'
        "  code: WebhookHandler(resolver, secret)",
        file=context.out,
    )
    return OK


def _check(context: Context) -> int:
    endpoints = _endpoints(context)
    rows = [
        [endpoint.id, endpoint.url, endpoint.status, _events_shown(list(endpoint.enabled_events))]
        for endpoint in endpoints
    ]
    if rows:
        table(["ID", "URL", "STATUS", "EVENTS"], rows, context.out)
    else:
        print("the account has no webhook endpoint", file=context.out)
    url = context.args.url
    if url is not None:
        chosen = [endpoint for endpoint in endpoints if endpoint.url == url]
        if not chosen:
            print(f"\nno endpoint at {url}: `entitlegate webhook setup --url {url}` creates one", file=context.out)
            return FINDING
    else:
        # entitlegate's endpoint is the one sent the summary event: an endpoint of another part
        # of the app may well take a subscription event or two for itself.
        chosen = [endpoint for endpoint in endpoints if _receives_summary(list(endpoint.enabled_events))]
        if not chosen:
            print(
                f"\nno endpoint receives {SUMMARY_UPDATED}: `entitlegate webhook setup --url URL` creates one "
                "(or name yours with --url)",
                file=context.out,
            )
            return FINDING
    wrong = False
    for endpoint in chosen:
        wrong |= _report(context, endpoint)
    return FINDING if wrong else OK


def _report(context: Context, endpoint: Any) -> bool:
    """Print what is wrong with one endpoint; True if anything is."""
    enabled = list(endpoint.enabled_events)
    missing = [] if "*" in enabled else [event for event in HANDLED_EVENTS if event not in enabled]
    extra = ["*"] if "*" in enabled else sorted(event for event in enabled if event not in HANDLED_EVENTS)
    disabled = endpoint.status != "enabled"
    print(f"\n{endpoint.id} at {endpoint.url}:", file=context.out)
    if disabled:
        print(
            f"  disabled: Stripe sends it nothing (status {endpoint.status!r}); enable it in the Dashboard",
            file=context.out,
        )
    for event in missing:
        print(f"  missing: {event}", file=context.out)
    if missing:
        print("  (the cache misses those changes until its ttl runs out)", file=context.out)
    for event in extra:
        print(f"  extra: {event} (entitlegate ignores it)", file=context.out)
    if not (disabled or missing):
        print(f"  ok: enabled, with all {len(HANDLED_EVENTS)} events entitlegate handles", file=context.out)
    return disabled or bool(missing)


def _receives_summary(enabled: list[str]) -> bool:
    return "*" in enabled or SUMMARY_UPDATED in enabled


def _events_shown(enabled: list[str]) -> str:
    if "*" in enabled:
        return "* (all)"
    handled = sum(1 for event in HANDLED_EVENTS if event in enabled)
    summary = "" if SUMMARY_UPDATED in enabled else ", no summary event"
    return f"{len(enabled)} ({handled} of entitlegate's {len(HANDLED_EVENTS)}{summary})"


WEBHOOK = Verb(
    "webhook",
    "set up or check the Stripe webhook endpoint entitlegate needs (setup | check)",
    _arguments,
    _run,
    nested=True,
)
