"""``request.entitlements``: the request's customer and features, looked up only when asked."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, SynchronousOnlyOperation
from django.http import Http404, HttpRequest

from entitlegate.gate import customer_failed, read_customer
from entitlegate_django.conf import Config

__all__ = ["Entitlements", "acustomer_for", "acustomer_of", "customer_for", "customer_of"]

_UNSET: object = object()


def customer_of(config: Config, request: HttpRequest) -> str | None:
    """The request's Stripe customer id by the ``CUSTOMER`` function, or None for no customer.

    ``entitlegate.gate.read_customer``'s rule: None and "" are no customer; a function that raises
    (other than ``Http404`` / ``PermissionDenied``, which Django answers itself), or answers a blank
    or padded string or a non-string, is logged and counts as no customer: a 403 or the login page,
    never a 500, and nothing odd reaches Stripe.
    """
    try:
        return _call(config, request)
    except SynchronousOnlyOperation as error:
        # Sync code in the event loop (a template rendered by an async view) cannot load the user.
        customer_failed(config.customer_name, error)
        return None


async def acustomer_of(config: Config, request: HttpRequest) -> str | None:
    """:func:`customer_of` from the event loop: called directly, in a thread only if it must be.

    A CUSTOMER function that reads what is already loaded costs nothing here. One that touches
    the database (``request.user`` not loaded yet) makes Django raise SynchronousOnlyOperation
    in the event loop; it is then called again in a worker thread, as Django runs sync code.
    """
    try:
        return _call(config, request)
    except SynchronousOnlyOperation:
        return await sync_to_async(customer_of)(config, request)


def _call(config: Config, request: HttpRequest) -> str | None:
    # Lets SynchronousOnlyOperation through, for the async twin to retry in a thread.
    try:
        answer: object = config.customer(request)
    except (SynchronousOnlyOperation, Http404, PermissionDenied):
        raise
    except Exception as error:
        customer_failed(config.customer_name, error)
        return None
    return read_customer(answer, config.customer_name)


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
    """The request's customer: the one the middleware's ``request.entitlements`` holds (so the
    ``CUSTOMER`` function runs once per request however many checks it makes), else by ``CUSTOMER``.
    """
    entitlements = getattr(request, "entitlements", None)
    if isinstance(entitlements, Entitlements):
        return entitlements.customer
    return customer_of(config, request)


async def acustomer_for(config: Config, request: HttpRequest) -> str | None:
    """Async twin of :func:`customer_for`."""
    entitlements = getattr(request, "entitlements", None)
    if isinstance(entitlements, Entitlements):
        return await entitlements.acustomer()
    return await acustomer_of(config, request)
