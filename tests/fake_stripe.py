"""A small Stripe API double over real HTTP, for the real ``stripe`` SDK to talk to.

It serves the few endpoints entitlegate uses, with objects shaped as in
``../shared/stripe/entitlements_subset.json`` (Stripe's OpenAPI description): active entitlements
(paged with ``limit``/``starting_after``/``has_more``), features, and Customer Portal sessions.
Errors are Stripe-shaped (``{"error": {...}}``) and can be injected, as can latency.
"""

from __future__ import annotations

import itertools
import json
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


@dataclass
class FakeStripe:
    """The server's state. Tests change it directly; the handler reads it under ``lock``."""

    api_key: str = "sk_test_fake_123"
    livemode: bool = False
    latency: float = 0.0
    customers: dict[str, list[str]] = field(default_factory=dict)
    accounts: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # Connect: acct → customers
    failures: list[int] = field(default_factory=list)  # statuses to answer with, one request each
    always_fail: int | None = None
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    # The account's Features, by lookup_key (see set_feature); a key a customer holds that is not
    # here is served as an active feature without metadata.
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reset(self) -> None:
        with self.lock:
            self.latency = 0.0
            self.customers.clear()
            self.accounts.clear()
            self.failures.clear()
            self.always_fail = None
            self.requests.clear()
            self.catalog.clear()

    def set_customer(self, customer: str, lookup_keys: Iterable[str], *, account: str | None = None) -> None:
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

    def calls(self, path: str = ACTIVE_ENTITLEMENTS) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)

    def count_by_customer(self) -> Counter[str]:
        with self.lock:
            return Counter(r.params.get("customer", "") for r in self.requests if r.path == ACTIVE_ENTITLEMENTS)


def _entitlement(customer: str, index: int, lookup_key: str, livemode: bool) -> dict[str, Any]:
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


# -- the feature catalog: GET /v1/entitlements/features, expand[]=data.feature --------------------


def _catalog(fake: FakeStripe, customers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every Feature of the account, by lookup_key: the ones set, and those customers hold."""
    with fake.lock:
        features = {key: dict(feature, metadata=dict(feature["metadata"])) for key, feature in fake.catalog.items()}
    for keys in customers.values():
        for key in keys:
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
    return [
        dict(item, feature=by_key[item["lookup_key"]] if expand else by_key[item["lookup_key"]]["id"]) for item in items
    ]


def _page(items: list[dict[str, Any]], params: dict[str, str], url: str) -> dict[str, Any]:
    limit = int(params.get("limit", "10"))
    if not 1 <= limit <= 100:
        raise _Answer(400, _error(400, "limit must be between 1 and 100", param="limit"))
    start = 0
    after = params.get("starting_after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise _Answer(400, _error(400, f"No such object: '{after}'", param="starting_after"))
        start = ids.index(after) + 1
    chunk = items[start : start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items), "url": url}


def _error(status: int, message: str | None = None, *, param: str | None = None) -> dict[str, Any]:
    kind, code, default = _ERRORS.get(status, ("api_error", None, "Error"))
    error: dict[str, Any] = {"type": kind, "message": message or default}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


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

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        query = parts.query if method == "GET" else body
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        with fake.lock:
            fake.requests.append(Recorded(method, parts.path, params, dict(self.headers.items())))
            latency = fake.latency
            status = fake.failures.pop(0) if fake.failures else fake.always_fail
        if latency:
            time.sleep(latency)
        try:
            if status is not None:
                raise _Answer(status, _error(status))
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                raise _Answer(401, _error(401))
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
            customer = params.get("customer")
            if not customer:
                raise _Answer(400, _error(400, "Missing required param: customer.", param="customer"))
            if customer not in customers:
                raise _Answer(404, _error(404, f"No such customer: '{customer}'", param="customer"))
            items = [_entitlement(customer, i, key, fake.livemode) for i, key in enumerate(customers[customer])]
            items = _with_features(items, _catalog(fake, customers), expand="data.feature" in _expanded(params))
            return _page(items, params, ACTIVE_ENTITLEMENTS)
        if method == "GET" and path == FEATURES:
            return _page(_listed_features(_catalog(fake, customers), params), params, FEATURES)
        if method == "POST" and path == PORTAL_SESSIONS:
            customer = params.get("customer")
            if customer not in customers:
                raise _Answer(404, _error(404, f"No such customer: '{customer}'", param="customer"))
            number = next(fake._ids)
            return {
                "id": f"bps_test_{number}",
                "object": "billing_portal.session",
                "customer": customer,
                "livemode": fake.livemode,
                "return_url": params.get("return_url"),
                "url": f"https://billing.stripe.test/p/session/test_{number}",
                "created": int(time.time()),
            }
        raise _Answer(404, _error(404, f"Unrecognized request URL ({method}: {path})"))

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_test_{next(self.server.fake._ids)}")
        self.end_headers()
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
