"""Flask extension: gate views on the Stripe entitlements a customer holds.

``Entitlements(app)`` (or ``init_app(app)`` in an app factory; also named
``EntitlementsExtension``) reads the ``ENTITLEGATE_*`` config keys;
``@requires_feature("lookup_key")``, ``@requires_limit("seats", need)`` and
``@requires_usage("exports", limit="exports")`` gate a view; the Jinja globals ``has_feature(name)``,
``features`` and ``limit(name)`` answer in templates; ``current_entitlements`` is the request's own
:class:`entitlegate.entitlements.Entitlements`; and a blueprint at ``ENTITLEGATE_WEBHOOK_URL``
keeps the cache true from Stripe's webhooks.
"""

try:
    import flask  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised by a test that hides Flask
    raise ImportError('entitlegate_flask needs Flask: pip install "entitlegate[flask]"') from error

from entitlegate_flask.current import current_entitlements
from entitlegate_flask.extension import Entitlements, EntitlementsExtension
from entitlegate_flask.gating import requires_feature, requires_limit, requires_usage
from entitlegate_flask.portal import portal_redirect

__all__ = [
    "Entitlements",
    "EntitlementsExtension",
    "current_entitlements",
    "portal_redirect",
    "requires_feature",
    "requires_limit",
    "requires_usage",
]
