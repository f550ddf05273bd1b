"""Stripe cannot send a CSRF token: the webhook is exempt from Flask-WTF's CSRFProtect.

Needs Flask-WTF (a test-only dependency); skipped where it is not installed.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from entitlegate_flask import Entitlements
from tests.flask.conftest import AppFactory, header_customer
from tests.stripe_events import signed, summary_event

csrf_module = pytest.importorskip("flask_wtf.csrf")


def add_form_route(app: Flask) -> None:
    @app.post("/form")
    def form() -> str:  # pragma: no cover - CSRF rejects every post in these tests
        return "posted"


def test_webhook_is_exempt_when_csrf_protect_was_set_up_first(config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.config.update(config, SECRET_KEY="test")
    csrf_module.CSRFProtect(app)
    add_form_route(app)
    entitlements = Entitlements(app)
    entitlements.customer_loader(header_customer)
    body, signature = signed(summary_event("cus_1", ["seats-feature"]))
    client = app.test_client()
    assert client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": signature}).status_code == 200
    assert client.post("/form").status_code == 400  # CSRF is on for everything else


def test_webhook_is_exempt_when_csrf_protect_is_set_up_after(make_app: AppFactory) -> None:
    app = make_app(SECRET_KEY="test")
    add_form_route(app)
    csrf_module.CSRFProtect(app)
    body, signature = signed(summary_event("cus_1", ["seats-feature"]))
    client = app.test_client()
    assert client.post("/stripe/webhook", data=body, headers={"Stripe-Signature": signature}).status_code == 200
    assert client.post("/form").status_code == 400
