"""The built-in ``on_denied``: an upgrade trip through a Stripe Customer Portal session, and back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from entitlegate import upgrade
from entitlegate.errors import SourceUnavailable
from entitlegate.gate import Cause, aportal_url, denial_cause, prefers_json, upgrade_body
from entitlegate.sources import PortalFlow
from entitlegate_asgi import _responses
from entitlegate_asgi._entitlements import Entitlements
from entitlegate_asgi._types import ASGIApp, Receive, Scope, Send

__all__ = ["aback_from_portal", "portal_upgrade"]

logger = logging.getLogger("entitlegate")


def portal_upgrade(
    *, flow: PortalFlow | None = None, configuration: str | None = None, locale: str | None = None
) -> Callable[[Scope, str], Awaitable[ASGIApp]]:
    """An ``on_denied`` for :class:`~entitlegate_asgi.EntitlementMiddleware`: a 303 to the Customer Portal.

    The session is made by the middleware's resolver's source (a :class:`~entitlegate.StripeSource`),
    on its async client. ``flow="subscription_update"`` opens the plan page of the customer's
    active subscription; ``configuration`` and ``locale`` are the portal's. The portal comes back to
    the page asked for, marked so that the middleware refreshes the customer's entitlements once on
    the way in. An API client (``Accept: application/json``) gets a JSON 403 (``gate.denial_body``
    plus ``"upgrade_url"``) instead. A session Stripe cannot make leaves the 403, with its cause
    logged; a denial the outage policy made is a 503.
    """

    async def on_denied(scope: Scope, feature: str) -> ASGIApp:
        if denial_cause(feature) is Cause.UNAVAILABLE:
            return _responses.UNAVAILABLE
        entitlements: Entitlements = scope["state"]["entitlements"]
        customer = await entitlements.acustomer()
        if customer is None:
            return _responses.NO_CUSTOMER
        try:
            url = await aportal_url(
                entitlements.resolver,
                customer,
                upgrade.marked(_url_of(scope)),
                flow=flow,
                configuration=configuration,
                locale=locale,
            )
        except (SourceUnavailable, TypeError) as error:
            # The denial stands; only the offer to upgrade is unavailable. Say why, then 403.
            logger.warning("entitlegate could not open a Stripe Customer Portal session: %s", error)
            return _responses.denied(feature)
        if prefers_json(_header(scope, b"accept")):
            body = upgrade_body(feature, url)
            return _responses.Refusal(403, str(body["error"]), url, body=body, close_code=1008)
        return _SeeOther(url)

    return on_denied


async def aback_from_portal(scope: Scope, entitlements: Entitlements) -> ASGIApp | None:
    """For the middleware: a request back from the portal is refreshed once, then unmarked (303).

    None for every other request.
    """
    query = scope.get("query_string", b"").decode("latin-1")
    if not upgrade.is_return(query):
        return None
    await upgrade.arefresh_on_return(entitlements.resolver, await entitlements.acustomer())
    return _SeeOther(upgrade.unmarked(_full_path(scope), query))


class _SeeOther:
    """A 303 to ``location``: a plain ASGI app, so the middleware needs no Starlette."""

    __slots__ = ("location",)

    def __init__(self, location: str) -> None:
        self.location = location

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"location", self.location.encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return ""


def _full_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root_path: str = scope.get("root_path", "")
    return path if not root_path or path.startswith(root_path) else root_path + path


def _url_of(scope: Scope) -> str:
    host = _header(scope, b"host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{_full_path(scope)}{'?' + query if query else ''}"
