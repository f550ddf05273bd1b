"""``request.entitlements``: the request's customer and features, looked up only when asked."""

from __future__ import annotations

from django.http import HttpRequest

from entitlegate_django.conf import Config
from entitlegate_django.responses import acustomer_of, customer_of

__all__ = ["Entitlements", "customer_for"]

_UNSET: object = object()


class Entitlements:
    """The Stripe entitlements of one request's customer. Nothing is fetched until something asks.

    ``customer`` is the ``CUSTOMER`` function's answer; ``features`` the customer's lookup_keys
    (empty without a customer) and raises :class:`~entitlegate.SourceUnavailable` in an outage,
    which :class:`~entitlegate_django.middleware.EntitlementMiddleware` answers with a 503;
    ``has_feature`` (and ``in``) answers as ``ON_UNAVAILABLE`` says. In async views use the
    ``a``-prefixed twins, which never block the event loop.
    """

    __slots__ = ("_config", "_customer", "_features", "_request")

    def __init__(self, request: HttpRequest, config: Config) -> None:
        self._request = request
        self._config = config
        self._customer: object = _UNSET
        self._features: frozenset[str] | None = None

    def __repr__(self) -> str:
        if self._customer is _UNSET:
            return "<Entitlements (not looked up)>"
        return f"<Entitlements customer={self._customer!r} features={self._features!r}>"

    @property
    def customer(self) -> str | None:
        """The request's Stripe customer id, or None."""
        customer = self._customer
        if customer is _UNSET:
            customer = self._customer = customer_of(self._config, self._request)
        return customer  # type: ignore[return-value]

    @property
    def features(self) -> frozenset[str]:
        """The customer's active lookup_keys (empty without a customer); raises in an outage."""
        features = self._features
        if features is None:
            customer = self.customer
            features = self._features = frozenset() if customer is None else self._config.resolver.features(customer)
        return features

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the customer holds ``lookup_key``; in an outage, as ``ON_UNAVAILABLE`` says."""
        if self._features is not None:
            return lookup_key in self._features
        customer = self.customer
        return customer is not None and self._config.resolver.has_feature(customer, lookup_key)

    __contains__ = has_feature

    async def acustomer(self) -> str | None:
        """Async twin of :attr:`customer`."""
        customer = self._customer
        if customer is _UNSET:
            customer = self._customer = await acustomer_of(self._config, self._request)
        return customer  # type: ignore[return-value]

    async def afeatures(self) -> frozenset[str]:
        """Async twin of :attr:`features`."""
        features = self._features
        if features is None:
            customer = await self.acustomer()
            features = frozenset() if customer is None else await self._config.resolver.afeatures(customer)
            self._features = features
        return features

    async def ahas_feature(self, lookup_key: str) -> bool:
        """Async twin of :meth:`has_feature`."""
        if self._features is not None:
            return lookup_key in self._features
        customer = await self.acustomer()
        return customer is not None and await self._config.resolver.ahas_feature(customer, lookup_key)


def customer_for(config: Config, request: HttpRequest) -> str | None:
    """The request's customer: the one the middleware already found, else by ``CUSTOMER``."""
    entitlements = getattr(request, "entitlements", None)
    if isinstance(entitlements, Entitlements):
        return entitlements.customer
    return customer_of(config, request)
