"""``request.entitlements``: the request's customer and features, looked up only when asked.

One object per request (:class:`entitlegate.entitlements.Entitlements`, bound to the request and
the ``CUSTOMER`` function) serves the middleware's rules, the decorators, the mixin, the template
filters and the context processor alike, so a request calls ``CUSTOMER`` once and asks Stripe once
however many checks it makes, an outage included.
"""

from __future__ import annotations

from django.http import HttpRequest

from entitlegate import entitlements
from entitlegate_django.conf import Config, current

__all__ = ["Entitlements", "entitlements_of"]

_Core = entitlements.Entitlements


class Entitlements(_Core):
    """The Stripe entitlements of one request's customer. Nothing is fetched until something asks.

    ``customer`` is the ``CUSTOMER`` function's answer (:func:`entitlegate.gate.read_customer`'s
    rule: a blank or non-string answer, or a function that raises, is logged and means no
    customer; ``Http404`` and ``PermissionDenied`` pass through to Django); ``features`` the
    customer's lookup_keys (empty without a customer) and raises :class:`~entitlegate.SourceUnavailable`
    in an outage, which :class:`~entitlegate_django.middleware.EntitlementMiddleware` answers with a
    503; ``has_feature`` (and ``in``) answers as ``ON_UNAVAILABLE`` says; ``limit(name)`` is the
    customer's limit from Feature metadata. In async views use the ``a``-prefixed twins, which
    never block the event loop (a ``CUSTOMER`` that touches the database runs in a worker thread).
    """

    __slots__ = ()

    def __init__(self, request: HttpRequest, config: Config) -> None:
        # The gated path makes one with for_request(config.lookup, request), which skips this.
        lookup = config.lookup
        _Core.__init__(self, lookup.resolver, lookup.customer, lookup.acustomer, lookup.where, lookup.reraise, request)


def entitlements_of(request: HttpRequest, config: Config | None = None) -> Entitlements:
    """The request's :class:`Entitlements`: the middleware's, or one made now and kept on the request.

    So a site without :class:`~entitlegate_django.middleware.EntitlementMiddleware` still looks its
    customer up once per request, however many decorators and template checks read it.
    """
    found = request.__dict__.get("entitlements")
    if isinstance(found, Entitlements):
        return found
    made = _for_request((current() if config is None else config).lookup, request)
    if found is None:
        request.entitlements = made  # type: ignore[attr-defined]
    return made


_for_request = Entitlements.for_request  # read once: a classmethod through its class is a new bound method
