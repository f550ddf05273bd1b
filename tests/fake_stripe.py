"""A small Stripe API double over real HTTP, for the real ``stripe`` SDK to talk to.

It serves the few endpoints entitlegate uses, with objects shaped as in
``../shared/stripe/entitlements_subset.json`` (Stripe's OpenAPI description): active entitlements
(paged with ``limit``/``starting_after``/``has_more``), features, and Customer Portal sessions.
Errors are Stripe-shaped (``{"error": {...}}``) and can be injected, as can faults: latency, a
hang, an answer that trickles in, a list that never ends, an error on one page. Parameters follow
the spec's (unknown ones are refused, as Stripe does); each behaviour names the part it follows.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIVE_ENTITLEMENTS = "/v1/entitlements/active_entitlements"
FEATURES = "/v1/entitlements/features"
PORTAL_SESSIONS = "/v1/billing_portal/sessions"
WEBHOOK_ENDPOINTS = "/v1/webhook_endpoints"
CUSTOMERS = "/v1/customers"
SUBSCRIPTIONS = "/v1/subscriptions"
METERS = "/v1/billing/meters"
METER_EVENTS = "/v1/billing/meter_events"

_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request"),
    401: ("invalid_request_error", None, "Invalid API Key provided: sk_test_****"),
    403: ("invalid_request_error", "secret_key_required", "The provided key does not have the required permissions"),
    404: ("invalid_request_error", "resource_missing", "No such customer"),
    429: ("invalid_request_error", "rate_limit", "Too many requests hit the API too quickly."),
    500: ("api_error", None, "Something went wrong on Stripe's end."),
    503: ("api_error", None, "Stripe is temporarily unavailable."),
}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    port: int = 0  # the client's port: one per connection


@dataclass
class FakeStripe:
    """The server's state. Tests change it directly; the handler reads it under ``lock``."""

    api_key: str = "sk_test_fake_123"
    livemode: bool = False
    latency: float = 0.0
    customers: dict[str, list[Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # Connect: acct → customers
    failures: list[int] = field(default_factory=list)  # statuses to answer with, one request each
    always_fail: int | None = None
    page_failures: dict[int, int] = field(default_factory=dict)  # page number (1-based) → status
    endless: bool = False  # every page of active entitlements says has_more, with the same cursor
    trickle: float = 0.0  # seconds between two bytes of an answer's body
    hanging: threading.Event = field(default_factory=threading.Event)  # set: answer nothing until cleared
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _released: threading.Event = field(default_factory=threading.Event)
    # The account's Features, by lookup_key (see set_feature); a key a customer holds that is not
    # here is served as an active feature without metadata.
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Webhook endpoints by id, in creation order (see add_webhook_endpoint).
    webhook_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The upgrade flow (see the block "Customer Portal sessions and subscriptions" below).
    subscriptions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # customer → subscriptions
    portal_configured: bool = True  # False: Stripe's answer for a portal never saved in this mode
    # Billing Meters (see the block "Billing Meters" below): meters by id, the events taken (in
    # order, de-duplicated), and how long an event takes to show in the summaries.
    meters: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: list[dict[str, Any]] = field(default_factory=list)
    # identifier → when its event was taken: the 24 h de-duplication looks one up, not every event
    # (a scan per post made a 10,000-event run quadratic, and held the lock while it scanned).
    meter_event_taken: dict[str, int] = field(default_factory=dict)
    summary_lag: float = 0.0
    # path prefix → fraction of its requests answered 500, drawn from `rng` (seeded: repeatable).
    fail_rate: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(14))

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.customers.clear()
            self.accounts.clear()
            self.failures.clear()
            self.always_fail = None
            self.page_failures.clear()
            self.endless = False
            self.trickle = 0.0
            self.requests.clear()
            self.catalog.clear()
            self.webhook_endpoints.clear()
            self.subscriptions.clear()
            self.portal_configured = True
            self.meters.clear()
            self.meter_events.clear()
            self.meter_event_taken.clear()
            self.summary_lag = 0.0
            self.fail_rate.clear()
            self.rng.seed(14)
        self.release()

    def hang(self) -> None:
        """Accept requests and answer none of them until :meth:`release`."""
        self._released.clear()
        self.hanging.set()

    def release(self) -> None:
        self.hanging.clear()
        self._released.set()

    def set_customer(self, customer: str, lookup_keys: Iterable[Any], *, account: str | None = None) -> None:
        """Give ``customer`` these active entitlements (a non-string makes a malformed one)."""
        with self.lock:
            target = self.customers if account is None else self.accounts.setdefault(account, {})
            target[customer] = list(lookup_keys)

    def set_feature(
        self,
        lookup_key: str,
        metadata: dict[str, str] | None = None,
        *,
        active: bool = True,
        name: str | None = None,
        feature_id: str | None = None,
    ) -> dict[str, Any]:
        """Create or replace the Feature ``lookup_key`` (as ``POST /v1/entitlements/features`` would)."""
        feature = {
            **_feature(lookup_key, self.livemode),
            "active": active,
            "metadata": dict(metadata or {}),
            **({"name": name} if name is not None else {}),
            **({"id": feature_id} if feature_id is not None else {}),
        }
        with self.lock:
            self.catalog[lookup_key] = feature
        return feature

    def add_webhook_endpoint(
        self, url: str, enabled_events: Iterable[str], *, status: str = "enabled"
    ) -> dict[str, Any]:
        """Create a webhook endpoint as ``POST /v1/webhook_endpoints`` would (``status``: enabled or disabled)."""
        with self.lock:
            endpoint = _webhook_endpoint(next(self._ids), url, list(enabled_events), self.livemode)
            endpoint["status"] = status
            self.webhook_endpoints[endpoint["id"]] = endpoint
        return dict(endpoint)

    def set_subscription(
        self, customer: str, subscription: str, *, status: str = "active", period: tuple[int, int] | None = None
    ) -> None:
        """Give ``customer`` the subscription ``subscription`` in ``status`` (as Stripe's list shows it).

        ``period`` (unix start, end) is its item's current_period_start/_end: in current API versions
        the subscription_item schema carries them, not the subscription.
        """
        items = (
            []
            if period is None
            else [
                {
                    "id": f"si_test_{subscription}",
                    "object": "subscription_item",
                    "current_period_start": period[0],
                    "current_period_end": period[1],
                }
            ]
        )
        with self.lock:
            self.subscriptions.setdefault(customer, []).append(
                {
                    "id": subscription,
                    "object": "subscription",
                    "customer": customer,
                    "items": {"object": "list", "data": items, "has_more": False, "url": "/v1/subscription_items"},
                    "livemode": self.livemode,
                    "status": status,
                }
            )

    def add_meter(self, event_name: str, *, display_name: str | None = None) -> dict[str, Any]:
        """Create an active sum meter on ``event_name``, as ``POST /v1/billing/meters`` would."""
        with self.lock:
            meter = _meter(next(self._ids), event_name, display_name, self.livemode)
            self.meters[meter["id"]] = meter
        return dict(meter)

    def identifiers(self, event_name: str | None = None) -> set[str]:
        """The distinct identifiers of the meter events taken (of ``event_name``, or all)."""
        with self.lock:
            return {e["identifier"] for e in self.meter_events if event_name in (None, e["event_name"])}

    def calls(self, path: str = ACTIVE_ENTITLEMENTS) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)

    def count_by_customer(self) -> Counter[str]:
        with self.lock:
            return Counter(r.params.get("customer", "") for r in self.requests if r.path == ACTIVE_ENTITLEMENTS)


def _entitlement(customer: str, index: int, lookup_key: Any, livemode: bool) -> dict[str, Any]:
    return {
        "id": f"ent_test_{customer}_{index:04d}",
        "object": "entitlements.active_entitlement",
        "feature": f"feat_test_{lookup_key}",
        "livemode": livemode,
        "lookup_key": lookup_key,
    }


def _feature(lookup_key: str, livemode: bool) -> dict[str, Any]:
    return {
        "id": f"feat_test_{lookup_key}",
        "object": "entitlements.feature",
        "active": True,
        "livemode": livemode,
        "lookup_key": lookup_key,
        "metadata": {},
        "name": lookup_key.replace("-", " ").title(),
    }


# The query parameters each list accepts (the spec's `parameters` of the GET operation); Stripe
# refuses any other with a 400 naming it. `expand[]` is how the SDK encodes the `expand` array.
_LIST_PARAMS = {"ending_before", "expand[]", "limit", "starting_after"}
ACTIVE_ENTITLEMENTS_PARAMS = _LIST_PARAMS | {"customer"}
FEATURES_PARAMS = _LIST_PARAMS | {"archived", "lookup_key"}
# The form fields of POST /v1/billing_portal/sessions (its requestBody schema).
PORTAL_SESSION_PARAMS = {
    "configuration",
    "customer",
    "customer_account",
    "expand[]",
    "flow_data",
    "locale",
    "on_behalf_of",
    "return_url",
}


def _refuse_unknown(params: dict[str, str], known: set[str]) -> None:
    for name in params:
        base = name.split("[", 1)[0]
        if name not in known and base not in {k.split("[", 1)[0] for k in known}:
            raise _Answer(400, _error(400, f"Received unknown parameter: {name}", param=name))


def _page_bounds(items: list[dict[str, Any]], params: dict[str, str]) -> tuple[int, int]:
    """Where the requested page starts and ends: `limit` 1..100 (default 10), one cursor at most."""
    raw = params.get("limit", "10")
    if not raw.lstrip("-").isdigit():
        raise _Answer(400, _error(400, f"Invalid integer: {raw}", param="limit"))
    limit = int(raw)
    if not 1 <= limit <= 100:
        raise _Answer(
            400,
            _error(400, "This value must be greater than or equal to 1 and less than or equal to 100.", param="limit"),
        )
    after, before = params.get("starting_after"), params.get("ending_before")
    if after is not None and before is not None:
        raise _Answer(400, _error(400, "You may only specify one of these parameters: ending_before, starting_after."))
    ids = [item["id"] for item in items]
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None and cursor not in ids:
            raise _Answer(400, _error(400, f"No such object: '{cursor}'", param=name))
    if before is not None:  # the page just before the cursor, still in list order
        end = ids.index(before)
        return max(end - limit, 0), end
    start = 0 if after is None else ids.index(after) + 1
    return start, start + limit


# -- the feature catalog: GET /v1/entitlements/features, expand[]=data.feature --------------------


def _catalog(fake: FakeStripe, customers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every Feature of the account, by lookup_key: the ones set, and those customers hold."""
    with fake.lock:
        features = {key: dict(feature, metadata=dict(feature["metadata"])) for key, feature in fake.catalog.items()}
    for keys in customers.values():
        for key in keys:
            if isinstance(key, str) and key:  # a malformed key (a fault mode) is in no catalog
                features.setdefault(key, _feature(key, fake.livemode))
    return [features[key] for key in sorted(features)]


def _listed_features(features: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
    """The list's filters, as Stripe documents them: archived features only when asked for."""
    archived = params.get("archived", "false")
    if archived not in ("true", "false"):
        raise _Answer(400, _error(400, f"Invalid boolean: {archived}", param="archived"))
    chosen = [feature for feature in features if feature["active"] is (archived == "false")]
    lookup_key = params.get("lookup_key")
    if lookup_key is not None:
        chosen = [feature for feature in chosen if feature["lookup_key"] == lookup_key]
    return chosen


def _expanded(params: dict[str, str]) -> set[str]:
    """The ``expand[]`` paths asked for (the SDK sends ``expand[0]=…``, curl ``expand[]=…``)."""
    return {
        value for key, value in params.items() if key == "expand[]" or (key.startswith("expand[") and key.endswith("]"))
    }


def _with_features(
    items: list[dict[str, Any]], features: list[dict[str, Any]], *, expand: bool
) -> list[dict[str, Any]]:
    """Each entitlement names its Feature by id, or carries the whole object when expanded."""
    by_key = {feature["lookup_key"]: feature for feature in features}
    named = [(item, by_key.get(item["lookup_key"]) if isinstance(item["lookup_key"], str) else None) for item in items]
    return [
        item if feature is None else dict(item, feature=feature if expand else feature["id"]) for item, feature in named
    ]


def _page(items: list[dict[str, Any]], params: dict[str, str], url: str) -> dict[str, Any]:
    start, end = _page_bounds(items, params)
    more = start > 0 if "ending_before" in params else end < len(items)
    return {"object": "list", "data": items[start:end], "has_more": more, "url": url}


# -- webhook endpoints and customers: what `entitlegate webhook` and `warm --all-customers` use ----
#
# POST /v1/webhook_endpoints takes the form fields of its requestBody (url and enabled_events
# required) and answers a webhook_endpoint with its `secret`, which only creation returns; GET
# lists them (without secrets), and GET /v1/customers lists the customers, both paged with
# limit/starting_after/ending_before. Objects carry the schemas' fields (stripe/openapi's
# webhook_endpoint and customer; nullable ones as null).

WEBHOOK_ENDPOINT_CREATE_PARAMS = {
    "api_version",
    "connect",
    "description",
    "enabled_events",
    "expand[]",
    "metadata",
    "url",
}
CUSTOMERS_PARAMS = _LIST_PARAMS | {"created", "email", "test_clock"}


def _webhook_endpoint(number: int, url: str, enabled_events: list[str], livemode: bool) -> dict[str, Any]:
    return {
        "id": f"we_test_{number:06d}",
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": int(time.time()),
        "description": None,
        "enabled_events": enabled_events,
        "livemode": livemode,
        "metadata": {},
        "secret": f"whsec_test_{number:06d}secret",
        "status": "enabled",
        "url": url,
    }


def _customer(customer: str, livemode: bool) -> dict[str, Any]:
    return {
        "id": customer,
        "object": "customer",
        "balance": 0,
        "created": 1_700_000_000,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": None,
        "invoice_prefix": customer[-8:].upper(),
        "livemode": livemode,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _array(params: dict[str, str], name: str) -> list[str] | None:
    """A form-encoded array (``name[0]=…&name[1]=…``, or ``name[]=…``), in index order."""
    indexed = sorted(
        (int(key[len(name) + 1 : -1] or 0), value)
        for key, value in params.items()
        if key.startswith(name + "[") and key.endswith("]")
    )
    return [value for _, value in indexed] if indexed else None


def _serve_account_lists(
    fake: FakeStripe, method: str, path: str, params: dict[str, str], customers: dict[str, list[Any]]
) -> dict[str, Any]:
    if path == CUSTOMERS and method == "GET":
        _refuse_unknown(params, CUSTOMERS_PARAMS)
        # Stripe lists customers newest first.
        return _page([_customer(customer, fake.livemode) for customer in reversed(customers)], params, CUSTOMERS)
    if path == WEBHOOK_ENDPOINTS and method == "GET":
        _refuse_unknown(params, _LIST_PARAMS)
        with fake.lock:
            endpoints = [dict(endpoint, secret=None) for endpoint in reversed(fake.webhook_endpoints.values())]
        return _page(endpoints, params, WEBHOOK_ENDPOINTS)
    if path == WEBHOOK_ENDPOINTS and method == "POST":
        _refuse_unknown(params, WEBHOOK_ENDPOINT_CREATE_PARAMS)
        url, events = params.get("url"), _array(params, "enabled_events")
        if not url:
            raise _Answer(400, _error(400, "Missing required param: url.", param="url"))
        if not events:
            raise _Answer(400, _error(400, "Missing required param: enabled_events.", param="enabled_events"))
        with fake.lock:
            endpoint = _webhook_endpoint(next(fake._ids), url, events, fake.livemode)
            endpoint["description"] = params.get("description")
            endpoint["metadata"] = {
                key[len("metadata[") : -1]: value for key, value in params.items() if key.startswith("metadata[")
            }
            fake.webhook_endpoints[endpoint["id"]] = endpoint
        return dict(endpoint)
    raise _Answer(404, _error(404, f"Unrecognized request URL ({method}: {path})"))


def _error(status: int, message: str | None = None, *, param: str | None = None) -> dict[str, Any]:
    kind, code, default = _ERRORS.get(status, ("api_error", None, "Error"))
    error: dict[str, Any] = {"type": kind, "message": message or default}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


# -- Customer Portal sessions and subscriptions: the upgrade flow ---------------------------------
# POST /v1/billing_portal/sessions and GET /v1/subscriptions, as stripe/openapi's spec3 describes
# them: `customer` required, `flow_data[type]` one of four flows, each flow's own object required
# with it, and the list's `status` filter (default: every status but canceled).

_PORTAL_FLOW_TYPES = (
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
    "subscription_update_confirm",
)
_AFTER_COMPLETION_TYPES = ("hosted_confirmation", "portal_homepage", "redirect")
_SUBSCRIPTION_STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
SUBSCRIPTIONS_PARAMS = _LIST_PARAMS | {
    "automatic_tax",
    "collection_method",
    "created",
    "current_period_end",
    "current_period_start",
    "customer",
    "customer_account",
    "price",
    "status",
    "test_clock",
}
# Stripe's own words for a portal whose settings were never saved in this mode.
PORTAL_NOT_CONFIGURED = (
    "You can't create a portal session in test mode until you save your customer portal settings in test "
    "mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


def _missing(param: str) -> _Answer:
    return _Answer(400, _error(400, f"Missing required param: {param}.", param=param))


def _one_of(param: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        listed = ", ".join(allowed[:-1]) + f", or {allowed[-1]}"
        raise _Answer(400, _error(400, f"Invalid {param}: must be one of {listed}", param=param))


def _portal_flow(fake: FakeStripe, customer: str, params: dict[str, str]) -> dict[str, Any] | None:
    """`flow_data`, validated as Stripe does, as the session's `flow` object (None without one)."""
    if not any(name.startswith("flow_data[") for name in params):
        return None
    kind = params.get("flow_data[type]")
    if kind is None:
        raise _missing("flow_data[type]")
    _one_of("flow_data[type]", kind, _PORTAL_FLOW_TYPES)
    flow: dict[str, Any] = {
        "type": kind,
        "after_completion": {"type": "portal_homepage", "hosted_confirmation": None, "redirect": None},
        "subscription_cancel": None,
        "subscription_update": None,
        "subscription_update_confirm": None,
    }
    if kind in ("subscription_cancel", "subscription_update", "subscription_update_confirm"):
        subscription = params.get(f"flow_data[{kind}][subscription]")
        if subscription is None:
            raise _missing(f"flow_data[{kind}][subscription]")
        with fake.lock:
            owned = {sub["id"] for sub in fake.subscriptions.get(customer, [])}
        if subscription not in owned:
            raise _Answer(
                400, _error(400, f"No such subscription: '{subscription}'", param=f"flow_data[{kind}][subscription]")
            )
        flow[kind] = {"subscription": subscription}
    after = params.get("flow_data[after_completion][type]")
    if after is not None:
        _one_of("flow_data[after_completion][type]", after, _AFTER_COMPLETION_TYPES)
        flow["after_completion"]["type"] = after
        if after == "redirect":
            back = params.get("flow_data[after_completion][redirect][return_url]")
            if back is None:
                raise _missing("flow_data[after_completion][redirect][return_url]")
            flow["after_completion"]["redirect"] = {"return_url": back}
    return flow


def _portal_session(fake: FakeStripe, customers: dict[str, list[Any]], params: dict[str, str]) -> dict[str, Any]:
    _refuse_unknown(params, PORTAL_SESSION_PARAMS)
    customer = params.get("customer")
    if not customer:
        raise _missing("customer")
    if not fake.portal_configured:
        raise _Answer(400, _error(400, PORTAL_NOT_CONFIGURED))
    if customer not in customers:
        raise _Answer(404, _error(404, f"No such customer: '{customer}'", param="customer"))
    flow = _portal_flow(fake, customer, params)
    number = next(fake._ids)
    # billing_portal.session: every field the schema requires (nullable ones as null).
    return {
        "id": f"bps_test_{number}",
        "object": "billing_portal.session",
        "configuration": params.get("configuration", "bpc_test_default"),
        "created": int(time.time()),
        "customer": customer,
        "customer_account": None,
        "flow": flow,
        "livemode": fake.livemode,
        "locale": params.get("locale"),
        "on_behalf_of": None,
        "return_url": params.get("return_url"),
        "url": f"https://billing.stripe.test/p/session/test_{number}",
    }


def _subscriptions(fake: FakeStripe, params: dict[str, str]) -> dict[str, Any]:
    _refuse_unknown(params, SUBSCRIPTIONS_PARAMS)
    status = params.get("status")
    if status is not None:
        _one_of("status", status, _SUBSCRIPTION_STATUSES)
    with fake.lock:
        everyone = [dict(sub) for subs in fake.subscriptions.values() for sub in subs]
    customer = params.get("customer")
    chosen = [sub for sub in everyone if customer is None or sub["customer"] == customer]
    if status is None:
        chosen = [sub for sub in chosen if sub["status"] != "canceled"]
    elif status == "ended":
        chosen = [sub for sub in chosen if sub["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        chosen = [sub for sub in chosen if sub["status"] == status]
    return _page(chosen, params, SUBSCRIPTIONS)


# -- Billing Meters -------------------------------------------------------------------------------
# Follows stripe/openapi's POST /v1/billing/meter_events (event_name and payload required;
# identifier, timestamp optional; the timestamp within the past 35 days or 5 minutes ahead),
# GET /v1/billing/meters (paged, `status` filter) and GET /v1/billing/meters/{id}/event_summaries
# (customer, start_time, end_time required, "Must be aligned with minute boundaries"; end
# exclusive), with objects shaped as the billing.meter, billing.meter_event and
# billing.meter_event_summary schemas. (The spec's text is quoted from stripe-python's generated
# params, which carry it: the mirror's spec3.json was not readable here.)
#
# A duplicate identifier: Stripe "enforces uniqueness within a rolling period of at least 24
# hours"; the fake refuses the second one with a 400 (code `duplicate_meter_event`), which
# StripeSource must count as sent. An event_name no active meter has is a 400 too: in real Stripe
# some of these are only reported later (v1.billing.meter.error_report_triggered); the fake
# answers at once so the refusal path can be tested. NOT verified against live Stripe.

METER_EVENT_PARAMS = {"event_name", "expand[]", "identifier", "payload", "timestamp"}
METERS_PARAMS = _LIST_PARAMS | {"status"}
EVENT_SUMMARIES_PARAMS = _LIST_PARAMS | {"customer", "end_time", "start_time", "value_grouping_window"}
_DEDUPE_SECONDS = 24 * 3600


def _meter(number: int, event_name: str, display_name: str | None, livemode: bool) -> dict[str, Any]:
    now = int(time.time())
    return {
        "id": f"mtr_test_{number:06d}",
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": display_name or event_name,
        "event_name": event_name,
        "event_time_window": None,
        "livemode": livemode,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": "value"},
    }


def _meter_event(fake: FakeStripe, customers: dict[str, list[Any]], params: dict[str, str]) -> dict[str, Any]:
    _refuse_unknown(params, METER_EVENT_PARAMS)
    name = params.get("event_name")
    if not name:
        raise _missing("event_name")
    now = int(time.time())
    with fake.lock:
        meter = next((m for m in fake.meters.values() if m["event_name"] == name and m["status"] == "active"), None)
    if meter is None:
        raise _Answer(400, _error(400, f"No active meter was found for event_name '{name}'.", param="event_name"))
    customer = params.get(f"payload[{meter['customer_mapping']['event_payload_key']}]")
    if not customer:
        raise _missing("payload[stripe_customer_id]")
    if customer not in customers:
        raise _Answer(404, _error(404, f"No such customer: '{customer}'", param="payload[stripe_customer_id]"))
    raw = params.get(f"payload[{meter['value_settings']['event_payload_key']}]", "1")
    if not raw.lstrip("-").isdigit():
        raise _Answer(400, _error(400, f"Invalid value: {raw}", param="payload[value]"))
    stamp = int(params.get("timestamp", now))
    if not now - 35 * 86400 <= stamp <= now + 300:
        raise _Answer(400, _error(400, "timestamp must be within the past 35 days or 5 minutes in the future."))
    identifier = params.get("identifier") or f"gen_{next(fake._ids)}"
    event = {
        "object": "billing.meter_event",
        "created": now,
        "event_name": name,
        "identifier": identifier,
        "livemode": fake.livemode,
        "payload": {"stripe_customer_id": customer, "value": raw},
        "timestamp": stamp,
    }
    with fake.lock:
        taken = fake.meter_event_taken.get(identifier)
        if taken is not None and now - taken < _DEDUPE_SECONDS:
            error = _error(400, f"An event already exists with identifier {identifier}.", param="identifier")
            error["error"]["code"] = "duplicate_meter_event"
            raise _Answer(400, error)
        fake.meter_events.append(event)
        fake.meter_event_taken[identifier] = now
    return dict(event)


def _event_summaries(fake: FakeStripe, meter_id: str, params: dict[str, str]) -> dict[str, Any]:
    _refuse_unknown(params, EVENT_SUMMARIES_PARAMS)
    for name in ("customer", "start_time", "end_time"):
        if not params.get(name):
            raise _missing(name)
    start, end = int(params["start_time"]), int(params["end_time"])
    for name, value in (("start_time", start), ("end_time", end)):
        if value % 60:
            raise _Answer(400, _error(400, f"{name} must be aligned with minute boundaries.", param=name))
    with fake.lock:
        meter = fake.meters.get(meter_id)
        # Events younger than the lag are not aggregated yet (Stripe's summaries trail the events).
        seen = time.time() - fake.summary_lag
        total = sum(
            int(e["payload"]["value"])
            for e in fake.meter_events
            if meter is not None
            and e["event_name"] == meter["event_name"]
            and e["payload"]["stripe_customer_id"] == params["customer"]
            and start <= e["timestamp"] < end
            and e["created"] <= seen
        )
    if meter is None:
        raise _Answer(404, _error(404, f"No such billing.meter: '{meter_id}'", param="id"))
    summary = {
        "id": f"mtrusum_test_{meter_id}_{start}",
        "object": "billing.meter_event_summary",
        "aggregated_value": float(total),
        "end_time": end,
        "livemode": fake.livemode,
        "meter": meter_id,
        "start_time": start,
    }
    return _page([summary], params, f"{METERS}/{meter_id}/event_summaries")


def _serve_meters(
    fake: FakeStripe, method: str, path: str, params: dict[str, str], customers: dict[str, list[Any]]
) -> dict[str, Any]:
    if method == "POST" and path == METER_EVENTS:
        return _meter_event(fake, customers, params)
    if method == "GET" and path == METERS:
        _refuse_unknown(params, METERS_PARAMS)
        with fake.lock:
            meters = [dict(m) for m in fake.meters.values()]
        status = params.get("status")
        return _page([m for m in meters if status in (None, m["status"])], params, METERS)
    parts = path.split("/")
    if method == "GET" and len(parts) == 6 and parts[5] == "event_summaries":
        return _event_summaries(fake, parts[4], params)
    raise _Answer(404, _error(404, f"Unrecognized request URL ({method}: {path})"))


class _Answer(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body back
    # until the client's delayed ACK, ~40 ms per request on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _send_slowly(self, data: bytes, delay: float) -> None:
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(delay)

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        query = parts.query if method == "GET" else body
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        with fake.lock:
            fake.requests.append(
                Recorded(method, parts.path, params, dict(self.headers.items()), self.client_address[1])
            )
            latency = fake.latency
            status = fake.failures.pop(0) if fake.failures else fake.always_fail
            rate = next((r for prefix, r in fake.fail_rate.items() if parts.path.startswith(prefix)), 0.0)
            if status is None and rate and fake.rng.random() < rate:
                status = 500
        if latency:
            time.sleep(latency)
        if fake.hanging.is_set():
            fake._released.wait(60)
        try:
            if status is not None:
                raise _Answer(status, _error(status))
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != fake.api_key:
                # As Stripe words it: the key's prefix and last four characters, the rest starred.
                shown = f"{given[:8]}{'*' * max(len(given) - 12, 0)}{given[-4:]}"
                raise _Answer(401, _error(401, f"Invalid API Key provided: {shown}"))
            answer = self._route(method, parts.path, params)
        except _Answer as error:
            self._send(error.status, error.body)
        else:
            self._send(200, answer)

    def _route(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        fake = self.server.fake
        account = self.headers.get("Stripe-Account")
        with fake.lock:
            customers = fake.customers if account is None else fake.accounts.get(account, {})
            customers = {k: list(v) for k, v in customers.items()}
        if method == "GET" and path == ACTIVE_ENTITLEMENTS:
            return self._active_entitlements(customers, params)
        if method == "GET" and path == FEATURES:
            # GET /v1/entitlements/features: `lookup_key` filters to that one, `archived=true`
            # lists only archived (inactive) features, and `false` (the default) only active ones.
            _refuse_unknown(params, FEATURES_PARAMS)
            return _page(_listed_features(_catalog(fake, customers), params), params, FEATURES)
        if path in (WEBHOOK_ENDPOINTS, CUSTOMERS):
            return _serve_account_lists(fake, method, path, params, customers)
        if method == "POST" and path == PORTAL_SESSIONS:
            return _portal_session(fake, customers, params)
        if method == "GET" and path == SUBSCRIPTIONS:
            return _subscriptions(fake, params)
        if path.startswith(("/v1/billing/meter_events", "/v1/billing/meters")):
            return _serve_meters(fake, method, path, params, customers)
        raise _Answer(404, _error(404, f"Unrecognized request URL ({method}: {path})"))

    def _active_entitlements(self, customers: dict[str, list[Any]], params: dict[str, str]) -> dict[str, Any]:
        """GET /v1/entitlements/active_entitlements: `customer` required, paged, `data.feature` expandable."""
        fake = self.server.fake
        _refuse_unknown(params, ACTIVE_ENTITLEMENTS_PARAMS)
        customer = params.get("customer")
        if not customer:
            raise _Answer(400, _error(400, "Missing required param: customer.", param="customer"))
        if customer not in customers:
            # Stripe's answer for an unknown customer: 404, resource_missing, param "customer".
            raise _Answer(404, _error(404, f"No such customer: '{customer}'", param="customer"))
        items = [_entitlement(customer, i, key, fake.livemode) for i, key in enumerate(customers[customer])]
        items = _with_features(items, _catalog(fake, customers), expand="data.feature" in _expanded(params))
        start, _ = _page_bounds(items, params) if items and not fake.endless else (0, 0)
        number = start // max(int(params.get("limit", "10")), 1) + 1
        with fake.lock:
            failure = fake.page_failures.get(number)
        if failure == 404:  # as Stripe words a cursor that names nothing
            raise _Answer(404, _error(404, "No such entitlement", param="starting_after"))
        if failure is not None:
            raise _Answer(failure, _error(failure))
        if fake.endless:  # a list that never ends: a page of one, with a new cursor, and has_more
            endless = dict(items[0], id=f"ent_test_endless_{next(fake._ids)}")
            return {"object": "list", "data": [endless], "has_more": True, "url": ACTIVE_ENTITLEMENTS}
        return _page(items, params, ACTIVE_ENTITLEMENTS)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_test_{next(self.server.fake._ids)}")
        self.end_headers()
        trickle = self.server.fake.trickle
        if trickle:
            self._send_slowly(data, trickle)
        else:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out (as the timeout tests make it) hangs up before the answer.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start(fake: FakeStripe | None = None) -> tuple[FakeStripe, _Server]:
    """Serve ``fake`` on a free loopback port in a daemon thread; ``server.shutdown()`` stops it."""
    fake = fake or FakeStripe()
    server = _Server(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="fake-stripe", daemon=True).start()
    return fake, server
