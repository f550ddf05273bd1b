"""``RequiresFeature``: the FastAPI dependency that gates a path operation on features."""

from __future__ import annotations

from collections.abc import Iterable

try:
    # FastAPI injects the request by this annotation, so it is imported at run time.
    from starlette.requests import HTTPConnection
except ImportError as error:  # pragma: no cover - exercised in a subprocess without Starlette
    raise ImportError('entitlegate_asgi.RequiresFeature needs Starlette: pip install "entitlegate[asgi]"') from error

from entitlegate.gate import Requirement
from entitlegate_asgi._entitlements import Entitlements, entitlements_of

__all__ = ["RequiresFeature"]


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
        verdict = await entitlements._refusal_of(self.requirement)
        if verdict is not None:
            # A dependency cannot answer the request itself: the middleware catches this and does.
            entitlements._refuse(verdict)
        return entitlements
