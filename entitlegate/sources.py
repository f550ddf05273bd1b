"""Where answers come from: Stripe's Entitlements API, or a fixed mapping for development."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NoReturn, Protocol, TypeAlias, runtime_checkable

import stripe
import urllib3

from entitlegate._fork import reset_after_fork
from entitlegate._meters import MeterEvent, MeterRejected
from entitlegate._values import read_api_base, read_api_key, read_max_retries, read_stripe_account, read_timeout
from entitlegate.catalog import Feature
from entitlegate.errors import SourceUnavailable

__all__ = [
    "AsyncSource",
    "PortalFlow",
    "PortalSessions",
    "RefusedAnswer",
    "Source",
    "StaticSource",
    "StripeSource",
]

logger = logging.getLogger("entitlegate")

_PAGE_SIZE = 100  # Stripe's maximum for list endpoints
# 10,000 active entitlements: far beyond any real plan, so a list that goes on is Stripe's bug.
_MAX_PAGES = 100
_CHUNK = 16_384
_LOG_EVERY = 30.0  # seconds between two log lines about the same refusal
_TIMED_OUT = "Stripe did not answer within the StripeSource timeout (STRIPE_TIMEOUT)"
#: Seconds one fetch may take in all, and how many times a failed request is tried again.
DEFAULT_TIMEOUT: Final = 3.0
DEFAULT_RETRIES: Final = 2
_LIVE_PREFIXES = ("sk_live_", "rk_live_")
#: The portal flows a denied handler can open: the plan page of the customer's subscription.
PortalFlow: TypeAlias = Literal["subscription_update"]
_PORTAL_FLOWS = ("subscription_update",)
_TEST_PREFIXES = ("sk_test_", "rk_test_")


@runtime_checkable
class Source(Protocol):
    """Anything that can list a customer's active entitlement lookup_keys.

    ``fetch`` returns the empty set for an unknown customer and raises
    :class:`~entitlegate.SourceUnavailable` when it cannot answer. ``livemode`` says whether its
    answers are Stripe live-mode data (``None``: unknown, webhook events are not filtered). A
    source may also have ``stripe_account`` (the Connect account it reads), and be an
    :class:`AsyncSource` or :class:`PortalSessions`; any object with these members is one, no
    base class needed. The :class:`~entitlegate.Resolver` checks them once, at construction.
    """

    livemode: bool | None

    def fetch(self, customer: str) -> frozenset[str]:
        """The customer's active lookup_keys."""
        ...


@runtime_checkable
class AsyncSource(Protocol):
    """A :class:`Source` that can also fetch without blocking the event loop.

    Without it, the resolver's async twins run ``fetch`` in a worker thread.
    """

    async def afetch(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`Source.fetch`; must not block the event loop."""
        ...


@runtime_checkable
class PortalSessions(Protocol):
    """A source that can open Stripe Customer Portal sessions (:class:`StripeSource` can).

    ``flow`` is None (the portal's home) or ``"subscription_update"`` (the plan page of the
    customer's active subscription); ``configuration`` a portal configuration id (``bpc_...``);
    ``locale`` a Stripe locale (``"auto"``, ``"fr"``, ...). Both raise
    :class:`~entitlegate.SourceUnavailable` when no session can be made.
    """

    def create_portal_session(
        self,
        customer: str,
        return_url: str,
        *,
        flow: PortalFlow | None = None,
        configuration: str | None = None,
        locale: str | None = None,
    ) -> str:
        """The URL of a new portal session for ``customer``, coming back to ``return_url``."""
        ...

    async def acreate_portal_session(
        self,
        customer: str,
        return_url: str,
        *,
        flow: PortalFlow | None = None,
        configuration: str | None = None,
        locale: str | None = None,
    ) -> str:
        """Async twin of :meth:`create_portal_session`."""
        ...


class StripeSource:
    """Active entitlements from Stripe's API, through the official ``stripe`` SDK.

    Give it a ready :class:`stripe.StripeClient`, or an ``api_key``. A client built from a key
    gives every fetch ``timeout`` seconds in all (every page, every retry, and an answer that
    trickles in), tries a failed request again up to ``max_retries`` times within that time
    (``max_network_retries`` is the older name of the same), keeps one async HTTP client per event
    loop (the SDK's async client belongs to the loop that first used it), and rebuilds its clients
    in a forked child (a child sharing its parent's connection would read the parent's answers).
    A ready client keeps its own timeouts and retries. ``stripe_account`` sends every request on
    behalf of a connected account. ``livemode`` is read from the key's prefix when left ``None``; a
    ready client does not reveal its key, so pass it there.

    Raises :class:`~entitlegate.SourceUnavailable` on network errors, timeouts, 5xx, 429, on
    authentication or permission errors, on any other refusal (logged as a configuration problem)
    and on an answer it cannot read (a lookup_key that is not a string, a list that never ends).
    A customer Stripe does not know has no features. Thread-safe, usable from any number of event
    loops, and across ``os.fork()``.
    """

    def __init__(
        self,
        client: stripe.StripeClient | None = None,
        *,
        api_key: str | None = None,
        stripe_account: str | None = None,
        livemode: bool | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        max_network_retries: int | None = None,
    ) -> None:
        if (client is None) == (api_key is None):
            raise ValueError("StripeSource needs exactly one of a StripeClient or api_key")
        if api_key is not None:
            api_key = read_api_key(api_key, "StripeSource api_key")
        self.stripe_account = read_stripe_account(stripe_account, "StripeSource stripe_account")
        self._api_key = api_key
        self._api_base = read_api_base(api_base, "StripeSource api_base")
        self._timeout = read_timeout(timeout, "StripeSource timeout")
        if max_retries is not None and max_network_retries is not None and max_retries != max_network_retries:
            raise ValueError("StripeSource max_retries and max_network_retries name one setting: pass one")
        retries = next((value for value in (max_retries, max_network_retries) if value is not None), DEFAULT_RETRIES)
        self._max_retries = read_max_retries(retries, "StripeSource max_retries")
        self._deadline = _Deadline()
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, stripe.StripeClient]
        self._loop_clients = weakref.WeakKeyDictionary()
        self._loop_clients_lock = threading.Lock()
        self._keepers: set[asyncio.Task[None]] = set()  # strong refs: the loop holds tasks weakly
        self._auth_error_logged = False
        self._refusals = _Every(_LOG_EVERY)
        self._meter_ids: dict[str, str] = {}  # event_name → meter id (GET /v1/billing/meters), remembered
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
        reset_after_fork(self._after_fork)

    def __repr__(self) -> str:
        return f"StripeSource(livemode={self.livemode!r}, stripe_account={self.stripe_account!r})"

    def fetch(self, customer: str) -> frozenset[str]:
        """Every active entitlement's lookup_key for ``customer``, across all pages."""
        service = self._client.v1.entitlements.active_entitlements
        pages = _Pages(customer, self._refusals)
        self._deadline.start(self._timeout)
        try:
            while not pages.done:
                pages.take(service.list(pages.params, self._options()))  # type: ignore[arg-type]
        except stripe.StripeError as error:
            if self._deadline.passed():
                raise self._timed_out(customer) from error
            return self._outcome_of(error, customer, first_page=pages.first)
        finally:
            self._deadline.clear()
        return frozenset(pages.keys)

    async def afetch(self, customer: str) -> frozenset[str]:
        """Async twin of :meth:`fetch`, on the SDK's own async HTTP client."""
        if not self._owns_client:
            # A ready client's async HTTP client may belong to another loop: use its sync side.
            return await asyncio.to_thread(self.fetch, customer)
        service = self._client_for_running_loop().v1.entitlements.active_entitlements
        pages = _Pages(customer, self._refusals)

        async def every_page() -> None:
            while not pages.done:
                pages.take(await service.list_async(pages.params, self._options()))  # type: ignore[arg-type]

        try:
            # One deadline for every page and retry, and for a body that trickles in.
            await asyncio.wait_for(every_page(), self._timeout)
        except asyncio.TimeoutError:
            raise self._timed_out(customer) from None
        except stripe.StripeError as error:
            return self._outcome_of(error, customer, first_page=pages.first)
        return frozenset(pages.keys)

    def create_portal_session(
        self,
        customer: str,
        return_url: str,
        *,
        flow: PortalFlow | None = None,
        configuration: str | None = None,
        locale: str | None = None,
    ) -> str:
        """The URL of a new Stripe Customer Portal session for ``customer``, back to ``return_url``.

        ``flow="subscription_update"`` lists the customer's active subscriptions
        (``GET /v1/subscriptions``) and opens the portal on the first one's plan page, coming
        straight back to ``return_url`` when done; a customer with none gets the portal's home.
        Raises :class:`~entitlegate.SourceUnavailable` (logged, naming Stripe's cause and never the
        key) when Stripe makes no session: an outage, an unknown customer, or a refusal such as a
        portal not configured in this mode.
        """
        params = _portal_params(customer, return_url, flow, configuration, locale)
        self._deadline.start(self._timeout)
        try:
            if flow is not None:
                subscriptions = self._client.v1.subscriptions.list(
                    {"customer": customer, "status": "active", "limit": 1},
                    self._options(),  # type: ignore[arg-type]
                )
                _add_flow(params, flow, subscriptions, return_url)
            session = self._client.v1.billing_portal.sessions.create(params, self._options())  # type: ignore[arg-type]
        except stripe.StripeError as error:
            raise self._portal_refused(error, customer) from None
        finally:
            self._deadline.clear()
        return str(session.url)

    async def acreate_portal_session(
        self,
        customer: str,
        return_url: str,
        *,
        flow: PortalFlow | None = None,
        configuration: str | None = None,
        locale: str | None = None,
    ) -> str:
        """Async twin of :meth:`create_portal_session`, on the SDK's own async HTTP client."""
        params = _portal_params(customer, return_url, flow, configuration, locale)
        if not self._owns_client:
            return await asyncio.to_thread(
                self.create_portal_session,
                customer,
                return_url,
                flow=flow,
                configuration=configuration,
                locale=locale,
            )
        client = self._client_for_running_loop()

        async def create() -> str:
            if flow is not None:
                subscriptions = await client.v1.subscriptions.list_async(
                    {"customer": customer, "status": "active", "limit": 1},
                    self._options(),  # type: ignore[arg-type]
                )
                _add_flow(params, flow, subscriptions, return_url)
            session = await client.v1.billing_portal.sessions.create_async(params, self._options())  # type: ignore[arg-type]
            return str(session.url)

        try:
            return await asyncio.wait_for(create(), self._timeout)
        except asyncio.TimeoutError:
            raise self._timed_out(customer) from None
        except stripe.StripeError as error:
            raise self._portal_refused(error, customer) from None

    # -- usage meters (entitlegate._meters.UsageSource) --------------------------------------------

    def send_meter_event(self, event: MeterEvent) -> None:
        """Report ``event`` (``POST /v1/billing/meter_events``); an identifier already taken counts as sent."""
        params = {
            "event_name": event.event_name,
            "identifier": event.identifier,
            "timestamp": event.timestamp,
            "payload": {"stripe_customer_id": event.customer, "value": str(event.value)},
        }
        self._deadline.start(self._timeout)
        try:
            self._client.v1.billing.meter_events.create(params, self._options())  # type: ignore[arg-type]
        except stripe.StripeError as error:
            if not _is_duplicate_identifier(error):
                raise self._meter_failure(error, event.event_name, event.customer) from None
        finally:
            self._deadline.clear()

    def meter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """The sum of ``GET /v1/billing/meters/{id}/event_summaries`` for ``customer`` in ``[start, end)``.

        ``start`` is rounded down and ``end`` up to a minute, as Stripe requires them aligned.
        """
        self._deadline.start(self._timeout)
        try:
            meter = self._meter_id(event_name)
            params = {"customer": customer, "start_time": start - start % 60, "end_time": -(-end // 60) * 60}
            service = self._client.v1.billing.meters.event_summaries
            page = service.list(meter, params, self._options())  # type: ignore[arg-type]
            return sum(int(summary.aggregated_value) for summary in page.data)
        except stripe.StripeError as error:
            raise self._meter_failure(error, event_name, customer) from None
        finally:
            self._deadline.clear()

    def billing_period(self, customer: str) -> tuple[int, int] | None:
        """The current period of ``customer``'s active subscription, or ``None`` without one.

        Read from the first subscription item's ``current_period_start``/``_end`` (where current API
        versions keep them), else the subscription's own (older versions).
        """
        self._deadline.start(self._timeout)
        try:
            page = self._client.v1.subscriptions.list(
                {"customer": customer, "status": "active", "limit": 1},
                self._options(),  # type: ignore[arg-type]
            )
        except stripe.StripeError as error:
            if _is_unknown_customer(error):
                return None
            raise self._meter_failure(error, "subscriptions", customer) from None
        finally:
            self._deadline.clear()
        if not page.data:
            return None
        subscription = page.data[0].to_dict()
        items = (subscription.get("items") or {}).get("data") or []
        for holder in (*items, subscription):
            start, end = holder.get("current_period_start"), holder.get("current_period_end")
            if isinstance(start, int) and isinstance(end, int):
                return start, end
        return None

    async def asend_meter_event(self, event: MeterEvent) -> None:
        """Async twin of :meth:`send_meter_event` (its sync side, in a worker thread)."""
        await asyncio.to_thread(self.send_meter_event, event)

    async def ameter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """Async twin of :meth:`meter_total` (its sync side, in a worker thread)."""
        return await asyncio.to_thread(self.meter_total, customer, event_name, start, end)

    async def abilling_period(self, customer: str) -> tuple[int, int] | None:
        """Async twin of :meth:`billing_period` (its sync side, in a worker thread)."""
        return await asyncio.to_thread(self.billing_period, customer)

    def _meter_id(self, event_name: str) -> str:
        """The id of the active meter on ``event_name`` (``GET /v1/billing/meters``), remembered."""
        meters = self._meter_ids
        known = meters.get(event_name)
        if known is not None:
            return known
        params: dict[str, Any] = {"status": "active", "limit": _PAGE_SIZE}
        for _ in range(_MAX_CATALOG_PAGES):
            page = self._client.v1.billing.meters.list(params, self._options())  # type: ignore[arg-type]
            for meter in page.data:
                meters.setdefault(str(meter.event_name), str(meter.id))
            if event_name in meters or not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        if event_name not in meters:
            raise MeterRejected(
                f"no active Stripe meter has event_name {event_name!r}", event_name=event_name, code="no_meter"
            )
        return meters[event_name]

    def _meter_failure(self, error: stripe.StripeError, event_name: str, customer: str) -> Exception:
        """An SDK error about a meter: retryable ones as an outage, other refusals as MeterRejected.

        The message names the meter, the customer and Stripe's code, never the key or Stripe's text.
        """
        status = error.http_status
        code = getattr(error, "code", None)
        if self._deadline.passed():
            return self._timed_out(customer)
        if status is None or status >= 500 or status == 429 or isinstance(error, stripe.APIConnectionError):
            where = f"HTTP {status}" if status else "no response"
            return SourceUnavailable(
                f"Stripe is unavailable for meter {event_name!r} ({where}, {type(error).__name__})", customer=customer
            )
        if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
            return SourceUnavailable(f"Stripe rejected the API key (HTTP {status}) for meter {event_name!r}")
        param = getattr(error, "param", None)
        detail = f"{code or type(error).__name__}{f', param {param}' if param else ''}"
        return MeterRejected(
            f"Stripe refused meter {event_name!r} for customer {customer!r} (HTTP {status}, {detail})",
            event_name=event_name,
            code=code,
        )

    def _portal_refused(self, error: stripe.StripeError, customer: str) -> SourceUnavailable:
        """A portal session Stripe did not make, logged with its cause (never the key or its message)."""
        if self._deadline.passed():
            cause = "no answer in time"
        elif isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
            cause = "the API key was rejected"
        else:
            code = getattr(error, "code", None) or type(error).__name__
            param = getattr(error, "param", None)
            cause = f"{code}{f', param {param}' if param else ''}"
            if isinstance(error, stripe.InvalidRequestError) and not _is_unknown_customer(error):
                cause += " (is the Customer Portal configured for this mode in the Stripe Dashboard?)"
        status = f"HTTP {error.http_status}" if error.http_status else "no response"
        message = f"Stripe made no Customer Portal session for customer {customer!r} ({status}, {cause})"
        logger.warning("%s", message)
        return SourceUnavailable(message, customer=customer)

    def _options(self) -> dict[str, Any] | None:
        return {"stripe_account": self.stripe_account} if self.stripe_account else None

    def _build_client(self) -> stripe.StripeClient:
        assert self._api_key is not None
        http_client = _DeadlineClient(
            self._deadline, self._timeout, async_fallback_client=_HTTPXClient(timeout=self._timeout)
        )
        return stripe.StripeClient(
            self._api_key,
            base_addresses={"api": self._api_base} if self._api_base else None,
            max_network_retries=self._max_retries,
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

    def _after_fork(self) -> None:
        # The child has copies of its parent's sockets: a request on one would read the answer
        # meant for the parent (another customer's features). Start from new connections.
        self._deadline = _Deadline()
        self._loop_clients_lock = threading.Lock()
        self._loop_clients = weakref.WeakKeyDictionary()
        self._keepers = set()
        if self._owns_client:
            self._client = self._build_client()
            return
        # A ready client cannot be rebuilt: forget the pooled session of the thread that forked.
        http_client = getattr(getattr(self._client, "_requestor", None), "_client", None)
        if isinstance(http_client, stripe.HTTPClient):
            http_client._thread_local = threading.local()

    def _timed_out(self, customer: str) -> SourceUnavailable:
        return SourceUnavailable(
            f"Stripe did not answer for customer {customer!r} within {self._timeout:g} s "
            "(APIConnectionError, no response; StripeSource timeout / STRIPE_TIMEOUT)",
            customer=customer,
        )

    def _outcome_of(self, error: stripe.StripeError, customer: str, *, first_page: bool) -> frozenset[str]:
        """Map an SDK error: an unknown customer has no features; everything else raises."""
        if first_page and _is_unknown_customer(error):
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
        status = error.http_status
        if status is not None and 400 <= status < 500 and status != 429:
            # Stripe answered, and said no: retrying will not help, and neither will waiting.
            code = getattr(error, "code", None) or type(error).__name__
            param = getattr(error, "param", None)
            if self._refusals.due():
                logger.error(
                    "Stripe refused the request for customer %r (HTTP %s, %s%s): a configuration "
                    "problem (the Stripe account, STRIPE_ACCOUNT, the API version), not an outage",
                    customer,
                    status,
                    code,
                    f", param {param}" if param else "",
                )
            raise RefusedAnswer(
                f"Stripe refused the request for customer {customer!r} (HTTP {status}, {code})", customer=customer
            ) from error
        answered = f"HTTP {status}" if status else "no response"
        raise SourceUnavailable(
            f"Stripe did not answer for customer {customer!r} ({type(error).__name__}, {answered})",
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


def _portal_params(
    customer: str, return_url: str, flow: str | None, configuration: str | None, locale: str | None
) -> dict[str, Any]:
    if not isinstance(customer, str) or not customer.strip():
        raise ValueError(f"a portal session needs a Stripe customer id, got {customer!r}")
    if flow is not None and flow not in _PORTAL_FLOWS:
        raise ValueError(f"portal flow must be None or one of {_PORTAL_FLOWS}, got {flow!r}")
    params: dict[str, Any] = {"customer": customer, "return_url": return_url}
    if configuration is not None:
        params["configuration"] = configuration
    if locale is not None:
        params["locale"] = locale
    return params


def _add_flow(params: dict[str, Any], flow: str, subscriptions: Any, return_url: str) -> None:
    """Deep-link to the plan page of the customer's active subscription; the home without one."""
    data = subscriptions.data
    if not data:
        return
    params["flow_data"] = {
        "type": flow,
        flow: {"subscription": str(data[0].id)},
        # Straight back once the plan changed, rather than to the portal's confirmation page.
        "after_completion": {"type": "redirect", "redirect": {"return_url": return_url}},
    }


class RefusedAnswer(SourceUnavailable):
    """The source answered for one customer, but not with something usable (a 4xx, a malformed list).

    Unlike an outage, it says nothing about the other customers: the resolver does not remember it
    as the source being down.
    """


class _Every:
    """Says yes at most once per ``seconds``: one log line per stretch of the same trouble, not
    one per request (a customer whose answer is refused is asked again on each of them)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = -math.inf

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now  # unlocked: two threads racing here log twice, which is harmless
        return True


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, sending a form body as ``content=``.

    The SDK hands httpx an encoded form as ``data=``, which httpx deprecates (a
    ``DeprecationWarning`` on every async POST, such as a portal session); ``content=`` is the
    same bytes on the wire.
    """

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), (str, bytes)):
            kwargs["content"] = kwargs.pop("data")
        return args, kwargs


class _Deadline(threading.local):
    """The monotonic time the fetch running in this thread must end by (None: no fetch)."""

    at: float | None = None

    def start(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def clear(self) -> None:
        self.at = None

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


class _DeadlineClient(stripe.RequestsClient):
    """The SDK's requests client, bounded by the deadline of the fetch running in the thread.

    ``requests``' own timeout bounds each socket read, so an answer that trickles in a byte at a
    time could last for ever: the body is read here, a chunk at a time, checking the deadline.
    """

    def __init__(self, deadline: _Deadline, timeout: float, *, async_fallback_client: stripe.HTTPClient) -> None:
        self._fetch_deadline = deadline
        self._total = timeout
        super().__init__(async_fallback_client=async_fallback_client)

    @property
    def _timeout(self) -> float:
        # Read by the SDK for each connect and socket read: what is left of this thread's deadline.
        at = self._fetch_deadline.at
        return self._total if at is None else max(at - time.monotonic(), 0.001)

    @_timeout.setter
    def _timeout(self, value: object) -> None:
        pass  # RequestsClient.__init__ sets one fixed timeout; the deadline decides instead

    def _sleep_time_seconds(self, num_retries: int) -> float:
        # The SDK's back-off before a retry (0.5 s and up) must not carry a fetch past its end.
        sleep: float = super()._sleep_time_seconds(num_retries)
        at = self._fetch_deadline.at
        return sleep if at is None else max(min(sleep, at - time.monotonic()), 0.0)

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        at = self._fetch_deadline.at
        if at is None:  # a call of the client outside fetch: each request gets the whole timeout
            at = time.monotonic() + self._total
        if at <= time.monotonic():
            raise stripe.APIConnectionError(_TIMED_OUT, should_retry=False)  # type: ignore[no-untyped-call]
        response, status, response_headers = self.request_stream(method, url, headers, post_data)
        chunks: list[bytes] = []
        complete = False
        try:
            read = getattr(response, "read1", None) or response.read
            while True:
                if time.monotonic() >= at:
                    raise stripe.APIConnectionError(_TIMED_OUT, should_retry=False)  # type: ignore[no-untyped-call]
                chunk = read(_CHUNK, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
            complete = True
        except stripe.APIConnectionError:
            raise
        except Exception as error:
            if isinstance(error, urllib3.exceptions.HTTPError):  # cut off mid-body: retryable, as requests' own
                error = self.requests.exceptions.ConnectionError(error)
            self._handle_request_error(error)
        finally:
            if not complete:
                response.close()  # half read: the connection must not go back to the pool
            response.release_conn()
        return b"".join(chunks), status, response_headers


class _Pages:
    """The paging decisions both twins share: the next request, the keys so far, when to stop."""

    __slots__ = ("count", "customer", "done", "keys", "params", "refusals")

    def __init__(self, customer: str, refusals: _Every) -> None:
        self.customer = customer
        self.refusals = refusals
        self.keys: set[str] = set()
        self.params: dict[str, Any] = {"customer": customer, "limit": _PAGE_SIZE}
        self.count = 0
        self.done = False

    @property
    def first(self) -> bool:
        """Whether no page has been read yet."""
        return self.count == 0

    def take(self, page: Any) -> None:
        """Add a page's lookup_keys; raise :class:`RefusedAnswer` for one that cannot be right."""
        self.count += 1
        last = None
        for entitlement in page.data:
            key = entitlement.lookup_key
            if not isinstance(key, str) or not key:
                self._malformed(f"an active entitlement has lookup_key {key!r}, not a non-empty string")
            self.keys.add(key)
            last = entitlement.id
        if not page.has_more:
            self.done = True
            return
        if last is None or last == self.params.get("starting_after"):
            self._malformed("the list says has_more but its cursor does not advance")
        if self.count >= _MAX_PAGES:
            self._malformed(f"the list still says has_more after {_MAX_PAGES} pages")
        self.params["starting_after"] = last

    def _malformed(self, problem: str) -> NoReturn:
        if self.refusals.due():
            logger.error("entitlegate: Stripe's answer for customer %r cannot be used: %s", self.customer, problem)
        raise RefusedAnswer(
            f"Stripe's answer for customer {self.customer!r} cannot be used: {problem}", customer=self.customer
        )


class _RedactKeys(logging.Filter):
    """Blanks Stripe keys in the ``stripe`` SDK's log records (its debug lines quote answers, and
    Stripe's answer to a wrong key quotes part of it), so turning that logger up cannot leak one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _KEY_IN_TEXT.search(message):
            record.msg, record.args = _KEY_IN_TEXT.sub("[a Stripe key, not shown]", message), None
        return True


_KEY_IN_TEXT = re.compile(r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z*]+|whsec_[0-9A-Za-z*]+")
logging.getLogger("stripe").addFilter(_RedactKeys())


def _is_duplicate_identifier(error: stripe.StripeError) -> bool:
    # Stripe's refusal of an identifier it has already taken (within its 24 h window): the event
    # was counted once, which is what a retry wants.
    return isinstance(error, stripe.InvalidRequestError) and error.code == "duplicate_meter_event"


def _is_unknown_customer(error: stripe.StripeError) -> bool:
    # Stripe's 404 for an unknown customer: code resource_missing, param "customer",
    # "No such customer: 'cus_…'". A 404 about anything else is not that customer's absence.
    return (
        isinstance(error, stripe.InvalidRequestError)
        and error.http_status == 404
        and error.code == "resource_missing"
        and error.param == "customer"
    )


async def _close_at_shutdown(client: stripe.StripeClient) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await _close_async(client)


async def _close_async(client: stripe.StripeClient) -> None:
    http_client = client._requestor._client  # the SDK exposes no public close on StripeClient
    if http_client is not None:
        await http_client.close_async()  # type: ignore[no-untyped-call]


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
        self.meter_events: list[MeterEvent] = []  # every event sent, in order, once per identifier
        self._meter_identifiers: set[str] = set()  # theirs, so a repeat is found without a scan

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

    # -- usage meters (entitlegate._meters.UsageSource), in memory ---------------------------------

    def send_meter_event(self, event: MeterEvent) -> None:
        """Keep ``event``; one whose identifier is already kept is taken once, as Stripe does."""
        if event.identifier not in self._meter_identifiers:
            self._meter_identifiers.add(event.identifier)
            self.meter_events.append(event)

    def meter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """The sum of the kept events of ``customer`` on ``event_name`` in ``[start, end)``."""
        return sum(
            e.value
            for e in self.meter_events
            if e.customer == customer and e.event_name == event_name and start <= e.timestamp < end
        )

    def billing_period(self, customer: str) -> tuple[int, int] | None:
        """Always ``None``: a static source has no subscriptions (the engine uses the calendar month)."""
        return None

    async def asend_meter_event(self, event: MeterEvent) -> None:
        """Async twin of :meth:`send_meter_event`."""
        self.send_meter_event(event)

    async def ameter_total(self, customer: str, event_name: str, start: int, end: int) -> int:
        """Async twin of :meth:`meter_total`."""
        return self.meter_total(customer, event_name, start, end)

    async def abilling_period(self, customer: str) -> tuple[int, int] | None:
        """Async twin of :meth:`billing_period`."""
        return None


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
