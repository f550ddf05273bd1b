"""``@requires_feature``, ``@requires_limit``, ``@requires_usage``: gate a Starlette endpoint, as ``@requires`` does."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import HTTPConnection, Request
    from starlette.websockets import WebSocket
except ImportError as error:  # pragma: no cover - exercised in a subprocess without Starlette
    raise ImportError(
        "entitlegate_asgi.requires_feature, requires_limit and requires_usage need Starlette: "
        'pip install "entitlegate[asgi]"'
    ) from error

from entitlegate.gate import Outcome, Requirement, Verdict
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate_asgi._entitlements import Entitlements, entitlements_of
from entitlegate_asgi._utils import is_async_callable

__all__ = ["requires_feature", "requires_limit", "requires_usage"]

_P = ParamSpec("_P")
_ALLOWED = Outcome.ALLOWED  # read once: Verdict.allowed is a property, a Python call per request
# The gate a decorator runs on a request's entitlements: its verdict, given the connection. A plain
# function returning the core's coroutine, so a check awaits one frame less.
_Judge = Callable[[Entitlements, HTTPConnection], Awaitable[Verdict]]


def requires_feature(*features: str, any_of: Iterable[str] = ()) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let a Starlette endpoint run only for a customer holding every one of ``features``.

    ``any_of`` asks for at least one of those too. Works on function endpoints and
    ``HTTPEndpoint`` methods (sync or async; a sync one still runs in Starlette's thread pool) and
    on websocket endpoints; the endpoint needs a parameter named ``request`` or ``websocket``, as
    with Starlette's ``@requires``. The request is refused as ``EntitlementMiddleware`` refuses it
    (401, 403 or its ``on_denied``, 503; a websocket before it is accepted). Raises ``ValueError``
    for a blank or missing feature at decoration, and ``RuntimeError`` at request time when the
    app lacks ``EntitlementMiddleware``.
    """
    requirement = Requirement.of(*features, any_of=any_of)

    def judge(entitlements: Entitlements, connection: HTTPConnection) -> Awaitable[Verdict]:
        return entitlements.acheck(requirement)

    return _gate("requires_feature", judge)


def requires_limit(
    name: str, need: int | Callable[[HTTPConnection], int] = 1
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let a Starlette endpoint run only for a customer whose limit ``name`` is at least ``need``.

    ``need`` is a whole number, or a callable of the request (the endpoint's ``Request`` or
    ``WebSocket``) returning one, e.g. ``lambda request: int(request.query_params["seats"])``; it
    runs on the event loop, so it must not do I/O. The limit comes from the customer's Features'
    metadata (see :meth:`entitlegate.Resolver.limit`). Endpoints as for :func:`requires_feature`;
    a request short of the limit is refused as a missing feature is: 403 (JSON
    ``{"error": "limit_exceeded", "limit", "allowed", "need"}``) or ``on_denied(scope, name)``, and
    401 / 503 as usual. Raises ``ValueError`` for a blank name or a bad ``need`` (at decoration when
    it is a number, at request time when the callable returns one).
    """
    requirement = LimitRequirement(name, need)

    def judge(entitlements: Entitlements, connection: HTTPConnection) -> Awaitable[Verdict]:
        return entitlements.acheck_limit(requirement, requirement.needed(connection))

    return _gate("requires_limit", judge)


def requires_usage(meter: str, limit: str | int, value: int = 1) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Let a Starlette endpoint run while the customer's use of the meter ``meter`` stays within their limit.

    ``limit`` names the customer's limit in Feature metadata (``@requires_usage("exports",
    limit="exports")``: the highest ``metadata["exports"]`` of the features they hold, 0 without
    one), or is a whole number for everyone. Each request let through counts ``value`` at once
    (:meth:`entitlegate.Resolver.aconsume_usage`, atomic: concurrent requests never pass the
    limit) and reports it to Stripe, before the endpoint runs. Endpoints as for
    :func:`requires_feature`; a request over the limit is refused as a missing feature is: 403
    (JSON ``{"error": "usage_exceeded", "meter", "usage", "limit"}``) or ``on_denied(scope, meter)``,
    401 without a customer, 503 when the counter cannot be read. Raises ``ValueError`` at
    decoration for a blank meter or limit name, or a bad limit or value.
    """
    requirement = UsageRequirement(meter, limit, value)

    def judge(entitlements: Entitlements, connection: HTTPConnection) -> Awaitable[Verdict]:
        return entitlements.acheck_usage(requirement)

    return _gate("requires_usage", judge)


def _gate(user: str, judge: _Judge) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    # The one decorator both gates share: where the connection is and whether the endpoint is
    # async are decided here, once; each request only runs ``judge`` and renders a refusal.
    def decorator(func: Callable[_P, Any]) -> Callable[_P, Any]:
        index, kind = _connection_parameter(func, user)
        is_async = is_async_callable(func)

        def located(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[HTTPConnection, Entitlements]:
            connection = kwargs.get(kind, args[index] if index < len(args) else None)
            # Starlette's own Request first: isinstance against HTTPConnection, a Mapping ABC, is slower.
            if type(connection) is not Request and not isinstance(connection, HTTPConnection):
                raise TypeError(
                    f"{user}: the {kind!r} argument of {func.__qualname__} is {type(connection).__name__}, "
                    "not a Starlette Request or WebSocket"
                )
            return connection, entitlements_of(connection.scope, user)

        # Each wrapper awaits the gate itself, with no helper coroutine between: on the allowed
        # path (nearly every request's) a coroutine frame is a good part of what a gate costs.
        if kind == "websocket":
            if not is_async:
                raise TypeError(f"{user}: websocket endpoint {func.__qualname__} must be async")

            @functools.wraps(func)
            async def websocket_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
                websocket, entitlements = located(args, kwargs)
                verdict = await judge(entitlements, websocket)
                if verdict.outcome is _ALLOWED:
                    await func(*args, **kwargs)
                    return
                refusal = await entitlements.refusals.answer(websocket.scope, verdict)
                # Through the WebSocket's own send, so it knows the connection is refused.
                assert isinstance(websocket, WebSocket)
                await refusal(websocket.scope, websocket.receive, websocket.send)

            return websocket_wrapper

        if is_async:

            @functools.wraps(func)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                connection, entitlements = located(args, kwargs)
                verdict = await judge(entitlements, connection)
                if verdict.outcome is _ALLOWED:
                    return await func(*args, **kwargs)
                return await entitlements.refusals.answer(connection.scope, verdict)  # an ASGI app: all Starlette asks

            return async_wrapper

        # A sync endpoint: the check awaits on the loop, then the endpoint runs in the thread pool
        # as Starlette would have run it.
        @functools.wraps(func)
        async def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            connection, entitlements = located(args, kwargs)
            verdict = await judge(entitlements, connection)
            if verdict.outcome is _ALLOWED:
                return await run_in_threadpool(func, *args, **kwargs)
            return await entitlements.refusals.answer(connection.scope, verdict)

        return sync_wrapper

    return decorator


def _connection_parameter(func: Callable[..., Any], user: str) -> tuple[int, str]:
    for index, parameter in enumerate(inspect.signature(func).parameters.values()):
        if parameter.name in ("request", "websocket"):
            return index, parameter.name
    raise TypeError(f'{user}: {func.__qualname__} has no "request" or "websocket" parameter')
