"""Helpers for the tests of apps that use entitlegate: pinned features, and signed Stripe events."""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from entitlegate.resolver import Resolver

__all__ = [
    "customer_deleted_event",
    "override_features",
    "sign",
    "signed",
    "subscription_event",
    "summary_event",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C", bound=type)
_TEST_PREFIX = "test"  # the methods unittest's loader and pytest collect, as unittest.mock.patch wraps


class override_features:  # noqa: N801 - reads like Django's override_settings, which it mirrors
    """Pin customers' features on a resolver, as a context manager or a decorator.

    ``with override_features(resolver, {"cus_1": {"seats-feature"}}):`` makes every check for
    ``cus_1`` answer from the given set, without touching the source or the cache; other customers
    are answered as usual. Overrides nest (the inner one wins per customer) and are undone on exit.
    As a decorator it works on sync and async functions alike, and on a class: every method
    whose name starts with ``test`` runs inside the override (as ``unittest.mock.patch`` does, so
    ``setUp`` and fixtures run outside it); the class itself is returned, so unittest and pytest
    still find its tests. ``resolver`` may also be a zero-argument function returning the
    resolver, called on each entry (for frameworks that build theirs from settings).
    """

    def __init__(self, resolver: Resolver | Callable[[], Resolver], features: Mapping[str, Iterable[str]]) -> None:
        if not isinstance(resolver, Resolver) and not callable(resolver):
            raise TypeError(f"override_features needs a Resolver, got {type(resolver).__name__}")
        self._resolver = resolver
        self.features = {customer: frozenset(keys) for customer, keys in features.items()}
        self._entered: list[tuple[Resolver, dict[str, frozenset[str]]]] = []

    def __enter__(self) -> override_features:
        resolver = self._resolver if isinstance(self._resolver, Resolver) else self._resolver()
        previous = dict(resolver._overrides)
        self._entered.append((resolver, previous))
        resolver._set_overrides({**previous, **self.features})
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        resolver, previous = self._entered.pop()
        resolver._set_overrides(previous)

    def __call__(self, func: _F) -> _F:
        if isinstance(func, type):
            return self._decorate_class(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _decorate_class(self, cls: _C) -> _C:
        # Wrapping the class in a function (what the function path would do) hides its tests
        # from unittest and pytest: wrap each test method in place instead, inherited ones too.
        for name in dir(cls):
            if not name.startswith(_TEST_PREFIX):
                continue
            method = inspect.getattr_static(cls, name)
            if isinstance(method, (staticmethod, classmethod)):
                setattr(cls, name, type(method)(self(method.__func__)))
            elif inspect.isfunction(method):
                setattr(cls, name, self(method))
        return cls


# -- Stripe events, signed as Stripe signs them ---------------------------------------------------
# Shapes follow Stripe's API description (github stripe/openapi: the event, summary, subscription
# and deleted_customer objects, every field of its fixtures); only the fields entitlegate reads vary.


def summary_event(
    customer: str,
    lookup_keys: Iterable[str],
    *,
    has_more: bool = False,
    livemode: bool = False,
    created: int | None = None,
    event_id: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """An ``entitlements.active_entitlement_summary.updated`` event: ``customer`` holds ``lookup_keys``.

    A summary replaces the customer's whole set: list every feature they should hold.
    ``has_more=True`` says Stripe truncated the list (entitlegate then re-fetches the set).
    ``account`` makes it a connected account's event, as a Connect endpoint receives it (every
    builder takes it).
    """
    entitlements = [
        {
            "id": f"ent_test_{customer}_{index}",
            "object": "entitlements.active_entitlement",
            "feature": f"feat_test_{key}",
            "livemode": livemode,
            "lookup_key": key,
        }
        for index, key in enumerate(lookup_keys)
    ]
    summary = {
        "object": "entitlements.active_entitlement_summary",
        "customer": customer,
        "entitlements": {
            "object": "list",
            "data": entitlements,
            "has_more": has_more,
            "url": f"/v1/customer/{customer}/entitlements",
        },
        "livemode": livemode,
    }
    return _event("entitlements.active_entitlement_summary.updated", summary, livemode, created, event_id, account)


def subscription_event(
    customer: str,
    kind: str = "updated",
    *,
    status: str | None = None,
    livemode: bool = False,
    created: int | None = None,
    event_id: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """A ``customer.subscription.<kind>`` event for ``customer``'s subscription in ``status``.

    ``status`` defaults to what Stripe sends with ``kind``: ``canceled`` for ``deleted``,
    ``paused`` for ``paused``, else ``active``.

    entitlegate invalidates the customer for every one; a subscription deleted, paused or in an
    ended status (``canceled``, ``incomplete_expired``, ``unpaid``, ``paused``) also ends the
    stale fallback for the customer's old set.
    """
    moment = int(time.time()) if created is None else created
    if status is None:
        status = {"deleted": "canceled", "paused": "paused"}.get(kind, "active")
    ended = status in {"canceled", "incomplete_expired"}
    subscription: dict[str, Any] = {
        "id": "sub_test_1",
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": moment,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": moment if ended else None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": moment,
        "currency": "usd",
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": moment if ended else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_test_1",
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": moment,
                    "current_period_end": moment + 30 * 86400,
                    "current_period_start": moment,
                    "discounts": [],
                    "metadata": {},
                    "price": {
                        "id": "price_test_1",
                        "object": "price",
                        "active": True,
                        "billing_scheme": "per_unit",
                        "created": moment,
                        "currency": "usd",
                        "custom_unit_amount": None,
                        "livemode": livemode,
                        "lookup_key": None,
                        "metadata": {},
                        "nickname": None,
                        "product": "prod_test_1",
                        "recurring": {
                            "interval": "month",
                            "interval_count": 1,
                            "meter": None,
                            "trial_period_days": None,
                            "usage_type": "licensed",
                        },
                        "tax_behavior": "unspecified",
                        "tiers_mode": None,
                        "transform_quantity": None,
                        "type": "recurring",
                        "unit_amount": 2000,
                        "unit_amount_decimal": "2000",
                    },
                    "plan": {
                        "id": "price_test_1",
                        "object": "plan",
                        "active": True,
                        "amount": 2000,
                        "amount_decimal": "2000",
                        "billing_scheme": "per_unit",
                        "created": moment,
                        "currency": "usd",
                        "interval": "month",
                        "interval_count": 1,
                        "livemode": livemode,
                        "metadata": {},
                        "meter": None,
                        "nickname": None,
                        "product": "prod_test_1",
                        "tiers_mode": None,
                        "transform_usage": None,
                        "trial_period_days": None,
                        "usage_type": "licensed",
                    },
                    "quantity": 1,
                    "subscription": "sub_test_1",
                    "tax_rates": [],
                }
            ],
            "has_more": False,
            "url": "/v1/subscription_items?subscription=sub_test_1",
        },
        "latest_invoice": None,
        "livemode": livemode,
        "managed_payments": None,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": moment,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }
    return _event(f"customer.subscription.{kind}", subscription, livemode, moment, event_id, account)


def customer_deleted_event(
    customer: str,
    *,
    livemode: bool = False,
    created: int | None = None,
    event_id: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """A ``customer.deleted`` event: entitlegate leaves ``customer`` the empty set, even in an outage."""
    # Stripe's deleted_customer object is exactly these three fields.
    deleted = {"id": customer, "object": "customer", "deleted": True}
    return _event("customer.deleted", deleted, livemode, created, event_id, account)


def _event(
    event_type: str,
    obj: dict[str, Any],
    livemode: bool,
    created: int | None,
    event_id: str | None,
    account: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-07-29.dahlia",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account is not None:  # Stripe sets it on a connected account's event (a Connect endpoint's)
        event["account"] = account
    return event


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``body``: ``t=…,v1=<HMAC-SHA256>``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def signed(event: Mapping[str, Any], secret: str, *, timestamp: int | None = None) -> tuple[bytes, str]:
    """The body and ``Stripe-Signature`` header of a delivery of ``event``, for a test client."""
    body = json.dumps(event).encode()
    return body, sign(body, secret, timestamp=timestamp)
