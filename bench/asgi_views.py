"""Section 2, ASGI: raw ASGI calls into Starlette and FastAPI apps, gated by entitlegate and not.

Raw calls (scope, receive, send; no server, no test client), so a row's figure is the app's own
work. Each gate is measured beside what the framework charges for a stand-in of the same shape:
a pass-through ASGI middleware, an empty endpoint decorator, a no-op FastAPI dependency.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bench._timing import Row
from bench.overhead import CUSTOMER, FEATURE, FEATURES, NO_FEATURES, Memo, added_cost_rows, overhead_rows
from entitlegate import MemoryCache, Resolver, StaticSource
from entitlegate_asgi import EntitlementMiddleware, RequiresFeature, requires_feature

GOAL_MIDDLEWARE_US = 1.5  # EntitlementMiddleware with a rule adds at most 1.5 µs to a raw call
GOAL_DECORATOR_US = 1.5  # @requires_feature adds at most 1.5 µs to a Starlette endpoint
WHY_MIDDLEWARE = (
    "a pass-through middleware costs a fraction of a microsecond and a hand-written one (the customer, "
    "then `ahas_feature`) about a microsecond here; one that keeps its answer in a copy of the scope's "
    "state, as entitlegate promises (one customer call and one lookup per request), costs more (the memo "
    "row); what EntitlementMiddleware adds beyond that row is its own work (the entitlements object's "
    "lookup bookkeeping, the portal-return check, the rule lookup, watching `send` so that a refusal "
    "raised inside a whole app is not answered with that app's 500)"
)
WHY_DECORATOR = (
    "an empty async decorator costs nothing measurable, and the hand-written check (the customer, then "
    "the awaited hit) about a microsecond here: what `@requires_feature` adds beyond that row is its own "
    "work (finding the request among the arguments, loading the entitlements from the scope, the verdict)"
)

_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/pro",
    "raw_path": b"/pro",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"x-customer", CUSTOMER.encode())],
    "client": ("127.0.0.1", 50000),
    "server": ("bench", 80),
}


def customer(scope: MutableMapping[str, Any]) -> str | None:
    """The request's customer, from an ``X-Customer`` header."""
    for name, value in scope["headers"]:
        if name == b"x-customer":
            return str(value.decode("latin-1"))
    return None


async def view(request: Request) -> PlainTextResponse:
    """The trivial endpoint every app serves."""
    return PlainTextResponse("ok")


class PassThrough:
    """A pure ASGI middleware that does nothing: the floor any middleware costs in the stack."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def empty_decorator(func: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An async endpoint decorator that does nothing but wrap and await: the floor of any."""

    @functools.wraps(func)
    async def wrapper(request: Request) -> Response:
        return await func(request)

    return wrapper


class HandWrittenGate:
    """The middleware's check written by hand, with none of the adapter: customer, hit, or a 403."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, resolver: Resolver, prefix: str) -> None:
        self.app = app
        self.resolver = resolver
        self.prefix = prefix

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            found = customer(scope)
            if found is None or not await self.resolver.ahas_feature(found, FEATURE):
                await PlainTextResponse("forbidden", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HandWrittenMemoGate:
    """The middleware's check by hand, keeping entitlegate's per-request promise and none of its code.

    As an ASGI middleware that puts something in the request's state should, it copies the scope
    and its state rather than change the caller's; the answer is kept there (the customer and the
    resolver asked once per request, whatever else checks afterwards). What that alone costs.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, resolver: Resolver, prefix: str) -> None:
        self.app = app
        self.resolver = resolver
        self.prefix = prefix

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            state = dict(scope.get("state") or ())
            scope = {**scope, "state": state}
            if scope["path"].startswith(self.prefix):
                found = customer(scope)
                features = NO_FEATURES if found is None else self.resolver.cached_features(found)
                if features is None:
                    features = await self.resolver.afeatures(found)  # type: ignore[arg-type]  # a str here
                state["memo"] = memo = Memo(found, features)
                if memo.customer is None or FEATURE not in memo.features:
                    await PlainTextResponse("forbidden", status_code=403)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def hand_written_gate(
    resolver: Resolver,
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """``@requires_feature``'s check written by hand: the customer, the awaited hit, or a 403."""

    def decorator(func: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(func)
        async def wrapper(request: Request) -> Response:
            found = customer(request.scope)
            if found is None or not await resolver.ahas_feature(found, FEATURE):
                return PlainTextResponse("forbidden", status_code=403)
            return await func(request)

        return wrapper

    return decorator


async def no_op() -> None:
    """A FastAPI dependency that does nothing: the floor of resolving any dependency."""


def cached_resolver() -> Resolver:
    """A resolver on a StaticSource with the bench customer already cached."""
    resolver = Resolver(StaticSource({CUSTOMER: FEATURES}), MemoryCache())
    resolver.features(CUSTOMER)
    return resolver


def entitlegate_middleware(rules: dict[str, str]) -> Middleware:
    """EntitlementMiddleware on a cached resolver, with ``rules``."""
    return Middleware(EntitlementMiddleware, resolver=cached_resolver(), customer=customer, rules=rules)


def make_app(*, gated: bool) -> Starlette:
    """A Starlette app serving ``/pro``; gated, it has the middleware with a rule for ``/pro``."""
    middleware = [entitlegate_middleware({"/pro": FEATURE})] if gated else []
    return Starlette(routes=[Route("/pro", view)], middleware=middleware)


def starlette_app(middleware: Sequence[Middleware], endpoint: Callable[[Request], Awaitable[Response]]) -> Starlette:
    """A Starlette app serving ``endpoint`` at ``/pro`` behind ``middleware``."""
    return Starlette(routes=[Route("/pro", endpoint)], middleware=list(middleware))


def _fastapi(dependencies: Sequence[Any]) -> FastAPI:
    app = FastAPI(middleware=[entitlegate_middleware({})])

    @app.get("/pro", dependencies=list(dependencies), response_class=PlainTextResponse)
    async def pro() -> str:
        return "ok"

    return app


def run(*, quick: bool = False) -> list[Row]:
    """µs per raw ASGI request without and with each gate, and beside each gate's stand-in."""
    number = 20 if quick else 200
    rounds = 4 if quick else 300
    loop = asyncio.new_event_loop()
    try:

        def requests(app: Any) -> Callable[[int], object]:
            return requests_of(loop, app)

        # Endpoints behind @requires_feature need the middleware (no rule: the decorator loads).
        beneath = [entitlegate_middleware({})]
        return (
            overhead_rows(
                "Starlette, raw ASGI call",
                requests(make_app(gated=False)),
                requests(make_app(gated=True)),
                number=number,
                rounds=rounds,
                goal=False,
            )
            + added_cost_rows(
                "Starlette raw call, a middleware",
                requests(starlette_app([], view)),
                [
                    ("a pass-through ASGI middleware", requests(starlette_app([Middleware(PassThrough)], view))),
                    (
                        "a hand-written ASGI middleware (the customer, then `ahas_feature`)",
                        requests(
                            starlette_app(
                                [Middleware(HandWrittenGate, resolver=cached_resolver(), prefix="/pro")], view
                            )
                        ),
                    ),
                    (
                        "a hand-written ASGI middleware that keeps its answer in a copy of the scope's state "
                        "(once per request, as `request.state.entitlements` promises)",
                        requests(
                            starlette_app(
                                [Middleware(HandWrittenMemoGate, resolver=cached_resolver(), prefix="/pro")], view
                            )
                        ),
                    ),
                ],
                requests(make_app(gated=True)),
                number=number,
                rounds=rounds,
                goal_us=GOAL_MIDDLEWARE_US,
                why=WHY_MIDDLEWARE,
            )
            + added_cost_rows(
                "Starlette endpoint, a decorator",
                requests(starlette_app(beneath, view)),
                [
                    (
                        "an empty async decorator (`functools.wraps`)",
                        requests(starlette_app(beneath, empty_decorator(view))),
                    ),
                    (
                        "a hand-written check (the customer, then `ahas_feature`, in a decorator)",
                        requests(starlette_app(beneath, hand_written_gate(cached_resolver())(view))),
                    ),
                ],
                requests(starlette_app(beneath, requires_feature(FEATURE)(view))),
                number=number,
                rounds=rounds,
                goal_us=GOAL_DECORATOR_US,
                why=WHY_DECORATOR,
            )
            + added_cost_rows(
                "FastAPI path operation, a dependency",
                requests(_fastapi([])),
                [("a no-op dependency (`Depends(no_op)`)", requests(_fastapi([Depends(no_op)])))],
                requests(_fastapi([Depends(RequiresFeature(FEATURE))])),
                number=number,
                rounds=rounds,
                goal_us=None,
            )
        )
    finally:
        loop.close()


def requests_of(loop: asyncio.AbstractEventLoop, app: Any) -> Callable[[int], object]:
    """A batch runner of ``count`` raw ASGI requests for ``/pro`` into ``app`` (checked once to answer 200)."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message)

    async def batch(count: int) -> None:
        for _ in range(count):
            await app(dict(_SCOPE), receive, send)  # Starlette writes into the scope: one per request

    loop.run_until_complete(batch(1))
    if sent[-1]["status"] != 200:
        raise RuntimeError(f"the Starlette app answered {sent[-1]['status']}, not 200: the bench is broken")
    sent.clear()

    def run_batch(count: int) -> None:
        loop.run_until_complete(batch(count))
        sent.clear()

    return run_batch
