"""A small Flask app gated by entitlegate_flask, talking to the fake Stripe through the real SDK.

The customer comes from an ``X-Customer`` header, so a test says who is asking per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, render_template_string, request

from entitlegate_flask import Entitlements, requires_feature
from tests.fake_stripe import FakeStripe
from tests.stripe_events import SECRET

AppFactory = Callable[..., Flask]

PAGE = (
    "seats={{ has_feature('seats-feature') }} sso={{ has_feature('sso') }} "
    "features={{ features|sort|join(',') }} count={{ features|length }}"
)


@pytest.fixture
def config(fake_stripe: FakeStripe) -> dict[str, Any]:
    """ENTITLEGATE_* keys for an app that reads the fake Stripe."""
    return {
        "TESTING": True,
        "ENTITLEGATE_STRIPE_API_KEY": fake_stripe.api_key,
        "ENTITLEGATE_STRIPE_API_BASE": fake_stripe.url,
        "ENTITLEGATE_WEBHOOK_SECRET": SECRET,
    }


def add_views(app: Flask) -> None:
    """The routes every test app has."""

    @app.get("/")
    def home() -> str:
        return "home"

    @app.get("/login", endpoint="login")
    def login() -> str:
        return "login page"

    @app.get("/seats")
    @requires_feature("seats-feature")
    def seats() -> str:
        return "seats"

    @app.get("/reports")
    @requires_feature(any_of=("analytics", "export"))
    def reports() -> str:
        return "reports"

    @app.get("/async-seats")
    @requires_feature("seats-feature")
    async def async_seats() -> str:
        return "async seats"

    @app.get("/page")
    def page() -> str:
        return render_template_string(PAGE)


def header_customer() -> str | None:
    """The customer loader of the test apps: the ``X-Customer`` header, if sent."""
    return request.headers.get("X-Customer")


@pytest.fixture
def make_app(config: dict[str, Any]) -> AppFactory:
    """``make_app(entitlements=None, **config_overrides)``: a configured app with the test routes.

    A config value of ``...`` removes that key.
    """

    def make(entitlements: Entitlements | None = None, **overrides: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(config)
        for key, value in overrides.items():
            if value is ...:
                app.config.pop(key, None)
            else:
                app.config[key] = value
        add_views(app)
        if entitlements is None:
            entitlements = Entitlements()
            entitlements.customer_loader(header_customer)
        entitlements.init_app(app)
        return app

    return make


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()
