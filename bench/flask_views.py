"""Section 2, Flask: a trivial view through the test client, gated by ``@requires_feature`` and not."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, request

from bench._timing import Row
from bench.overhead import CUSTOMER, FEATURE, FEATURES, overhead_rows
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_flask import Entitlements, requires_feature

WHY = (
    "the gate resolves Flask's context-locals (`g` for the per-request memo, `current_app` for the "
    "resolver) and calls the customer loader, which reads `request.headers` through another proxy; "
    "each proxy pass costs about a microsecond here, which on a trivial request is more than 2 %"
)


def make_app() -> Flask:
    """One app, three routes to one view: ``/plain`` and ``/other`` as is, ``/gated`` behind the decorator."""
    app = Flask("bench")
    app.config["ENTITLEGATE_WEBHOOK_URL"] = None  # no webhook: only the gate is measured
    resolver = Resolver(StaticSource({CUSTOMER: FEATURES}), MemoryCache())
    entitlements = Entitlements(app, resolver=resolver)

    @entitlements.customer_loader
    def customer() -> str | None:
        return request.headers.get("X-Customer")

    def view() -> str:
        return "ok"

    app.add_url_rule("/plain", "plain", view)
    app.add_url_rule("/other", "other", view)
    app.add_url_rule("/gated", "gated", requires_feature(FEATURE)(view))
    return app


def run(*, quick: bool = False) -> list[Row]:
    """µs per request through Flask's test client, ungated and gated, and the overhead."""
    client = make_app().test_client()
    headers = {"X-Customer": CUSTOMER}

    def requests(path: str) -> Callable[[int], object]:
        response = client.get(path, headers=headers)
        if response.status_code != 200 or response.data != b"ok":
            raise RuntimeError(f"Flask {path} answered {response.status_code}, not 200 ok: the bench is broken")

        def batch(count: int) -> None:
            for _ in range(count):
                client.get(path, headers=headers)

        return batch

    return overhead_rows(
        "Flask test client",
        requests("/plain"),
        requests("/gated"),
        number=5 if quick else 20,
        rounds=4 if quick else 1_500,
        goal=True,
        control=requests("/other"),
        why=WHY,
    )
