"""The exceptions entitlegate raises. Every one subclasses :class:`EntitlegateError`."""

from __future__ import annotations

__all__ = ["CacheUnavailable", "EntitlegateError", "InvalidPayload", "InvalidSignature", "SourceUnavailable"]


class EntitlegateError(Exception):
    """Base class of every error entitlegate raises on purpose."""


class SourceUnavailable(EntitlegateError):
    """The source of entitlements (Stripe) could not answer, and no usable cached answer exists.

    Raised for network errors, timeouts, Stripe 5xx and 429 answers, and for authentication or
    permission errors: a rejected key is an outage of the source, never an empty set of features.
    Web adapters turn it into HTTP 503 (or the configured ``on_unavailable`` policy).
    """

    def __init__(self, message: str, *, customer: str | None = None) -> None:
        super().__init__(message)
        self.customer = customer


class InvalidSignature(EntitlegateError):
    """A webhook's ``Stripe-Signature`` header is missing, malformed, wrong, or too old."""


class InvalidPayload(EntitlegateError):
    """A webhook's body is not a Stripe event entitlegate can read."""


class CacheUnavailable(EntitlegateError):
    """A shared cache (Redis) could not take a change, which now holds in this process only.

    Raised for a webhook's change or an invalidation (a fetched answer is simply kept locally):
    other processes would go on answering from the old set, so the change must be made again.
    The webhook adapters answer 503, and Stripe delivers the event again.
    """
