"""Where answers come from: Stripe's Entitlements API, or a fixed mapping for development."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import stripe

from entitlegate.catalog import Feature
from entitlegate.errors import SourceUnavailable

__all__ = ["Source", "StaticSource", "StripeSource"]

logger = logging.getLogger("entitlegate")

_PAGE_SIZE = 100  # Stripe's maximum for list endpoints
_LIVE_PREFIXES = ("sk_live_", "rk_live_")
_TEST_PREFIXES = ("sk_test_", "rk_test_")


@runtime_checkable
class Source(Protocol):
    """Anything that can list a customer's active entitlement lookup_keys.

    ``fetch`` returns the empty set for an unknown customer and raises
    :class:`~entitlegate.SourceUnavailable` when it cannot answer. ``livemode`` says whether its
    answers are Stripe live-mode data (``None``: unknown, webhook events are not filtered).
    """

    livemode: bool | None

    def fetch(self, customer: str) -> frozenset[str]:
        """The customer's active lookup_keys."""
        ...

    async def afetch(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`fetch`; must not block the event loop."""
        ...


class StripeSource:
    """Active entitlements from Stripe's API, through the official ``stripe`` SDK.

    Give it a ready :class:`stripe.StripeClient`, or an ``api_key`` (a client built from a key
    retries network errors twice, times out after ``timeout`` seconds per attempt, and keeps one
    async HTTP client per event loop, since the SDK's async client belongs to the loop that first
    used it). ``stripe_account`` sends every request
    on behalf of a connected account. ``livemode`` is read from the key's prefix when left
    ``None``; a ready client does not reveal its key, so pass it there.

    Raises :class:`~entitlegate.SourceUnavailable` on network errors, 5xx, 429 and on
    authentication or permission errors; a customer Stripe does not know has no features.
    Thread-safe, and usable from any number of event loops.
    """

    def __init__(
        self,
        client: stripe.StripeClient | None = None,
        *,
        api_key: str | None = None,
        stripe_account: str | None = None,
        livemode: bool | None = None,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout: float = 10.0,
    ) -> None:
        if (client is None) == (api_key is None):
            raise ValueError("StripeSource needs exactly one of a StripeClient or api_key")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("StripeSource api_key must be a non-empty string")
        if stripe_account is not None and (
            not isinstance(stripe_account, str) or not stripe_account.startswith("acct_")
        ):
            raise ValueError(f"StripeSource stripe_account must look like 'acct_…', got {stripe_account!r}")
        self.stripe_account = stripe_account
        self._api_key = api_key
        self._api_base = api_base
        self._max_network_retries = max_network_retries
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"StripeSource timeout must be a number of seconds > 0, got {timeout!r}")
        self._timeout = float(timeout)
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, stripe.StripeClient]
        self._loop_clients = weakref.WeakKeyDictionary()
        self._loop_clients_lock = threading.Lock()
        self._keepers: set[asyncio.Task[None]] = set()  # strong refs: the loop holds tasks weakly
        self._auth_error_logged = False
        if client is not None:
            self._client = client
            self.livemode = livemode
            self._owns_client = False
            if livemode is None:
                logger.warning(
                    "StripeSource was given a ready StripeClient without livemode=: webhook events "
                    "will not be filtered by livemode. Pass livemode=True or False."
                )
        else:
            assert api_key is not None
            self._client = self._build_client()
            self.livemode = livemode if livemode is not None else _livemode_of(api_key)
            self._owns_client = True

    def __repr__(self) -> str:
        return f"StripeSource(livemode={self.livemode!r}, stripe_account={self.stripe_account!r})"

    def fetch(self, customer: str) -> frozenset[str]:
        """Every active entitlement's lookup_key for ``customer``, across all pages."""
        service = self._client.v1.entitlements.active_entitlements
        keys: set[str] = set()
        params: dict[str, Any] = {"customer": customer, "limit": _PAGE_SIZE}
        try:
            while True:
                page = service.list(params, self._options())  # type: ignore[arg-type]
                last = _collect(page, keys)
                if not page.has_more or last is None:
                    return frozenset(keys)
                params["starting_after"] = last
        except stripe.StripeError as error:
            return self._outcome_of(error, customer)

    async def afetch(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`fetch`, on the SDK's own async HTTP client."""
        if not self._owns_client:
            # A ready client's async HTTP client may belong to another loop: use its sync side.
            return await asyncio.to_thread(self.fetch, customer)
        service = self._client_for_running_loop().v1.entitlements.active_entitlements
        keys: set[str] = set()
        params: dict[str, Any] = {"customer": customer, "limit": _PAGE_SIZE}
        try:
            while True:
                page = await service.list_async(params, self._options())  # type: ignore[arg-type]
                last = _collect(page, keys)
                if not page.has_more or last is None:
                    return frozenset(keys)
                params["starting_after"] = last
        except stripe.StripeError as error:
            return self._outcome_of(error, customer)

    def create_portal_session(self, customer: str, return_url: str) -> str:
        """The URL of a new Stripe Customer Portal session for ``customer``."""
        try:
            session = self._client.v1.billing_portal.sessions.create(
                {"customer": customer, "return_url": return_url},
                self._options(),  # type: ignore[arg-type]
            )
        except stripe.StripeError as error:
            self._outcome_of(error, customer)  # raises for everything but 404
            raise SourceUnavailable(
                f"Stripe has no customer {customer!r} to open a portal session for", customer=customer
            ) from None
        return str(session.url)

    async def acreate_portal_session(self, customer: str, return_url: str) -> str:
        """Async twin of :meth:`create_portal_session`."""
        return await asyncio.to_thread(self.create_portal_session, customer, return_url)

    def _options(self) -> dict[str, Any] | None:
        return {"stripe_account": self.stripe_account} if self.stripe_account else None

    def _build_client(self) -> stripe.StripeClient:
        assert self._api_key is not None
        # The SDK's default is an 80 s timeout: far too long for a request that waits on it.
        http_client = stripe.RequestsClient(
            timeout=self._timeout, async_fallback_client=stripe.HTTPXClient(timeout=self._timeout)
        )
        return stripe.StripeClient(
            self._api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=self._max_network_retries,
            http_client=http_client,
        )

    def _client_for_running_loop(self) -> stripe.StripeClient:
        loop = asyncio.get_running_loop()
        with self._loop_clients_lock:
            client = self._loop_clients.get(loop)
            if client is None:
                client = self._loop_clients[loop] = self._build_client()
                # The client's pooled connections belong to this loop and must be closed on it.
                # asyncio.run (and the Runner that test frameworks and servers use) cancels every
                # task left when it shuts the loop down: a task parked here closes them then.
                keeper = loop.create_task(_close_at_shutdown(client))
                self._keepers.add(keeper)
                keeper.add_done_callback(self._keepers.discard)
            return client

    async def aclose(self) -> None:
        """Close the async HTTP connections this source opened on the running event loop."""
        with self._loop_clients_lock:
            client = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await _close_async(client)

    def _outcome_of(self, error: stripe.StripeError, customer: str) -> frozenset[str]:
        """Map an SDK error: an unknown customer has no features; everything else is an outage."""
        if isinstance(error, stripe.InvalidRequestError) and error.code == "resource_missing":
            return frozenset()
        if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
            if not self._auth_error_logged:
                self._auth_error_logged = True
                logger.error(
                    "Stripe rejected the API key (HTTP %s): check the StripeSource api_key / "
                    "STRIPE_API_KEY setting and the key's permissions (it needs read access to "
                    "Entitlements)",
                    error.http_status,
                )
            # The SDK's message may quote part of the key: leave it and its traceback behind.
            raise SourceUnavailable(
                f"Stripe rejected the API key (HTTP {error.http_status})", customer=customer
            ) from None
        status = f"HTTP {error.http_status}" if error.http_status else "no response"
        raise SourceUnavailable(
            f"Stripe did not answer for customer {customer!r} ({type(error).__name__}, {status})",
            customer=customer,
        ) from error

    # -- the feature catalog (entitlegate.catalog) ------------------------------------------------

    def list_features(self) -> tuple[Feature, ...]:
        """Every feature of the account, active then archived, across all pages.

        Raises :class:`~entitlegate.SourceUnavailable` on the errors :meth:`fetch` treats as an
        outage, and when the account has more than ``_MAX_CATALOG_PAGES`` pages of either kind.
        """
        service = self._client.v1.entitlements.features
        features: list[Feature] = []
        try:
            # The list leaves out archived features unless asked: ask for each kind explicitly.
            for archived in (False, True):
                params: dict[str, Any] = {"archived": archived, "limit": _PAGE_SIZE}
                for _ in range(_MAX_CATALOG_PAGES):
                    page = service.list(params, self._options())  # type: ignore[arg-type]
                    last = _collect_features(page, features)
                    if not page.has_more or last is None:
                        break
                    params["starting_after"] = last
                else:
                    raise _catalog_too_large()
        except stripe.StripeError as error:
            raise self._catalog_outage(error) from None
        return tuple(features)

    async def alist_features(self) -> tuple[Feature, ...]:
        """Async twin of :meth:`list_features`, on the SDK's own async HTTP client."""
        if not self._owns_client:
            return await asyncio.to_thread(self.list_features)
        service = self._client_for_running_loop().v1.entitlements.features
        features: list[Feature] = []
        try:
            for archived in (False, True):
                params: dict[str, Any] = {"archived": archived, "limit": _PAGE_SIZE}
                for _ in range(_MAX_CATALOG_PAGES):
                    page = await service.list_async(params, self._options())  # type: ignore[arg-type]
                    last = _collect_features(page, features)
                    if not page.has_more or last is None:
                        break
                    params["starting_after"] = last
                else:
                    raise _catalog_too_large()
        except stripe.StripeError as error:
            raise self._catalog_outage(error) from None
        return tuple(features)

    def _catalog_outage(self, error: stripe.StripeError) -> SourceUnavailable:
        """An SDK error listing features, as an outage; like :meth:`_outcome_of`, never quoting the key."""
        if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
            return SourceUnavailable(f"Stripe rejected the API key listing features (HTTP {error.http_status})")
        status = f"HTTP {error.http_status}" if error.http_status else "no response"
        return SourceUnavailable(f"Stripe did not list the features ({type(error).__name__}, {status})")


async def _close_at_shutdown(client: stripe.StripeClient) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await _close_async(client)


async def _close_async(client: stripe.StripeClient) -> None:
    http_client = client._requestor._client  # the SDK exposes no public close on StripeClient
    if http_client is not None:
        await http_client.close_async()  # type: ignore[no-untyped-call]


def _collect(page: Any, keys: set[str]) -> str | None:
    """Add a page's lookup_keys to ``keys``; return the last entitlement id (the next cursor)."""
    last = None
    for entitlement in page.data:
        keys.add(entitlement.lookup_key)
        last = entitlement.id
    return last


_MAX_CATALOG_PAGES = 100  # 10,000 features of each kind: a bound, so a looping cursor cannot hang a request


def _collect_features(page: Any, features: list[Feature]) -> str | None:
    """Add a page's features to ``features``; return the last feature id (the next cursor)."""
    last = None
    for item in page.data:
        features.append(Feature.from_stripe(item.to_dict()))
        last = item.id
    return last


def _catalog_too_large() -> SourceUnavailable:
    return SourceUnavailable(f"the account has more than {_MAX_CATALOG_PAGES * _PAGE_SIZE} features of one kind")


def _livemode_of(api_key: str) -> bool | None:
    if api_key.startswith(_LIVE_PREFIXES):
        return True
    if api_key.startswith(_TEST_PREFIXES):
        return False
    logger.warning("The Stripe API key has no sk_/rk_ live or test prefix: livemode is unknown")
    return None


class StaticSource:
    """A fixed mapping of customer id to lookup_keys, for development, demos and tests.

    Customers not in the mapping have no features. ``livemode`` is ``None``. ``features`` gives
    the catalog limits come from: lookup_key to its metadata (``{"pro": {"seats": "25"}}``), or
    :class:`~entitlegate.catalog.Feature` objects; a lookup_key a customer holds that it does not
    name is an active feature without metadata.
    """

    livemode: bool | None = None

    def __init__(
        self,
        mapping: Mapping[str, Iterable[str]],
        *,
        features: Mapping[str, Mapping[str, str]] | Iterable[Feature] | None = None,
    ) -> None:
        if not isinstance(mapping, Mapping):
            raise TypeError(f"StaticSource needs a mapping of customer id to lookup_keys, got {type(mapping).__name__}")
        self._mapping = {customer: _lookup_keys(customer, keys) for customer, keys in mapping.items()}
        self._features = _static_features(features, self._mapping)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StaticSource:
        """Read a JSON object of customer id to a list of lookup_keys.

        Or ``{"customers": {id: [lookup_keys]}, "features": {lookup_key: {metadata}}}``, which
        gives the features' metadata (their limits) too.

        Raises ``ValueError`` naming the file when it is not such an object.
        """
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except OSError as error:
            raise ValueError(f"cannot read entitlements file {os.fspath(path)!r}: {error.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"entitlements file {os.fspath(path)!r} is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"entitlements file {os.fspath(path)!r} must hold a JSON object of customer id to a list "
                f"of lookup_keys, not a {type(data).__name__}"
            )
        features = None
        if isinstance(data.get("customers"), dict):
            # {"customers": {id: [keys]}, "features": {lookup_key: {metadata}}}: a catalog too.
            data, features = data["customers"], data.get("features")
            if features is not None and not isinstance(features, dict):
                raise ValueError(
                    f"entitlements file {os.fspath(path)!r}: features must be an object of lookup_key to metadata"
                )
        try:
            return cls(data, features=features)
        except (TypeError, ValueError) as error:
            raise ValueError(f"entitlements file {os.fspath(path)!r}: {error}") from None

    def __repr__(self) -> str:
        return f"StaticSource({len(self._mapping)} customers)"

    def fetch(self, customer: str) -> frozenset[str]:
        """The customer's lookup_keys (the empty set for an unknown customer)."""
        return self._mapping.get(customer, frozenset())

    async def afetch(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`fetch`."""
        return self._mapping.get(customer, frozenset())

    # -- the feature catalog (entitlegate.catalog) ------------------------------------------------

    def list_features(self) -> tuple[Feature, ...]:
        """The features given (and those the customers hold), active and archived."""
        return self._features

    async def alist_features(self) -> tuple[Feature, ...]:
        """Async twin of :meth:`list_features`."""
        return self._features


def _lookup_keys(customer: object, keys: object) -> frozenset[str]:
    if not isinstance(customer, str) or not customer.strip():
        raise ValueError(f"customer ids must be non-blank strings, got {customer!r}")
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise TypeError(f"lookup_keys of {customer!r} must be a list of strings, got {keys!r}")
    result = frozenset(keys)
    if not all(isinstance(key, str) and key for key in result):
        raise TypeError(f"lookup_keys of {customer!r} must be non-empty strings, got {sorted(map(repr, result))}")
    return result


def _static_features(
    given: Mapping[str, Mapping[str, str]] | Iterable[Feature] | None, mapping: Mapping[str, frozenset[str]]
) -> tuple[Feature, ...]:
    features: dict[str, Feature] = {}
    if isinstance(given, Mapping):
        for key, metadata in given.items():
            if not isinstance(metadata, Mapping) or not all(
                isinstance(name, str) and isinstance(value, str) for name, value in metadata.items()
            ):
                raise TypeError(
                    f"metadata of feature {key!r} must be a mapping of strings to strings, got {metadata!r}"
                )
            features[key] = Feature(f"feat_static_{key}", key, key, True, dict(metadata))
    elif given is not None:
        for feature in given:
            if not isinstance(feature, Feature):
                raise TypeError(f"StaticSource features must be Feature objects or a mapping, got {feature!r}")
            features[feature.lookup_key] = feature
    for keys in mapping.values():
        for key in keys:
            if key not in features:
                features[key] = Feature(f"feat_static_{key}", key, key)
    return tuple(features.values())
