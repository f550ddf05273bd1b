"""entitlegate for ASGI: pure middleware for any ASGI app, and Starlette/FastAPI helpers.

``EntitlementMiddleware``, ``Entitlements`` and ``webhook_app`` need nothing beyond entitlegate;
``requires_feature``, ``requires_limit``, ``requires_usage``, ``RequiresFeature``, ``RequiresLimit``
and ``RequiresUsage`` need Starlette
(``pip install "entitlegate[asgi]"``) and are imported when first used, so a plain ASGI app can do
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from entitlegate_asgi._entitlements import Entitlements
from entitlegate_asgi.middleware import EntitlementMiddleware
from entitlegate_asgi.portal import portal_upgrade
from entitlegate_asgi.webhooks import webhook_app

if TYPE_CHECKING:
    from entitlegate_asgi.decorators import requires_feature, requires_limit, requires_usage
    from entitlegate_asgi.dependencies import RequiresFeature, RequiresLimit, RequiresUsage

__all__ = [
    "EntitlementMiddleware",
    "Entitlements",
    "RequiresFeature",
    "RequiresLimit",
    "RequiresUsage",
    "portal_upgrade",
    "requires_feature",
    "requires_limit",
    "requires_usage",
    "webhook_app",
]

_NEED_STARLETTE = {
    "requires_feature": "entitlegate_asgi.decorators",
    "requires_limit": "entitlegate_asgi.decorators",
    "RequiresFeature": "entitlegate_asgi.dependencies",
    "RequiresLimit": "entitlegate_asgi.dependencies",
    "requires_usage": "entitlegate_asgi.decorators",
    "RequiresUsage": "entitlegate_asgi.dependencies",
}


def __getattr__(name: str) -> Any:
    # The Starlette helpers load on first use; without Starlette their modules raise an ImportError
    # that says which extra to install.
    module = _NEED_STARLETTE.get(name)
    if module is None:
        raise AttributeError(f"module 'entitlegate_asgi' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
