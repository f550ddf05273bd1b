"""ENTITLEGATE_LOGIN_VIEW: where a request without a customer goes, and what a wrong one says."""

from __future__ import annotations

import pytest
from flask import Flask

from entitlegate_flask import requires_feature
from tests.flask.conftest import AppFactory


def _add_localised_views(app: Flask) -> None:
    @app.get("/<lang>/login", endpoint="localised_login")
    def localised_login(lang: str) -> str:  # pragma: no cover - only redirected to
        return f"login ({lang})"

    @app.get("/<lang>/seats")
    @requires_feature("seats-feature")
    def localised_seats(lang: str) -> str:  # pragma: no cover - never reached without a customer
        return "seats"

    @app.get("/tenants/<tenant>/login", endpoint="tenant_login")
    def tenant_login(tenant: str) -> str:  # pragma: no cover - never reached
        return "login"


def test_a_login_view_with_url_values_gets_them_from_the_gated_request(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_LOGIN_VIEW="localised_login")
    _add_localised_views(app)

    response = app.test_client().get("/fr/seats")

    assert response.status_code == 302
    assert response.headers["Location"] == "/fr/login?next=/fr/seats"


def test_a_login_view_needing_values_the_request_lacks_says_which(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_LOGIN_VIEW="tenant_login")
    _add_localised_views(app)

    with pytest.raises(RuntimeError) as raised:
        app.test_client().get("/seats")

    message = str(raised.value)
    assert "ENTITLEGATE_LOGIN_VIEW is 'tenant_login'" in message
    assert "needs the URL value 'tenant'" in message
    assert "not an endpoint" not in message
