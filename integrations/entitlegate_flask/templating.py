"""The Jinja globals ``has_feature(name)``, ``features`` and ``limit(name)``: checks that never break a page.

All are lazy (nothing is fetched for a template that does not use them), read the request's
:data:`~entitlegate_flask.current.current_entitlements` with ``@requires_feature``, and in an
outage answer as ``ENTITLEGATE_ON_UNAVAILABLE`` says (False / no features / the default under
``"raise"``), through its ``safe_*`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import has_request_context
from werkzeug.local import LocalProxy

from entitlegate.catalog import Limit
from entitlegate_flask.current import request_entitlements

__all__ = ["TEMPLATE_GLOBALS", "features", "has_feature", "limit"]


def has_feature(lookup_key: str) -> bool:
    """``{% if has_feature("seats-feature") %}``: whether this request's customer holds the feature.

    False without a request, without a customer, or in an outage (True under ``"allow"``).
    """
    if not has_request_context():
        return False
    return request_entitlements().safe_has_feature(lookup_key)


def limit(name: str, default: Limit = 0) -> Limit:
    """``{{ limit("seats") }}``: this request's customer's limit ``name`` (``inf`` for ``"unlimited"``).

    ``default`` without a request, without a customer, when none of the customer's features
    carries the limit, or in an outage: a page shows no number rather than break.
    """
    if not has_request_context():
        return default
    return request_entitlements().safe_limit(name, default)


def _current_features() -> frozenset[str]:
    if not has_request_context():
        return frozenset()
    return request_entitlements().safe_features()


#: ``{% for key in features %}`` / ``{% if "x" in features %}``: this request's customer's
#: lookup_keys, read when the template first uses them; empty without a customer or in an outage.
features: LocalProxy[frozenset[str]] = LocalProxy(_current_features)

#: What ``init_app`` adds to the app's Jinja globals, by name.
TEMPLATE_GLOBALS: Mapping[str, Callable[..., object]] = {
    "has_feature": has_feature,
    "features": features,
    "limit": limit,
}
