"""The Jinja globals ``has_feature(name)`` and ``features``: checks that never break a page.

Both are lazy (nothing is fetched for a template that does not use them), share the request's
memo with ``@requires_feature``, and in an outage answer as ``ENTITLEGATE_ON_UNAVAILABLE`` says
(False / no features under ``"raise"``), through ``entitlegate.gate``'s ``safe_*`` functions.
"""

from __future__ import annotations

from flask import has_request_context
from werkzeug.local import LocalProxy

from entitlegate.gate import safe_features, safe_has_feature
from entitlegate_flask import per_request

__all__ = ["features", "has_feature"]


def has_feature(lookup_key: str) -> bool:
    """``{% if has_feature("seats-feature") %}``: whether this request's customer holds the feature.

    False without a request, without a customer, or in an outage (True under ``"allow"``).
    """
    if not has_request_context():
        return False
    answers = per_request.current()
    return safe_has_feature(answers, answers.customer, lookup_key)


def _current_features() -> frozenset[str]:
    if not has_request_context():
        return frozenset()
    answers = per_request.current()
    return safe_features(answers, answers.customer)


#: ``{% for key in features %}`` / ``{% if "x" in features %}``: this request's customer's
#: lookup_keys, read when the template first uses them; empty without a customer or in an outage.
features: LocalProxy[frozenset[str]] = LocalProxy(_current_features)
