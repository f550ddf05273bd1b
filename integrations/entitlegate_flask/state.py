"""What ``init_app`` keeps for one app in ``app.extensions["entitlegate"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

from entitlegate import Resolver, WebhookHandler

if TYPE_CHECKING:
    from entitlegate_flask.extension import Entitlements

EXTENSION_KEY = "entitlegate"


@dataclass(frozen=True, slots=True)
class State:
    """One app's entitlegate objects, built from its config by :meth:`Entitlements.init_app`.

    ``resolver`` answers every check in the app (hand it to
    ``entitlegate.testing.override_features`` in tests); ``webhook`` is None when
    ``ENTITLEGATE_WEBHOOK_URL`` is None. Holds no secret in its repr.
    """

    extension: Entitlements
    resolver: Resolver
    webhook: WebhookHandler | None
    webhook_url: str | None
    login_view: str | None


def state_of(app: Flask) -> State:
    """The app's :class:`State`; ``RuntimeError`` when the extension was never set up on it."""
    try:
        state: State = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "entitlegate_flask is not set up on this app: call Entitlements(app) or entitlements.init_app(app)"
        ) from None
    return state
