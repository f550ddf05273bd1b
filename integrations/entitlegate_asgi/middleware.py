"""Pure ASGI middleware: each request's entitlements in its scope, and path rules enforced."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

from entitlegate.errors import CacheUnavailable, SourceUnavailable
from entitlegate.gate import Cause, Outcome, Requirement, Rules, Verdict, customer_failed, read_customer
from entitlegate.resolver import Resolver
from entitlegate_asgi import _responses
from entitlegate_asgi._entitlements import Entitlements, RequestRefused
from entitlegate_asgi._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CustomerOf", "EntitlementMiddleware", "OnDenied", "RulesLike"]

CustomerOf: TypeAlias = Callable[[Scope], str | Awaitable[str | None] | None]
"""``customer(scope)``, sync or async: the request's Stripe customer id, or None."""
OnDenied: TypeAlias = Callable[[Scope, str], ASGIApp | Awaitable[ASGIApp]]
"""``on_denied(scope, feature)``, sync or async: the ASGI app that answers a request lacking ``feature``."""
RulesLike: TypeAlias = (
    Rules | Mapping[str, str | Iterable[str] | Requirement] | Iterable[tuple[str, str | Iterable[str] | Requirement]]
)

_GATED = frozenset(("http", "websocket"))


class EntitlementMiddleware:
    """Puts the request's :class:`~entitlegate_asgi.Entitlements` in ``scope["state"]`` and enforces ``rules``.

    ``customer(scope)`` (sync or async; decided here, once) names the request's Stripe customer, or
    None; a sync one runs on the event loop, so it must not do I/O. One that raises, or returns
    anything but an id or None (a blank or padded string, a number), is logged on the
    ``entitlegate`` logger and the request has no customer (401), never a 500 or a Stripe call.
    ``rules`` maps path prefixes to the features they need (see :class:`entitlegate.gate.Rules`:
    longest prefix wins, prefixes match on path-segment boundaries, paths are taken below
    ``root_path``); they apply to ``http`` and ``websocket`` scopes. Every other scope
    (``lifespan``) passes through untouched, and the caller's scope is copied, never changed.

    On a ruled route the entitlements are loaded before the app runs and a refused request never
    reaches it: no customer → 401, a missing feature → 403 or ``on_denied(scope, feature)``
    (sync or async, returning an ASGI app such as a Starlette ``Response``; HTTP only), an outage
    → 503 (or what the resolver's ``on_unavailable`` says: under ``"deny"`` ``on_denied`` is asked,
    with ``gate.denial_cause(feature)`` saying the outage caused it, and without one it is a 503).
    Bodies are JSON for clients that accept it, plain text otherwise. A websocket is refused
    before it is accepted. Elsewhere nothing is fetched until ``load()``, ``requires_feature`` or
    ``RequiresFeature`` asks, so a route nothing gates never calls Stripe and never answers 503.

    Raises ``TypeError`` / ``ValueError`` naming the argument when it is built with a bad one.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: Resolver,
        customer: CustomerOf,
        rules: RulesLike = (),
        on_denied: OnDenied | None = None,
    ) -> None:
        if not isinstance(resolver, Resolver):
            raise TypeError(f"EntitlementMiddleware resolver= must be an entitlegate.Resolver, got {resolver!r}")
        if not callable(customer):
            raise TypeError(
                "EntitlementMiddleware customer= must be a callable of the ASGI scope returning a Stripe "
                f"customer id or None, got {customer!r}"
            )
        if on_denied is not None and not callable(on_denied):
            raise TypeError(
                f"EntitlementMiddleware on_denied= must be a callable of (scope, feature) or None, got {on_denied!r}"
            )
        try:
            self.rules = rules if isinstance(rules, Rules) else Rules(rules)
        except ValueError as error:
            raise ValueError(f"EntitlementMiddleware rules=: {error}") from None
        except TypeError as error:
            raise TypeError(f"EntitlementMiddleware rules=: {error}") from None
        self.app = app
        self.resolver = resolver
        self._customer: Callable[[Scope], Any] = customer
        self._customer_is_async = _is_async_callable(customer)
        # What the log names when the callable misbehaves: the argument and the function.
        self._customer_name = f"EntitlementMiddleware customer={_qualified_name(customer)}"
        self._on_denied: Callable[[Scope, str], Any] | None = on_denied
        self._on_denied_is_async = on_denied is not None and _is_async_callable(on_denied)

    def __repr__(self) -> str:
        return f"EntitlementMiddleware({self.app!r}, resolver={self.resolver!r}, rules={self.rules!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _GATED:
            await self.app(scope, receive, send)
            return
        state = dict(scope.get("state") or ())
        scope = {**scope, "state": state}
        entitlements = state["entitlements"] = Entitlements(self, scope)
        try:
            await self._serve(scope, receive, send, entitlements)
        finally:
            # The entitlements hold the scope that holds them: cut that loop, so that a request
            # leaves no garbage for the cycle collector.
            entitlements._release()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, entitlements: Entitlements) -> None:
        requirement = self.rules.match(_route_path(scope)) if self.rules else None
        if requirement is not None:
            refusal = await entitlements._refusal_app(scope, requirement)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        started = False
        # Wrapped around a whole app (FastAPI's, the pure-ASGI way), the middleware sits outside the
        # app's ServerErrorMiddleware, which answers 500 to a refusal or an outage raised in the app
        # before re-raising it to us. So a 500, and any response after the request's entitlements
        # raised one into the app, is held back until the app is done: replaced by the refusal or
        # the 503 if the exception reaches us, sent as it was otherwise.
        held: list[Message] = []

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if held or (
                not started
                and message["type"] == "http.response.start"
                and (entitlements._raised or message["status"] == 500)
            ):
                held.append(message)
                return
            started = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except RequestRefused as refused:
            if started:
                raise
            app = await self._refusal(scope, refused.verdict)
            await app(scope, receive, send)
            return
        except (SourceUnavailable, CacheUnavailable):
            # The app met an outage (Stripe's, or a shared cache's on a change) and did not
            # handle it: 503, never a 500.
            if started:
                raise
            await _responses.UNAVAILABLE(scope, receive, send)
            return
        except Exception:
            await _send_all(send, held)
            raise
        await _send_all(send, held)

    async def _find_customer(self, scope: Scope) -> str | None:
        # The rule all three adapters share (gate.read_customer): a callable that fails or returns
        # something other than an id is the site's bug, logged, and the request has no customer.
        try:
            value = await self._customer(scope) if self._customer_is_async else self._customer(scope)
        except Exception as error:
            customer_failed(self._customer_name, error)
            return None
        return read_customer(value, self._customer_name)

    async def _refusal(self, scope: Scope, verdict: Verdict) -> ASGIApp:
        """The ASGI app that answers a request the gate refused."""
        if verdict.outcome is Outcome.NO_CUSTOMER:
            return _responses.NO_CUSTOMER
        if verdict.outcome is not Outcome.DENIED:
            return _responses.UNAVAILABLE
        feature = verdict.feature or ""
        if self._on_denied is None or scope["type"] != "http":
            # A denial the outage policy made is no upsell: the customer may hold the feature.
            if verdict.cause is Cause.UNAVAILABLE:
                return _responses.UNAVAILABLE
            return _responses.feature_required(feature)
        app = self._on_denied(scope, feature)
        if self._on_denied_is_async:
            app = await app
        if not callable(app):
            raise TypeError(
                f"EntitlementMiddleware on_denied= must return an ASGI app (a Starlette Response is one), got {app!r}"
            )
        answer: ASGIApp = app
        return answer


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)


def _is_async_callable(obj: object) -> bool:
    # As Starlette decides it: an async function, a partial of one, or an object whose __call__ is one.
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (callable(obj) and inspect.iscoroutinefunction(obj.__call__))


def _qualified_name(obj: object) -> str:
    while isinstance(obj, functools.partial):
        obj = obj.func
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def _route_path(scope: Scope) -> str:
    # The path below root_path, which is what the app's own router matches (Starlette's get_route_path).
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :] or "/"
    return path
