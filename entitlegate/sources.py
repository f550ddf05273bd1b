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


def _livemode_of(api_key: str) -> bool | None:
    if api_key.startswith(_LIVE_PREFIXES):
        return True
    if api_key.startswith(_TEST_PREFIXES):
        return False
    logger.warning("The Stripe API key has no sk_/rk_ live or test prefix: livemode is unknown")
    return None


class StaticSource:
    """A fixed mapping of customer id to lookup_keys, for development, demos and tests.

    Customers not in the mapping have no features. ``livemode`` is ``None``.
    """

    livemode: bool | None = None

    def __init__(self, mapping: Mapping[str, Iterable[str]]) -> None:
        if not isinstance(mapping, Mapping):
            raise TypeError(f"StaticSource needs a mapping of customer id to lookup_keys, got {type(mapping).__name__}")
        self._mapping = {customer: _lookup_keys(customer, keys) for customer, keys in mapping.items()}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StaticSource:
        """Read a JSON object of customer id to a list of lookup_keys.

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
        try:
            return cls(data)
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


def _lookup_keys(customer: object, keys: object) -> frozenset[str]:
    if not isinstance(customer, str) or not customer.strip():
        raise ValueError(f"customer ids must be non-blank strings, got {customer!r}")
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise TypeError(f"lookup_keys of {customer!r} must be a list of strings, got {keys!r}")
    result = frozenset(keys)
    if not all(isinstance(key, str) and key for key in result):
        raise TypeError(f"lookup_keys of {customer!r} must be non-empty strings, got {sorted(map(repr, result))}")
    return result
