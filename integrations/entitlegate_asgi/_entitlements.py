"""What the customer behind one request is entitled to, loaded the first time something needs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from entitlegate.errors import SourceUnavailable

# gate.judge gives the verdict on features already in hand (or an outage already met), so a
# request that both reads its features and is checked asks the source once.
from entitlegate.gate import Outcome, Requirement, Verdict, judge
from entitlegate.resolver import answer_in_outage
from entitlegate_asgi._types import ASGIApp, Scope

if TYPE_CHECKING:
    from entitlegate_asgi.middleware import EntitlementMiddleware

__all__ = ["Entitlements", "RequestRefused", "entitlements_of"]

_NO_CUSTOMER = Verdict(Outcome.NO_CUSTOMER)
_EMPTY: frozenset[str] = frozenset()
_NOT_LOADED = (
    "the request's entitlements are not loaded: `await request.state.entitlements.load()` first "
    "(EntitlementMiddleware loads them itself only on routes its rules gate; requires_feature and "
    "RequiresFeature load them too)"
)


class Entitlements:
    """The Stripe entitlements of the customer behind one request, loaded when first needed.

    :class:`~entitlegate_asgi.EntitlementMiddleware` puts one in ``scope["state"]["entitlements"]``
    (Starlette and FastAPI: ``request.state.entitlements``). On a route its rules gate it is loaded
    before the app runs; elsewhere ``await request.state.entitlements.load()`` loads it. Reading
    ``customer``, ``features`` or ``has_feature`` before then raises ``RuntimeError``.

    In an outage (Stripe down, nothing usable cached) ``features`` raises
    :class:`~entitlegate.SourceUnavailable` and ``has_feature`` answers as the resolver's
    ``on_unavailable`` says; the middleware answers a ``SourceUnavailable`` the app lets through
    with 503. One object belongs to one request.
    """

    __slots__ = ("_customer", "_error", "_features", "_gate", "_loaded", "_raised", "_scope")

    def __init__(self, gate: EntitlementMiddleware, scope: Scope) -> None:
        self._gate = gate
        self._scope: Scope | None = scope
        self._loaded = False
        self._customer: str | None = None
        self._features = _EMPTY
        self._error: SourceUnavailable | None = None
        # Whether a refusal or an outage has been raised into the app: the middleware then holds
        # back the response the app's own error handling makes of it (FastAPI's: a 500).
        self._raised = False

    def __repr__(self) -> str:
        if not self._loaded:
            return "<Entitlements not loaded>"
        if self._error is not None:
            return f"<Entitlements customer={self._customer!r} unavailable>"
        return f"<Entitlements customer={self._customer!r} features={sorted(self._features)!r}>"

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._loaded

    async def load(self) -> Entitlements:
        """Find the request's customer and their features, once; return ``self``.

        Later calls return at once. An outage does not raise here (see :attr:`features`), nor a
        ``customer`` callable that fails or returns no id: that is logged and means no customer.
        """
        if self._loaded:
            return self
        if self._scope is None:
            raise RuntimeError("the request's entitlements can be loaded only while the request is being handled")
        customer = await self._gate._find_customer(self._scope)
        if customer is not None:
            try:
                self._features = await self._gate.resolver.afeatures(customer)
            except SourceUnavailable as error:
                self._error = error
        self._customer = customer
        self._loaded = True
        return self

    @property
    def customer(self) -> str | None:
        """The request's Stripe customer id, or None when there is none (not signed in)."""
        if not self._loaded:
            raise RuntimeError(_NOT_LOADED)
        return self._customer

    @property
    def features(self) -> frozenset[str]:
        """The customer's active feature lookup_keys (empty without a customer).

        Raises :class:`~entitlegate.SourceUnavailable` in an outage.
        """
        if not self._loaded:
            raise RuntimeError(_NOT_LOADED)
        if self._error is not None:
            self._raised = True
            raise self._error
        return self._features

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the customer holds ``lookup_key``; False without a customer.

        In an outage it answers as the resolver's ``on_unavailable`` says: raises
        :class:`~entitlegate.SourceUnavailable` under ``"raise"`` (the default).
        """
        if not self._loaded:
            raise RuntimeError(_NOT_LOADED)
        if self._error is None:
            return lookup_key in self._features
        self._raised = self._gate.resolver.on_unavailable == "raise"
        return answer_in_outage(self._gate.resolver.on_unavailable, self._error)

    def _release(self) -> None:
        """Let go of the request's scope once the request is over."""
        self._scope = None

    def _check(self, requirement: Requirement) -> Verdict:
        """The gate's verdict on the loaded entitlements."""
        if self._customer is None:
            return _NO_CUSTOMER
        answer = self._features if self._error is None else self._error
        return judge(requirement, answer, self._gate.resolver.on_unavailable)

    async def _refusal_of(self, requirement: Requirement) -> Verdict | None:
        """Load, then the verdict when it refuses the request, or None when it lets it through."""
        await self.load()
        verdict = self._check(requirement)
        return None if verdict.allowed else verdict

    def _refuse(self, verdict: Verdict) -> NoReturn:
        """Raise the refusal for the middleware to answer, noting that it is on its way."""
        self._raised = True
        raise RequestRefused(verdict)

    async def _refusal_app(self, scope: Scope, requirement: Requirement) -> ASGIApp | None:
        """Load, then the ASGI app that answers a refused request, or None when it may go through."""
        verdict = await self._refusal_of(requirement)
        return None if verdict is None else await self._gate._refusal(scope, verdict)


class RequestRefused(Exception):
    """Raised by ``RequiresFeature``: EntitlementMiddleware catches it and sends the refusal."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"request refused by entitlegate: {verdict.outcome.value}")
        self.verdict = verdict


def entitlements_of(scope: Scope, user: str) -> Entitlements:
    """The request's :class:`Entitlements`; a clear ``RuntimeError`` when the middleware is missing."""
    state = scope.get("state")
    entitlements = state.get("entitlements") if isinstance(state, Mapping) else None
    if not isinstance(entitlements, Entitlements):
        raise RuntimeError(
            f"{user} needs EntitlementMiddleware around the app, and this request did not pass through "
            "it: add Middleware(EntitlementMiddleware, resolver=..., customer=...) to the app's middleware"
        )
    return entitlements
