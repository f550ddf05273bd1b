"""What the customer behind one request is entitled to: the core per-request object, loaded the ASGI way.

:class:`entitlegate.entitlements.Entitlements` does the work (one customer lookup and one answer
per request, an outage included); this subclass only adds what an event loop needs: nothing is
fetched from a sync read, so ``await load()`` (or a gate) comes first and a sync read before it
raises ``RuntimeError`` instead of blocking the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from entitlegate import entitlements as core
from entitlegate.catalog import Limit
from entitlegate.errors import SourceUnavailable
from entitlegate.resolver import answer_in_outage
from entitlegate_asgi._refusals import Refusals
from entitlegate_asgi._types import Scope

__all__ = ["Entitlements", "entitlements_of"]

_NOT_LOADED = (
    "the request's entitlements are not loaded: `await request.state.entitlements.load()` first "
    "(EntitlementMiddleware loads them itself only on routes its rules gate; requires_feature and "
    "RequiresFeature load them too)"
)
_LIMITS_NOT_LOADED = (
    "the request's limits are not loaded: `await request.state.entitlements.alimit(name)` (or alimits()) "
    "reads them; requires_limit, RequiresLimit and requires_usage (with a limit name) load them too"
)
_T = TypeVar("_T")


_Core = core.Entitlements


class Entitlements(_Core):
    """The Stripe entitlements of the customer behind one request, loaded when first needed.

    :class:`~entitlegate_asgi.EntitlementMiddleware` puts one in ``scope["state"]["entitlements"]``
    (Starlette and FastAPI: ``request.state.entitlements``). On a route its rules gate it is loaded
    before the app runs; elsewhere ``await request.state.entitlements.load()`` loads it. Reading
    ``customer``, ``features`` or ``has_feature`` before then raises ``RuntimeError``; the async
    reads (``afeatures()``, ``ahas_feature()``, ``alimit(name)``, ``alimits()``) load what they need.
    ``limit(name)`` and ``limits`` read what ``alimits()``, ``requires_limit`` or ``RequiresLimit``
    loaded.

    In an outage (Stripe down, nothing usable cached) ``features`` and ``limit`` raise
    :class:`~entitlegate.SourceUnavailable` and ``has_feature`` answers as the resolver's
    ``on_unavailable`` says; the middleware answers a ``SourceUnavailable`` the app lets through
    with 503. A customer callable that raises or returns anything but an id or None is logged and
    means no customer. One object belongs to one request: one customer lookup and one Stripe
    request, however many checks it makes.
    """

    __slots__ = ("_limits_loaded", "raised", "refusals")

    def __init__(self, lookup: core.CustomerLookup, scope: Scope, refusals: Refusals) -> None:
        # The middleware makes one per request with for_scope, which skips this.
        _Core.__init__(self, lookup.resolver, lookup.customer, lookup.acustomer, lookup.where, lookup.reraise, scope)
        self._limits_loaded = self.raised = False
        self.refusals = refusals

    @classmethod
    def for_scope(cls, lookup: core.CustomerLookup, scope: Scope, refusals: Refusals) -> Entitlements:
        """The entitlements of the request ``scope`` (the middleware's ``customer(scope)`` is the lookup's).

        The middleware calls :meth:`release` when the request ends: the scope holds this object.
        """
        self = cls.for_request(lookup, scope)
        #: How a refusal of this request is answered (the middleware's 401 / 403 / on_denied / 503).
        self.refusals = refusals
        #: Whether an outage or a refusal has been raised into the app: the middleware then holds
        #: back the response the app's own error handling makes of it (FastAPI's: a 500).
        self.raised = False
        self._limits_loaded = False
        return self

    def __repr__(self) -> str:
        return super().__repr__() if self.found else "<Entitlements not loaded>"

    # The async reads are the core's own: the first finds the customer (the core's ``found``) and
    # asks the resolver, which is what loading is, so a gate's ``acheck`` costs no extra step.

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` (or a gate, or an async read) has run."""
        return self.found

    async def load(self) -> Entitlements:
        """Find the request's customer and their features, once; return ``self``.

        Later calls return at once. An outage does not raise here (see :attr:`features`), nor a
        ``customer`` callable that fails or returns no id: that is logged and means no customer
        (as is a load after the request is over).
        """
        await self.aanswer()
        return self

    def answer(self) -> frozenset[str] | SourceUnavailable:
        """What :meth:`load` found; raises ``RuntimeError`` before it ran (a sync read never fetches)."""
        if not self.found:
            raise RuntimeError(_NOT_LOADED)
        return super().answer()

    @property
    def customer(self) -> str | None:
        """The request's Stripe customer id, or None when there is none (not signed in)."""
        if not self.found:
            raise RuntimeError(_NOT_LOADED)
        return super().customer

    @property
    def features(self) -> frozenset[str]:
        """The customer's active feature lookup_keys (empty without a customer).

        Raises :class:`~entitlegate.SourceUnavailable` in an outage.
        """
        return self._raising(self.answer())

    async def afeatures(self) -> frozenset[str]:
        """Async twin of :attr:`features`, loading first."""
        return self._raising(await self.aanswer())

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the customer holds ``lookup_key``; False without a customer.

        In an outage it answers as the resolver's ``on_unavailable`` says: raises
        :class:`~entitlegate.SourceUnavailable` under ``"raise"`` (the default).
        """
        return self._holds(self.answer(), lookup_key)

    __contains__ = has_feature

    async def ahas_feature(self, lookup_key: str) -> bool:
        """Async twin of :meth:`has_feature`, loading first."""
        return self._holds(await self.aanswer(), lookup_key)

    async def alimits_answer(self) -> Mapping[str, Limit] | SourceUnavailable:
        """The customer's limits by name, or the outage met reading them, asked once (see the core)."""
        limits = await super().alimits_answer()
        self._limits_loaded = True
        return limits

    def limits_answer(self) -> Mapping[str, Limit] | SourceUnavailable:
        """What :meth:`alimits_answer` found; raises ``RuntimeError`` before it ran."""
        if not self._limits_loaded:
            raise RuntimeError(_LIMITS_NOT_LOADED)
        return super().limits_answer()

    @property
    def limits(self) -> Mapping[str, Limit]:
        """Every limit the customer has, by name (empty without a customer); raises in an outage."""
        return self._raising(self.limits_answer())

    async def alimits(self) -> Mapping[str, Limit]:
        """Async twin of :attr:`limits`, loading first."""
        return self._raising(await self.alimits_answer())

    def _raising(self, answer: _T | SourceUnavailable) -> _T:
        if isinstance(answer, SourceUnavailable):
            self.raised = True
            raise answer
        return answer

    def _holds(self, answer: frozenset[str] | SourceUnavailable, lookup_key: str) -> bool:
        if isinstance(answer, SourceUnavailable):
            on_unavailable = self.resolver.on_unavailable
            self.raised = on_unavailable == "raise"
            return answer_in_outage(on_unavailable, answer)
        return lookup_key in answer


def entitlements_of(scope: Scope, user: str) -> Entitlements:
    """The request's :class:`Entitlements`; a clear ``RuntimeError`` when the middleware is missing."""
    state = scope.get("state")
    # A dict, as the middleware makes it: isinstance against the Mapping ABC costs ~0.1 µs more.
    entitlements = state.get("entitlements") if isinstance(state, dict) else None
    if not isinstance(entitlements, Entitlements):
        raise RuntimeError(
            f"{user} needs EntitlementMiddleware around the app, and this request did not pass through "
            "it: add Middleware(EntitlementMiddleware, resolver=..., customer=...) to the app's middleware"
        )
    return entitlements
