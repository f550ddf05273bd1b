"""One request's answers: its customer, loaded once, and that customer's features, asked once.

However many checks a request makes (stacked decorators, ``has_feature`` in a template), the
customer loader runs once and the resolver is asked once; an outage is remembered for the rest of
the request too, so a page full of checks makes one trip to Stripe, not one per check. The memo
lives on ``g`` and is dropped when the request ends.
"""

from __future__ import annotations

from flask import current_app, g

from entitlegate import Resolver, SourceUnavailable
from entitlegate_flask.state import state_of

__all__ = ["RequestEntitlements", "current", "forget"]

_G_KEY = "_entitlegate"


class RequestEntitlements:
    """The resolver as one request sees it: the same answer to every question it asks.

    It answers the part of :class:`~entitlegate.Resolver` that ``entitlegate.gate`` uses
    (``features``, ``has_feature``, ``on_unavailable``: the ``gate.Answers`` protocol), so the
    gate's decisions apply unchanged.
    """

    __slots__ = ("_error", "_features", "customer", "on_unavailable", "resolver")

    def __init__(self, resolver: Resolver, customer: str | None) -> None:
        self.resolver = resolver
        self.customer = customer
        self.on_unavailable = resolver.on_unavailable
        self._features: frozenset[str] | None = None
        self._error: SourceUnavailable | None = None

    def features(self, customer: str) -> frozenset[str]:
        """The customer's features, asked of the resolver on the first call only."""
        features = self._features
        if features is None:
            if self._error is not None:
                raise self._error
            try:
                features = self._features = self.resolver.features(customer)
            except SourceUnavailable as error:
                self._error = error
                raise
        return features

    def has_feature(self, customer: str, lookup_key: str) -> bool:
        """Whether the customer holds ``lookup_key``; raises SourceUnavailable in an outage."""
        return lookup_key in self.features(customer)


def current() -> RequestEntitlements:
    """This request's :class:`RequestEntitlements`, made (and the customer loaded) on first use."""
    # Each pass through a context-local proxy costs about a microsecond: resolve g once, and
    # current_app only when the memo is made.
    request_g = g._get_current_object()
    memo: RequestEntitlements | None = request_g.get(_G_KEY)
    if memo is None:
        state = state_of(current_app._get_current_object())  # type: ignore[attr-defined]  # a LocalProxy
        memo = RequestEntitlements(state.resolver, state.extension.load_customer())
        setattr(request_g, _G_KEY, memo)
    return memo


def forget(error: BaseException | None = None) -> None:
    """Drop the memo at the end of a request (``g`` can outlive it in a pushed app context)."""
    g.pop(_G_KEY, None)
