"""Flask extension: gate views on the Stripe entitlements a customer holds.

``Entitlements(app)`` (or ``init_app(app)`` in an app factory) reads the ``ENTITLEGATE_*`` config
keys, ``@requires_feature("lookup_key")`` gates a view, the Jinja globals ``has_feature(name)``
and ``features`` answer in templates, and a blueprint at ``ENTITLEGATE_WEBHOOK_URL`` keeps the
cache true from Stripe's webhooks.
"""

try:
    import flask  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised by a test that hides Flask
    raise ImportError('entitlegate_flask needs Flask: pip install "entitlegate[flask]"') from error

from entitlegate_flask.extension import Entitlements
from entitlegate_flask.gating import requires_feature
from entitlegate_flask.portal import portal_redirect

__all__ = ["Entitlements", "portal_redirect", "requires_feature"]
