"""With Flask-Login set up, a request without a customer is handled as Flask-Login would.

Needs Flask-Login (a test-only dependency); skipped where it is not installed.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory

flask_login = pytest.importorskip("flask_login")


class User(flask_login.UserMixin):
    def __init__(self, user_id: str, customer: str | None) -> None:
        self.id = user_id
        self.stripe_customer_id = customer


USERS = {"ada": User("ada", "cus_1"), "bob": User("bob", None)}


def make_login_app(make_app: AppFactory, **config: Any) -> tuple[Flask, Any]:
    entitlements = Entitlements()

    @entitlements.customer_loader
    def customer() -> str | None:
        user = flask_login.current_user
        return user.stripe_customer_id if user.is_authenticated else None

    app = make_app(entitlements, SECRET_KEY="test", **config)
    login_manager = flask_login.LoginManager(app)
    login_manager.login_view = "login"
    login_manager.user_loader(USERS.get)

    @app.get("/sign-in/<name>")
    def sign_in(name: str) -> str:
        flask_login.login_user(USERS[name])
        return "signed in"

    return app, login_manager


def test_anonymous_user_is_redirected_to_flask_logins_login_view(make_app: AppFactory) -> None:
    app, _ = make_login_app(make_app)
    response = app.test_client().get("/seats")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fseats"


def test_flask_logins_unauthorized_handler_is_honoured(make_app: AppFactory) -> None:
    app, login_manager = make_login_app(make_app)
    login_manager.unauthorized_handler(lambda: ("sign in first", 401))
    response = app.test_client().get("/seats")
    assert (response.status_code, response.text) == (401, "sign in first")


def test_signed_in_user_with_the_feature_is_let_through(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app, _ = make_login_app(make_app)
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = app.test_client()
    client.get("/sign-in/ada")
    assert client.get("/seats").status_code == 200


def test_signed_in_user_without_a_stripe_customer_is_forbidden_not_sent_to_login(make_app: AppFactory) -> None:
    app, _ = make_login_app(make_app)
    client = app.test_client()
    client.get("/sign-in/bob")
    assert client.get("/seats").status_code == 403


def test_entitlegate_login_view_takes_precedence(make_app: AppFactory) -> None:
    app, _ = make_login_app(make_app, ENTITLEGATE_LOGIN_VIEW="home")
    response = app.test_client().get("/seats")
    assert response.headers["Location"] == "/?next=/seats"
