"""``RequiresFeature``, ``RequiresLimit``, ``RequiresUsage``: the FastAPI dependencies that gate a path operation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

try:
    # FastAPI injects the request by this annotation, so it is imported at run time.
    from starlette.requests import HTTPConnection
except ImportError as error:  # pragma: no cover - exercised in a subprocess without Starlette
    raise ImportError(
        "entitlegate_asgi.RequiresFeature, RequiresLimit and RequiresUsage need Starlette: "
        'pip install "entitlegate[asgi]"'
    ) from error

from entitlegate.gate import Outcome, Requirement, Verdict
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate_asgi._entitlements import Entitlements, entitlements_of
from entitlegate_asgi._utils import RequestRefused

__all__ = ["RequiresFeature", "RequiresLimit", "RequiresUsage"]

_ALLOWED = Outcome.ALLOWED


class RequiresFeature:
    """A FastAPI dependency: ``Depends(RequiresFeature("seats-feature"))``.

    Lets the request through only for a customer holding every one of ``features`` (and, with
    ``any_of``, at least one of those), and gives the endpoint the request's loaded
    :class:`~entitlegate_asgi.Entitlements`. Otherwise ``EntitlementMiddleware`` answers as it
    does for its rules: 401, 403 or its ``on_denied``, 503 (a websocket is refused before it is
    accepted). Works in HTTP and websocket routes, in ``dependencies=[...]`` of a route or router.

    An instance, not a function, so tests can swap it out: keep it in a name and set
    ``app.dependency_overrides[that_name] = ...``. Raises ``ValueError`` for a blank or missing
    feature when built, and ``RuntimeError`` at request time when the app lacks the middleware.
    """

    def __init__(self, *features: str, any_of: Iterable[str] = ()) -> None:
        self.requirement = Requirement.of(*features, any_of=any_of)

    def __repr__(self) -> str:
        return f"RequiresFeature({self.requirement!r})"

    async def __call__(self, connection: HTTPConnection) -> Entitlements:
        entitlements = entitlements_of(connection.scope, "RequiresFeature")
        return _through(entitlements, await entitlements.acheck(self.requirement))


class RequiresLimit:
    """A FastAPI dependency: ``Depends(RequiresLimit("seats", need))``.

    Lets the request through only for a customer whose limit ``name`` (from their Features'
    metadata) is at least ``need``: a whole number, or a callable of the request returning one
    (it runs on the event loop: no I/O). Gives the endpoint the request's
    :class:`~entitlegate_asgi.Entitlements`, its limits loaded (``entitlements.limit(name)``).
    Otherwise the middleware answers as for a missing feature: 403 (JSON
    ``{"error": "limit_exceeded", "limit", "allowed", "need"}``) or its ``on_denied(scope, name)``,
    401, 503. An instance, for ``app.dependency_overrides``, like :class:`RequiresFeature`.
    Raises ``ValueError`` for a blank name or a bad ``need``.
    """

    def __init__(self, name: str, need: int | Callable[[HTTPConnection], int] = 1) -> None:
        self.requirement = LimitRequirement(name, need)

    def __repr__(self) -> str:
        return f"RequiresLimit({self.requirement.name!r}, {self.requirement.need!r})"

    async def __call__(self, connection: HTTPConnection) -> Entitlements:
        entitlements = entitlements_of(connection.scope, "RequiresLimit")
        need = self.requirement.needed(connection)
        return _through(entitlements, await entitlements.acheck_limit(self.requirement, need))


class RequiresUsage:
    """A FastAPI dependency: ``Depends(RequiresUsage("exports", limit="exports"))``.

    Lets the request through while the customer's use of the meter ``meter`` stays within their
    limit: ``limit`` names it in Feature metadata (0 for a customer none of whose features
    carries it), or is a whole number for everyone. Each request let through counts ``value`` at
    once (atomic: concurrent requests never pass the limit) and reports it to Stripe. Gives the
    endpoint the request's :class:`~entitlegate_asgi.Entitlements`. Otherwise the middleware
    answers as for a missing feature: 403 (JSON ``{"error": "usage_exceeded", "meter", "usage",
    "limit"}``) or its ``on_denied(scope, meter)``, 401, 503 when the counter cannot be read. An
    instance, for ``app.dependency_overrides``, like :class:`RequiresFeature`. Raises
    ``ValueError`` for a blank meter or limit name, or a bad limit or value.
    """

    def __init__(self, meter: str, limit: str | int, value: int = 1) -> None:
        self.requirement = UsageRequirement(meter, limit, value)

    def __repr__(self) -> str:
        requirement = self.requirement
        return f"RequiresUsage({requirement.meter!r}, limit={requirement.limit!r}, value={requirement.value!r})"

    async def __call__(self, connection: HTTPConnection) -> Entitlements:
        entitlements = entitlements_of(connection.scope, "RequiresUsage")
        return _through(entitlements, await entitlements.acheck_usage(self.requirement))


def _through(entitlements: Entitlements, verdict: Verdict) -> Entitlements:
    if verdict.outcome is not _ALLOWED:  # not Verdict.allowed, a property: a Python call fewer
        # A dependency cannot answer the request itself: the middleware catches this and does.
        entitlements.raised = True
        raise RequestRefused(verdict)
    return entitlements
