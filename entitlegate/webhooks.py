"""How cached answers change: Stripe webhook events, verified and applied in order."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import stripe

from entitlegate._values import read_webhook_secret
from entitlegate.errors import CacheUnavailable, InvalidPayload, InvalidSignature, SourceUnavailable
from entitlegate.resolver import Resolver

_count_webhook: Callable[[str], None] | None
try:  # the otel extra: webhook results by action
    from entitlegate.metrics import webhook_handled
except ImportError:
    _count_webhook = None
else:
    _count_webhook = webhook_handled

__all__ = ["HANDLED_EVENTS", "SUMMARY_UPDATED", "WebhookAnswer", "WebhookHandler", "WebhookResult"]

logger = logging.getLogger("entitlegate")

SUMMARY_UPDATED = "entitlements.active_entitlement_summary.updated"
_CUSTOMER_DELETED = "customer.deleted"
_THIN_EVENT = "v2.core.event"
_SUBSCRIPTION_PREFIX = "customer.subscription."
# Events and subscription statuses that say the customer's access may have ended: the old set
# must not be served through an outage any more. past_due keeps access while Stripe retries.
_ENDED_EVENTS = frozenset({"customer.subscription.deleted", "customer.subscription.paused"})
_ENDED_STATUSES = frozenset({"canceled", "incomplete_expired", "unpaid", "paused"})
_REMEMBERED_EVENTS = 10_000
# What an endpoint must send for the cache to stay true (`entitlegate webhook setup` subscribes
# to exactly these, `webhook check` compares with them): the summary, a deleted customer, and
# every subscription event Stripe has, which _parse takes by their prefix.
HANDLED_EVENTS: tuple[str, ...] = (
    SUMMARY_UPDATED,
    _CUSTOMER_DELETED,
    *(
        _SUBSCRIPTION_PREFIX + name
        for name in (
            "created",
            "deleted",
            "paused",
            "pending_update_applied",
            "pending_update_expired",
            "resumed",
            "trial_will_end",
            "updated",
        )
    ),
)

Action = Literal["applied", "invalidated", "ignored", "stale", "duplicate"]


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What a webhook did. ``customer`` is None when the event names none."""

    event_id: str
    event_type: str
    customer: str | None
    action: Action


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """The HTTP answer every adapter gives a webhook delivery: a status and a JSON body.

    200 ``{"event_id", "event_type", "customer", "action"}`` when the event was handled (applied,
    invalidated, ignored, stale or duplicate); 400 ``{"error": "invalid_signature" |
    "invalid_payload", "message"}`` for a bad delivery; 503 ``{"error": "source_unavailable",
    "message"}`` when it could not be applied now, so Stripe delivers it again.
    """

    status: int
    body: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class _Event:
    """The parts of a Stripe event entitlegate acts on, checked for shape and type."""

    id: str
    type: str
    created: int
    livemode: bool | None
    account: str | None  # the connected account the event happened in (Connect), or None
    customer: str | None
    lookup_keys: frozenset[str] | None  # the set the event says the customer holds, if it says
    truncated: bool  # a summary event whose list says has_more (Stripe sends at most 10)
    ended: bool  # an invalidating event that says access may have ended


class WebhookHandler:
    """Verifies Stripe webhooks and applies them to a resolver's cache.

    ``entitlements.active_entitlement_summary.updated`` replaces the customer's set (re-fetched
    from the source when the event's list is truncated); ``customer.deleted`` replaces it with the
    empty set; ``customer.subscription.*`` invalidate the customer, and one that says access may
    have ended (``deleted``, ``paused``, or a status of ``canceled``, ``incomplete_expired``,
    ``unpaid`` or ``paused``) also ends the stale fallback: in an outage ``on_unavailable``
    answers rather than the old set. Other events are ignored, and so are an event whose livemode
    differs from the source's and one from another Stripe account than the source's
    ``stripe_account`` (a connected account's event carries ``account``; the platform's does not).
    An event older than the cached entry is ``stale`` and changes nothing; an event id seen before
    is a ``duplicate``. A thin event (``v2.core.event``) is verified and ignored.

    Raises :class:`~entitlegate.InvalidSignature` or :class:`~entitlegate.InvalidPayload` for
    any bad input (adapters answer 400), :class:`~entitlegate.SourceUnavailable` when a truncated
    event cannot be re-fetched, and :class:`~entitlegate.CacheUnavailable` when a shared cache
    could not take the change (adapters answer 503 to both, so Stripe delivers it again).
    Thread-safe.
    """

    def __init__(self, resolver: Resolver, secret: str, *, tolerance: int = 300) -> None:
        # The same check the Django and Flask settings make; the message never quotes the secret.
        self._secret = read_webhook_secret(secret, "WebhookHandler secret")
        # The SDK reads a tolerance of 0 as "no age check", which would accept a replay of any
        # delivery ever signed with this secret.
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            raise ValueError(f"WebhookHandler tolerance must be a whole number of seconds > 0, got {tolerance!r}")
        self.resolver = resolver
        self.tolerance = tolerance
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebhookHandler({self.resolver!r}, tolerance={self.tolerance})"

    def handle(self, payload: bytes | str, signature_header: str | None) -> WebhookResult:
        """Verify and apply one webhook delivery."""
        event = self._read(payload, signature_header)
        action = self._screen(event)
        if action is None:
            assert event.customer is not None
            if event.lookup_keys is None:
                self.resolver.invalidate(event.customer, ended=event.ended)
                action = "invalidated"
            else:
                complete = not event.truncated
                applied = self.resolver.apply_event(event.customer, event.lookup_keys, event.created, complete=complete)
                action = "applied" if applied else "stale"
        return self._finish(event, action)

    async def ahandle(self, payload: bytes | str, signature_header: str | None) -> WebhookResult:
        """Async twin of :meth:`handle`."""
        event = self._read(payload, signature_header)
        action = self._screen(event)
        if action is None:
            assert event.customer is not None
            if event.lookup_keys is None:
                await self.resolver.ainvalidate(event.customer, ended=event.ended)
                action = "invalidated"
            else:
                complete = not event.truncated
                applied = await self.resolver.aapply_event(
                    event.customer, event.lookup_keys, event.created, complete=complete
                )
                action = "applied" if applied else "stale"
        return self._finish(event, action)

    def respond(self, payload: bytes | str, signature_header: str | None) -> WebhookAnswer:
        """:meth:`handle` as an HTTP answer, for web adapters; never raises for a delivery."""
        try:
            return _answer(self.handle(payload, signature_header))
        except Exception as error:
            return _answer_error(error)

    async def arespond(self, payload: bytes | str, signature_header: str | None) -> WebhookAnswer:
        """Async twin of :meth:`respond`."""
        try:
            return _answer(await self.ahandle(payload, signature_header))
        except Exception as error:
            return _answer_error(error)

    # -- decisions both twins share ---------------------------------------------------------------

    def _read(self, payload: bytes | str, signature_header: str | None) -> _Event:
        _verify(payload, signature_header, self._secret, self.tolerance)
        return _parse(payload)

    def _screen(self, event: _Event) -> Action | None:
        """The action for an event that needs no cache work, or None when it needs some."""
        with self._seen_lock:
            if event.id in self._seen:
                return "duplicate"
        if event.customer is None:
            return "ignored"
        livemode = self.resolver.livemode
        if livemode is not None and event.livemode is not None and event.livemode != livemode:
            return "ignored"
        # A Connect endpoint receives every connected account's events, each naming its account;
        # a customer id means something only in its own account.
        if event.account != self.resolver.stripe_account:
            return "ignored"
        return None

    def _finish(self, event: _Event, action: Action) -> WebhookResult:
        # Remembered only once handled: an event that failed half-way (a 503) must apply when
        # Stripe delivers it again.
        if action != "duplicate":
            with self._seen_lock:
                self._seen[event.id] = None
                if len(self._seen) > _REMEMBERED_EVENTS:
                    self._seen.popitem(last=False)
        if _count_webhook is not None:
            _count_webhook(action)
        return WebhookResult(event.id, event.type, event.customer, action)


def _answer(result: WebhookResult) -> WebhookAnswer:
    body: dict[str, str | None] = {
        "event_id": result.event_id,
        "event_type": result.event_type,
        "customer": result.customer,
        "action": result.action,
    }
    return WebhookAnswer(200, body)


def _answer_error(error: Exception) -> WebhookAnswer:
    # The messages name the problem and the event id, never the secret.
    if isinstance(error, (InvalidSignature, InvalidPayload)):
        code = "invalid_signature" if isinstance(error, InvalidSignature) else "invalid_payload"
        logger.warning("Stripe webhook refused (400 %s): %s", code, error)
        return WebhookAnswer(400, {"error": code, "message": str(error)})
    if isinstance(error, (SourceUnavailable, CacheUnavailable)):
        logger.warning("Stripe webhook not applied (503; Stripe will deliver it again): %s", error)
    else:
        # A bug of ours or a cache's must not become a 500 that Stripe gives up on: 503 is retried.
        logger.error("Stripe webhook failed (503; Stripe will deliver it again)", exc_info=error)
    return WebhookAnswer(503, {"error": "source_unavailable", "message": "the event could not be applied now"})


def _verify(payload: bytes | str, signature_header: str | None, secret: str, tolerance: int) -> None:
    """Check the ``Stripe-Signature`` header with the stripe SDK; raise InvalidSignature/Payload."""
    if not isinstance(payload, (bytes, bytearray, str)):
        raise InvalidPayload(f"webhook body must be bytes, not {type(payload).__name__}")
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPayload("webhook body is not UTF-8 text") from None
    if not isinstance(signature_header, str) or not signature_header.strip():
        raise InvalidSignature("missing Stripe-Signature header")
    if not signature_header.isascii():
        raise InvalidSignature("malformed Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError as error:
        raise InvalidSignature(f"Stripe-Signature check failed: {error.user_message or error}") from None
    except (ValueError, TypeError, OverflowError):
        raise InvalidSignature("malformed Stripe-Signature header") from None


def _parse(payload: bytes | str) -> _Event:
    """Read a verified body as a Stripe snapshot event; raise InvalidPayload for anything else."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise InvalidPayload("webhook body is not JSON") from None
    if not isinstance(data, dict) or data.get("object") not in ("event", _THIN_EVENT):
        raise InvalidPayload("webhook body is not a Stripe event (object is neither 'event' nor 'v2.core.event')")
    event_id = _field(data, "id", str, "event")
    event_type = _field(data, "type", str, event_id)
    if data["object"] == _THIN_EVENT:
        # A thin event (an event destination's) names no set, only an object to fetch; answered
        # 200 "ignored", since anything but a 2xx has Stripe retry it for days.
        return _Event(event_id, event_type, 0, None, None, None, None, False, False)
    created = _field(data, "created", int, event_id)
    if not 0 <= created < 2**53:
        raise InvalidPayload(f"event {event_id}: created is not a Unix time")
    livemode = data.get("livemode")
    if livemode is not None and not isinstance(livemode, bool):
        raise InvalidPayload(f"event {event_id}: livemode must be a boolean")
    account = data.get("account")
    if account is not None:
        account = _field(data, "account", str, event_id)
    body = _field(data, "data", dict, event_id)
    obj = _field(body, "object", dict, event_id)
    customer: str | None = None
    lookup_keys: frozenset[str] | None = None
    truncated = ended = False
    if event_type == SUMMARY_UPDATED:
        customer = _customer_id(obj.get("customer"), event_id)
        listing = _field(obj, "entitlements", dict, event_id)
        entries = _field(listing, "data", list, event_id)
        if not all(isinstance(entry, dict) and _is_key(entry.get("lookup_key")) for entry in entries):
            raise InvalidPayload(f"event {event_id}: every entitlement needs a string lookup_key")
        for entry in entries:
            _utf8(entry["lookup_key"], "a lookup_key", event_id)
        lookup_keys = frozenset(entry["lookup_key"] for entry in entries)
        has_more = listing.get("has_more", False)
        if not isinstance(has_more, bool):
            raise InvalidPayload(f"event {event_id}: entitlements.has_more must be a boolean")
        truncated = has_more
    elif event_type == _CUSTOMER_DELETED:
        # A deleted customer holds nothing, and Stripe will never say otherwise: the empty set,
        # fresh, so an outage cannot bring the old set back.
        customer = _customer_id(obj.get("id"), event_id)
        lookup_keys = frozenset()
    elif event_type.startswith(_SUBSCRIPTION_PREFIX):
        customer = _customer_id(obj.get("customer"), event_id)
        ended = event_type in _ENDED_EVENTS or obj.get("status") in _ENDED_STATUSES
    return _Event(event_id, event_type, created, livemode, account, customer, lookup_keys, truncated, ended)


def _field(obj: dict[str, Any], name: str, kind: type, event_id: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value):
        raise InvalidPayload(f"{event_id}: {name!r} must be a {kind.__name__}")
    if isinstance(value, str):
        _utf8(value, repr(name), event_id)
    return value


def _utf8(value: str, what: str, event_id: str) -> None:
    # JSON can escape a lone surrogate ("\ud800"), which no UTF-8 text holds: a cache that stores
    # text could never take it, and a 503 would have Stripe redeliver it for days.
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidPayload(f"event {event_id[:64]!r}: {what} is not UTF-8 text (a lone surrogate)") from None


def _is_key(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _customer_id(value: object, event_id: str) -> str:
    # An expanded customer arrives as an object; a plain id as a string.
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"event {event_id}: no customer id")
    _utf8(value, "the customer id", event_id)
    return value
