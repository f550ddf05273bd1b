"""What ``init_app`` keeps for one app in ``app.extensions["entitlegate"]``: plain data, no behaviour.

This module is the package's leaf: every helper reads the app's state through ``current_app`` at
call time (as Flask-Login's helpers reach the login manager), and nothing here imports the
extension or anything else in the package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from entitlegate import Resolver, WebhookHandler
from entitlegate.entitlements import CustomerLookup

__all__ = ["EXTENSION_KEY", "CustomerLoader", "DeniedHandler", "Hooks", "State", "state_of"]

EXTENSION_KEY = "entitlegate"

CustomerLoader = Callable[[], object]
DeniedHandler = Callable[[str], Any]


@dataclass(slots=True)
class Hooks:
    """The site's callables, registered on the extension; shared by every app it serves.

    The extension registers into this one object, after ``init_app`` too (``@ext.customer_loader``
    usually follows ``Entitlements(app)``), so each app's :class:`State` sees the change.
    """

    customer_loader: CustomerLoader | None = None
    customer_loader_name: str = "the customer_loader"  # how log lines name it
    denied_handler: DeniedHandler | None = None


@dataclass(frozen=True, slots=True)
class State:
    """One app's entitlegate objects, built from its config by ``Entitlements.init_app``.

    ``resolver`` answers every check in the app (hand it to
    ``entitlegate.testing.override_features`` in tests); ``webhook`` is None when
    ``ENTITLEGATE_WEBHOOK_URL`` is None; ``extension`` is the ``Entitlements`` extension that set
    the app up, for a reader to find (helpers read ``hooks``, never the extension, so that this
    module names nothing above it). Holds no secret in its repr.
    """

    extension: object
    resolver: Resolver
    hooks: Hooks
    webhook: WebhookHandler | None
    webhook_url: str | None
    login_view: str | None
    #: The registered customer loader with this app's resolver, made on the first request it
    #: serves (``current.request_entitlements``) and shared by the app's requests after.
    lookups: dict[CustomerLoader, CustomerLookup] = field(default_factory=dict, repr=False, compare=False)


def state_of(app: Flask) -> State:
    """The app's :class:`State`; ``RuntimeError`` when the extension was never set up on it."""
    try:
        state: State = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "entitlegate_flask is not set up on this app: call Entitlements(app) or entitlements.init_app(app)"
        ) from None
    return state
