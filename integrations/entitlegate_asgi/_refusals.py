"""How a refused request is answered: the gate's verdict rendered as an ASGI app, or the site's ``on_denied``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from entitlegate.gate import Cause, Outcome, Verdict
from entitlegate_asgi import _responses
from entitlegate_asgi._types import ASGIApp, Scope
from entitlegate_asgi._utils import is_async_callable

__all__ = ["OnDenied", "Refusals"]

OnDenied: TypeAlias = Callable[[Scope, str], ASGIApp | Awaitable[ASGIApp]]
"""``on_denied(scope, feature)``, sync or async: the ASGI app that answers a request lacking ``feature``."""


class Refusals:
    """The answers of one ``EntitlementMiddleware``: 401, 403 (or its ``on_denied``), 503.

    Decided once, when the middleware is built (whether ``on_denied`` is async); every request's
    :class:`~entitlegate_asgi.Entitlements` carries it, so a decorator or a dependency answers
    exactly as the middleware's rules do.
    """

    __slots__ = ("_on_denied", "_on_denied_is_async")

    def __init__(self, on_denied: OnDenied | None) -> None:
        self._on_denied: Callable[[Scope, str], Any] | None = on_denied
        self._on_denied_is_async = on_denied is not None and is_async_callable(on_denied)

    async def answer(self, scope: Scope, verdict: Verdict) -> ASGIApp:
        """The ASGI app that answers a request the gate refused with ``verdict``.

        A denial names a lookup_key or a limit (a :class:`~entitlegate.gate.DeniedFeature`, whose
        :func:`~entitlegate.gate.denial_shortfall` says how far short it fell); ``on_denied`` gets
        it as its ``feature``. Raises ``TypeError`` when ``on_denied`` returns no ASGI app.
        """
        if verdict.outcome is Outcome.NO_CUSTOMER:
            return _responses.NO_CUSTOMER
        if verdict.outcome is not Outcome.DENIED:
            return _responses.UNAVAILABLE
        feature = verdict.feature or ""
        if self._on_denied is None or scope["type"] != "http":
            # A denial the outage policy made is no upsell: the customer may hold the feature.
            if verdict.cause is Cause.UNAVAILABLE:
                return _responses.UNAVAILABLE
            return _responses.denied(feature)
        app = self._on_denied(scope, feature)
        if self._on_denied_is_async:
            app = await app
        if not callable(app):
            raise TypeError(
                f"EntitlementMiddleware on_denied= must return an ASGI app (a Starlette Response is one), got {app!r}"
            )
        answer: ASGIApp = app
        return answer
