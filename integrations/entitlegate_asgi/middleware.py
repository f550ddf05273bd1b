"""Pure ASGI middleware: each request's entitlements in its scope, and path rules enforced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any, TypeAlias

from entitlegate.entitlements import CustomerLookup
from entitlegate.errors import CacheUnavailable, SourceUnavailable
from entitlegate.gate import Outcome, Requirement, Rules
from entitlegate.resolver import Resolver
from entitlegate.upgrade import RETURN_MARKER
from entitlegate_asgi import _responses
from entitlegate_asgi._entitlements import Entitlements
from entitlegate_asgi._refusals import OnDenied, Refusals
from entitlegate_asgi._types import ASGIApp, Message, Receive, Scope, Send
from entitlegate_asgi._utils import RequestRefused, is_async_callable, qualified_name, route_path
from entitlegate_asgi.portal import aback_from_portal

__all__ = ["CustomerOf", "EntitlementMiddleware", "OnDenied", "RulesLike"]

CustomerOf: TypeAlias = Callable[[Scope], str | Awaitable[str | None] | None]
"""``customer(scope)``, sync or async: the request's Stripe customer id, or None."""
RulesLike: TypeAlias = (
    Rules | Mapping[str, str | Iterable[str] | Requirement] | Iterable[tuple[str, str | Iterable[str] | Requirement]]
)

_GATED = frozenset(("http", "websocket"))
_ALLOWED = Outcome.ALLOWED  # read once: Verdict.allowed is a property, a Python call per request
_RETURN = RETURN_MARKER.encode()
_for_scope = Entitlements.for_scope  # read once: a classmethod through its class makes a bound method


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
        self._ruled = bool(self.rules)  # read on every request: Rules.__bool__ is a Python call
        self.app = app
        self.resolver = resolver
        # What the log names when the callable misbehaves: the argument and the function. Sync,
        # customer(scope) costs no coroutine; async, it is awaited.
        where = f"EntitlementMiddleware customer={qualified_name(customer)}"
        find: Callable[[Scope], Any] = customer
        is_async = is_async_callable(find)
        self._lookup = CustomerLookup(resolver, None if is_async else find, find if is_async else None, where)
        self._refusals = Refusals(on_denied)

    def __repr__(self) -> str:
        return f"EntitlementMiddleware({self.app!r}, resolver={self.resolver!r}, rules={self.rules!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _GATED:
            await self.app(scope, receive, send)
            return
        state = dict(scope.get("state") or ())
        scope = {**scope, "state": state}
        entitlements = state["entitlements"] = _for_scope(self._lookup, scope, self._refusals)
        # One method, not a helper coroutine per request: every await costs the gated path time.
        try:
            query = scope.get("query_string")
            # Not `_RETURN in query`: bytes' `in` first tries its operand as a byte value, raising
            # and clearing a TypeError, ~2,000 instructions on every request (even for b"").
            if query and query.find(_RETURN) >= 0:
                back = await aback_from_portal(scope, entitlements)  # from the portal: refresh, unmark
                if back is not None:
                    await back(scope, receive, send)
                    return
            requirement = None
            if self._ruled:
                # route_path's common case inline (no root_path: the path is the route's), a call fewer.
                requirement = self.rules.match(route_path(scope) if scope.get("root_path") else scope["path"])
            if requirement is not None:
                verdict = await entitlements.acheck(requirement)
                if verdict.outcome is not _ALLOWED:
                    refusal = await self._refusals.answer(scope, verdict)
                    await refusal(scope, receive, send)
                    return

            started = False
            # Wrapped around a whole app (FastAPI's, the pure-ASGI way), the middleware sits outside
            # the app's ServerErrorMiddleware, which answers 500 to a refusal or an outage raised in
            # the app before re-raising it to us. So a 500, and any response after the request's
            # entitlements raised one into the app, is held back until the app is done: replaced by
            # the refusal or the 503 if the exception reaches us, sent as it was otherwise.
            held: list[Message] = []

            # Not a coroutine function: it hands back send's own awaitable (or one already done),
            # so passing a message through costs no coroutine of ours (two per request).
            def send_noting_start(message: Message) -> Awaitable[None]:
                nonlocal started
                if held or (
                    not started
                    and message["type"] == "http.response.start"
                    and (entitlements.raised or message["status"] == 500)
                ):
                    held.append(message)
                    return _DONE
                started = True
                return send(message)

            try:
                await self.app(scope, receive, send_noting_start)
            except RequestRefused as refused:
                if started:
                    raise
                app = await self._refusals.answer(scope, refused.verdict)
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
                if held:
                    await _send_all(send, held)
                raise
            if held:
                await _send_all(send, held)
        finally:
            # The entitlements hold the scope that holds them: cut that loop, so that a request
            # leaves no garbage for the cycle collector.
            entitlements.release()


class _Done:
    """An awaitable that is already over: what a held message's ``await send(...)`` gets."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return iter(())  # type: ignore[return-value]  # an empty iterator: done at the first step

    def __repr__(self) -> str:
        return "<done>"


_DONE = _Done()


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)
