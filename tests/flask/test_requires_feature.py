"""@requires_feature: who gets through, and how every kind of denial is answered."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, abort, render_template_string
from flask.views import MethodView

from entitlegate_flask import Entitlements, requires_feature
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer


def test_customer_with_the_feature_sees_the_view(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert (response.status_code, response.text) == (200, "seats")


def test_customer_without_the_feature_is_forbidden(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 403


def test_customer_stripe_does_not_know_is_forbidden(app: Flask, fake_stripe: FakeStripe) -> None:
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_unknown"})
    assert response.status_code == 403


def test_any_of_lets_a_customer_with_one_of_them_through(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["export"])
    fake_stripe.set_customer("cus_2", ["seats-feature"])
    client = app.test_client()
    assert client.get("/reports", headers={"X-Customer": "cus_1"}).status_code == 200
    assert client.get("/reports", headers={"X-Customer": "cus_2"}).status_code == 403


def test_every_listed_feature_is_needed(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app = make_app()

    @app.get("/both")
    @requires_feature("seats-feature", "sso")
    def both() -> str:
        return "both"

    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", ["seats-feature", "sso"])
    client = app.test_client()
    assert client.get("/both", headers={"X-Customer": "cus_1"}).status_code == 403
    assert client.get("/both", headers={"X-Customer": "cus_2"}).status_code == 200


def test_request_without_customer_is_unauthorized(app: Flask, fake_stripe: FakeStripe) -> None:
    response = app.test_client().get("/seats")
    assert response.status_code == 401
    assert fake_stripe.calls() == 0


def test_empty_customer_id_counts_as_no_customer(app: Flask) -> None:
    response = app.test_client().get("/seats", headers={"X-Customer": ""})
    assert response.status_code == 401


def test_request_without_customer_is_redirected_to_the_login_view(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_LOGIN_VIEW="login")
    response = app.test_client().get("/seats?tab=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/seats?tab%3D2"


def test_login_view_that_is_not_an_endpoint_says_which_setting_is_wrong(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_LOGIN_VIEW="no_such_view")
    with pytest.raises(RuntimeError, match="ENTITLEGATE_LOGIN_VIEW"):
        app.test_client().get("/seats")


def test_outage_answers_503(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 401  # a rejected key is an outage; the SDK does not retry it
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 503


def test_outage_under_deny_policy_is_a_denial(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app = make_app(ENTITLEGATE_ON_UNAVAILABLE="deny")
    fake_stripe.always_fail = 401
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 403


def test_outage_under_allow_policy_lets_the_request_through(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app = make_app(ENTITLEGATE_ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 401
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.status_code == 200


def test_outage_serves_the_last_known_set(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = app.test_client()
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    app.extensions["entitlegate"].resolver.invalidate("cus_1")
    fake_stripe.always_fail = 401
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200


def test_the_apps_own_error_handlers_render_denials(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[str, int]:
        return "upgrade to see this", 403

    @app.errorhandler(401)
    def unauthorized(error: Exception) -> tuple[str, int]:
        return "please sign in", 401

    @app.errorhandler(503)
    def unavailable(error: Exception) -> tuple[str, int]:
        return "try again soon", 503

    fake_stripe.set_customer("cus_1", [])
    client = app.test_client()
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).text == "upgrade to see this"
    assert client.get("/seats").text == "please sign in"
    fake_stripe.always_fail = 401
    assert client.get("/seats", headers={"X-Customer": "cus_2"}).text == "try again soon"


def test_denied_handler_answers_a_denial_naming_the_feature(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)

    @entitlements.denied_handler
    def upgrade(feature: str) -> tuple[str, int]:
        return f"upgrade for {feature}", 402

    app = make_app(entitlements)
    fake_stripe.set_customer("cus_1", [])
    client = app.test_client()
    seats = client.get("/seats", headers={"X-Customer": "cus_1"})
    reports = client.get("/reports", headers={"X-Customer": "cus_1"})
    assert (seats.status_code, seats.text) == (402, "upgrade for seats-feature")
    assert reports.text == "upgrade for analytics | export"


def test_denied_handler_may_be_async(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)

    @entitlements.denied_handler
    async def upgrade(feature: str) -> tuple[str, int]:
        return f"async upgrade for {feature}", 403

    app = make_app(entitlements)
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_1"})
    assert response.text == "async upgrade for seats-feature"


def test_denied_handler_is_not_used_without_a_customer_or_in_an_outage(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    entitlements.denied_handler(lambda feature: ("upgrade", 402))
    client = make_app(entitlements).test_client()
    assert client.get("/seats").status_code == 401
    fake_stripe.always_fail = 401
    assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 503


def test_ungated_routes_ask_neither_the_loader_nor_stripe(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    calls: list[str] = []
    entitlements = Entitlements()

    @entitlements.customer_loader
    def loader() -> str:
        calls.append("loader")
        return "cus_1"

    app = make_app(entitlements)
    fake_stripe.always_fail = 401
    response = app.test_client().get("/")
    assert (response.status_code, calls, fake_stripe.calls()) == (200, [], 0)


def test_a_request_loads_its_customer_and_features_once_however_many_checks(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    loads: list[str] = []
    entitlements = Entitlements()

    @entitlements.customer_loader
    def loader() -> str:
        loads.append("cus_1")
        return "cus_1"

    app = make_app(entitlements)

    @app.get("/dashboard")
    @requires_feature("seats-feature")
    @requires_feature(any_of=("analytics", "export"))
    def dashboard() -> str:
        return render_template_string("{{ has_feature('sso') }} {{ has_feature('analytics') }} {{ features|length }}")

    fake_stripe.set_customer("cus_1", ["seats-feature", "analytics"])
    resolver = app.extensions["entitlegate"].resolver
    response = app.test_client().get("/dashboard")
    stats = resolver.stats
    assert (response.status_code, response.text) == (200, "False True 2")
    assert (stats.hits + stats.misses, len(loads)) == (1, 1)


def test_an_outage_costs_one_trip_to_stripe_per_request(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    app = make_app()

    @app.get("/outage-page")
    def outage_page() -> str:
        return render_template_string("{{ has_feature('a') }} {{ has_feature('b') }} {{ features|length }}")

    fake_stripe.always_fail = 401
    client = app.test_client()
    assert client.get("/outage-page", headers={"X-Customer": "cus_1"}).text == "False False 0"
    assert fake_stripe.calls() == 1


def test_each_request_gets_its_own_answers_inside_one_app_context(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = app.test_client()
    with app.app_context():  # requests then share this context's g
        assert client.get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
        assert client.get("/seats", headers={"X-Customer": "cus_2"}).status_code == 403


def test_class_based_views_are_gated_through_decorators(app: Flask, fake_stripe: FakeStripe) -> None:
    class Seats(MethodView):
        decorators = (requires_feature("seats-feature"),)

        def get(self) -> str:
            return "class seats"

    app.add_url_rule("/class-seats", view_func=Seats.as_view("class_seats"))
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = app.test_client()
    assert client.get("/class-seats", headers={"X-Customer": "cus_1"}).text == "class seats"
    assert client.get("/class-seats", headers={"X-Customer": "cus_2"}).status_code == 403


def test_view_arguments_reach_the_view(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.get("/seats/<int:seat>")
    @requires_feature("seats-feature")
    def seat(seat: int) -> str:
        return f"seat {seat}"

    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert app.test_client().get("/seats/7", headers={"X-Customer": "cus_1"}).text == "seat 7"


def test_decorator_keeps_the_views_name(app: Flask) -> None:
    assert app.view_functions["seats"].__name__ == "seats"


@pytest.mark.parametrize("args", [(), ("",), ("  ",)])
def test_requirement_without_a_lookup_key_fails_at_decoration(args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="lookup_key"):
        requires_feature(*args)


def test_missing_customer_loader_is_a_clear_error(make_app: AppFactory) -> None:
    app = make_app(Entitlements())
    with pytest.raises(RuntimeError, match="customer_loader"):
        app.test_client().get("/seats")


def test_loader_returning_a_non_string_counts_as_no_customer(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    entitlements = Entitlements()
    entitlements.customer_loader(lambda: 42)  # type: ignore[arg-type,return-value]
    app = make_app(entitlements)
    assert app.test_client().get("/seats").status_code == 401
    assert fake_stripe.calls() == 0


def test_async_customer_loader_is_refused_at_registration() -> None:
    async def loader() -> str:  # pragma: no cover - never called
        return "cus_1"

    with pytest.raises(TypeError, match="plain"):
        Entitlements().customer_loader(loader)  # type: ignore[arg-type]


def test_gated_view_on_an_app_without_the_extension_says_so() -> None:
    app = Flask(__name__)

    @app.get("/seats")
    @requires_feature("seats-feature")
    def seats() -> str:  # pragma: no cover - never reached
        return "seats"

    app.testing = True
    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/seats")


def test_a_view_that_aborts_itself_keeps_its_own_status(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.get("/teapot")
    @requires_feature("seats-feature")
    def teapot() -> Any:
        abort(418)

    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert app.test_client().get("/teapot", headers={"X-Customer": "cus_1"}).status_code == 418
