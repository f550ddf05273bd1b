"""Section 2, Flask: a trivial view through the test client, gated by ``@requires_feature`` and not."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, request
from werkzeug.test import EnvironBuilder

from bench._timing import Row
from bench.overhead import CUSTOMER, FEATURE, FEATURES, added_cost_rows, overhead_rows
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_flask import Entitlements, requires_feature

HAND_WRITTEN = "a hand-written check (the customer loader, then `has_feature`, in a decorator)"
GOAL_DECORATOR_US = 2.0  # requires_feature adds at most 2 µs to a view call in a request
WHY_DECORATOR = (
    "the gate needs `current_app` (the extension), `request.headers` (the customer) and `g` (the "
    "per-request memo), each a pass through a werkzeug context-local proxy: the proxies row, and the "
    "hand-written check (loader, then `has_feature`), are what Flask charges for that shape of work, "
    "near 2 µs here already; the rest is the gate's own"
)
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

    app.add_url_rule("/plain", "plain", view)
    app.add_url_rule("/other", "other", view)
    app.add_url_rule("/gated", "gated", requires_feature(FEATURE)(view))
    app.add_url_rule("/empty", "empty", empty_decorator(view))
    app.add_url_rule("/proxies", "proxies", proxies_decorator(view))

    def hand_written_gate(func: Callable[[], Any]) -> Callable[[], Any]:
        # The check written by hand, with none of the adapter: the customer loader, then the hit.
        @functools.wraps(func)
        def wrapper() -> Any:
            found = customer()
            if found is None or not resolver.has_feature(found, FEATURE):
                abort(403)
            return func()

        return wrapper

    app.add_url_rule("/hand", "hand", hand_written_gate(view))
    return app


def view() -> str:
    """The trivial view every URL serves."""
    return "ok"


def empty_decorator(func: Callable[[], Any]) -> Callable[[], Any]:
    """A decorator that does nothing but wrap: the floor any view decorator costs."""

    @functools.wraps(func)
    def wrapper() -> Any:
        return func()

    return wrapper


def proxies_decorator(func: Callable[[], Any]) -> Callable[[], Any]:
    """A decorator that passes once through each context-local a gate needs, and checks nothing.

    What Flask itself charges for the shape of the gate's work: the app (for the extension), the
    request (for the customer) and ``g`` (for the per-request memo).
    """

    @functools.wraps(func)
    def wrapper() -> Any:
        if "entitlegate" in current_app.extensions:
            g.bench_customer = request.headers.get("X-Customer")
        return func()

    return wrapper


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
    ) + _decorator_rows(quick=quick)


def _decorator_rows(*, quick: bool) -> list[Row]:
    """µs ``@requires_feature`` adds to a view called in a pushed request context, beside an empty decorator.

    Each call gets a request context of its own (so a fresh ``g``: no memo from the call before),
    pushed in both the bare and the decorated runs; only the view function called differs.
    """
    app = make_app()
    headers = {"X-Customer": CUSTOMER}
    functions = app.view_functions

    def calls(path: str, endpoint: str) -> Callable[[int], object]:
        func = functions[endpoint]
        environ = EnvironBuilder(path=path, headers=list(headers.items())).get_environ()
        with app.request_context(dict(environ)):
            if func() != "ok":
                raise RuntimeError(f"Flask {path} did not answer ok in a request context: the bench is broken")

        def batch(count: int) -> None:
            for _ in range(count):
                with app.request_context(dict(environ)):  # WSGI servers hand each request its own
                    func()

        return batch

    return added_cost_rows(
        "Flask view call in a request context",
        calls("/plain", "plain"),
        [
            ("an empty decorator (`functools.wraps` pass-through)", calls("/empty", "empty")),
            ("a decorator reading `current_app`, `request.headers` and `g` once each", calls("/proxies", "proxies")),
            (HAND_WRITTEN, calls("/hand", "hand")),
        ],
        calls("/gated", "gated"),
        number=20 if quick else 100,
        rounds=4 if quick else 400,
        goal_us=GOAL_DECORATOR_US,
        why=WHY_DECORATOR,
    )
