"""``@requires_limit``, ``ext.limit()`` and the Jinja global ``limit()``: numbers from Feature metadata.

A limit is the highest ``metadata[name]`` over the features the customer holds (the fake Stripe
serves the catalog as Stripe does); a limit denial takes the feature denial's path: 403, the
denied handler naming the limit, or ``entitlegate.gate.denial_body`` for a JSON client.
"""

from __future__ import annotations

import math

import pytest
from flask import Flask, render_template_string, request

from entitlegate import registry
from entitlegate.gate import denial_shortfall
from entitlegate_flask import Entitlements, requires_limit
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer

JSON = {"Accept": "application/json"}


@pytest.fixture
def plans(fake_stripe: FakeStripe) -> FakeStripe:
    """Starter holds 3 seats, Pro 25, Enterprise unlimited."""
    fake_stripe.set_feature("starter", {"seats": "3"})
    fake_stripe.set_feature("pro", {"seats": "25"})
    fake_stripe.set_feature("enterprise", {"seats": "unlimited"})
    fake_stripe.set_customer("cus_starter", ["starter"])
    fake_stripe.set_customer("cus_pro", ["starter", "pro"])
    fake_stripe.set_customer("cus_enterprise", ["enterprise"])
    fake_stripe.set_customer("cus_free", [])
    return fake_stripe


@pytest.fixture
def extension() -> Entitlements:
    extension = Entitlements()
    extension.customer_loader(header_customer)
    return extension


@pytest.fixture
def app(make_app: AppFactory, extension: Entitlements) -> Flask:
    app = make_app(extension)

    @app.get("/team")
    @requires_limit("seats", 10)
    def team() -> str:
        return "team"

    @app.get("/async-team")
    @requires_limit("seats", 10)
    async def async_team() -> str:
        return "async team"

    @app.post("/invite")
    @requires_limit("seats", lambda: len(request.form.getlist("member")))
    def invite() -> str:
        return "invited"

    @app.get("/seats-count")
    def seats_count() -> str:
        return str(extension.limit("seats"))

    @app.get("/seats-page")
    def seats_page() -> str:
        return render_template_string("{{ limit('seats') }} {{ limit('projects', 1) }}")

    return app


def get(app: Flask, path: str, customer: str | None = None, **headers: str) -> tuple[int, str]:
    if customer is not None:
        headers["X-Customer"] = customer
    response = app.test_client().get(path, headers=headers)
    return response.status_code, response.text


@pytest.mark.parametrize("path", ["/team", "/async-team"])
@pytest.mark.usefixtures("plans")
def test_requires_limit_lets_through_a_customer_whose_limit_covers_the_need(app: Flask, path: str) -> None:
    assert get(app, path, "cus_pro")[0] == 200
    assert get(app, path, "cus_enterprise")[0] == 200


@pytest.mark.parametrize("path", ["/team", "/async-team"])
@pytest.mark.usefixtures("plans")
def test_requires_limit_refuses_a_customer_whose_limit_is_below_the_need(app: Flask, path: str) -> None:
    assert get(app, path, "cus_starter")[0] == 403
    assert get(app, path, "cus_free")[0] == 403


@pytest.mark.usefixtures("plans")
def test_a_callable_need_is_computed_for_each_request(app: Flask) -> None:
    client = app.test_client()
    three = {"member": ["a@x.io", "b@x.io", "c@x.io"]}
    four = {"member": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]}
    assert client.post("/invite", data=three, headers={"X-Customer": "cus_starter"}).status_code == 200
    assert client.post("/invite", data=four, headers={"X-Customer": "cus_starter"}).status_code == 403


@pytest.mark.usefixtures("plans")
def test_a_limit_denial_goes_to_the_denied_handler_naming_the_limit(app: Flask, extension: Entitlements) -> None:
    @extension.denied_handler
    def upgrade(feature: str) -> tuple[str, int]:
        return f"upgrade for {feature}: {denial_shortfall(feature)}", 402

    assert get(app, "/team", "cus_starter") == (
        402,
        "upgrade for seats: Shortfall(limit='seats', allowed=3, need=10)",
    )


@pytest.mark.usefixtures("plans")
def test_a_json_client_is_told_the_limit_its_value_and_the_need(app: Flask) -> None:
    response = app.test_client().get("/async-team", headers={"X-Customer": "cus_starter", **JSON})
    assert response.status_code == 403
    assert response.json == {"error": "limit_exceeded", "limit": "seats", "allowed": 3, "need": 10}
    assert response.headers["Vary"] == "Accept"  # a cache must not serve it to a browser


@pytest.mark.usefixtures("plans")
def test_a_json_client_denied_a_feature_is_told_which(app: Flask) -> None:
    response = app.test_client().get("/seats", headers={"X-Customer": "cus_starter", **JSON})
    assert response.status_code == 403
    assert response.json == {"error": "feature_required", "feature": "seats-feature"}


@pytest.mark.usefixtures("plans")
def test_a_browser_denied_a_limit_gets_the_apps_403_page(app: Flask) -> None:
    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[str, int]:
        return "no room", 403

    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    assert get(app, "/team", "cus_starter", **browser) == (403, "no room")


@pytest.mark.parametrize("customer", [None, "   ", ""])
@pytest.mark.parametrize("path", ["/team", "/async-team"])
def test_requires_limit_without_a_customer_is_401_and_asks_stripe_nothing(
    app: Flask, plans: FakeStripe, customer: str | None, path: str
) -> None:
    assert get(app, path, customer)[0] == 401
    assert plans.calls() == 0


def test_requires_limit_with_a_non_string_customer_is_401_and_asks_stripe_nothing(
    make_app: AppFactory, plans: FakeStripe
) -> None:
    extension = Entitlements()
    extension.customer_loader(lambda: 42)
    app = make_app(extension)
    app.add_url_rule("/team", "team", requires_limit("seats", 1)(lambda: "team"))

    assert get(app, "/team")[0] == 401
    assert plans.calls() == 0


def test_a_need_is_not_computed_for_a_request_without_a_customer(app: Flask, plans: FakeStripe) -> None:
    needs: list[int] = []

    @app.get("/counted")
    @requires_limit("seats", lambda: needs.append(1) or 1)
    def counted() -> str:
        return "counted"

    assert get(app, "/counted")[0] == 401
    assert needs == []


@pytest.mark.parametrize("path", ["/team", "/async-team", "/seats-count"])
def test_an_outage_is_a_503_never_a_guessed_limit(app: Flask, plans: FakeStripe, path: str) -> None:
    plans.always_fail = 401
    assert get(app, path, "cus_pro")[0] == 503


@pytest.mark.usefixtures("plans")
def test_ext_limit_reads_the_highest_value_over_the_features_held(app: Flask) -> None:
    assert get(app, "/seats-count", "cus_pro") == (200, "25")
    assert get(app, "/seats-count", "cus_enterprise") == (200, str(math.inf))
    assert get(app, "/seats-count", "cus_free") == (200, "0")
    assert get(app, "/seats-count") == (200, "0")


def test_the_limit_template_global_shows_the_number_or_its_default(app: Flask, plans: FakeStripe) -> None:
    assert get(app, "/seats-page", "cus_starter") == (200, "3 1")
    assert get(app, "/seats-page") == (200, "0 1")
    plans.always_fail = 401
    assert get(app, "/seats-page", "cus_pro") == (200, "0 1")


def test_the_limit_template_global_outside_a_request_is_its_default(app: Flask, plans: FakeStripe) -> None:
    with app.app_context():
        assert render_template_string("{{ limit('seats') }} {{ limit('seats', 5) }}") == "0 5"
    assert plans.calls() == 0


def test_requires_limit_registers_its_name_for_entitlegate_check() -> None:
    requires_limit("flask-registry-probe", 2)
    assert "flask-registry-probe" in registry.names()


@pytest.mark.parametrize("name", ["", "  "])
def test_requires_limit_refuses_a_blank_name_at_decoration(name: str) -> None:
    with pytest.raises(ValueError, match="limit name"):
        requires_limit(name, 1)


@pytest.mark.parametrize("need", [-1, 1.5, True, "3"])
def test_requires_limit_refuses_a_need_that_is_no_whole_number(need: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        requires_limit("seats", need)  # type: ignore[arg-type]


def test_requires_limit_above_the_route_decorator_is_gated_all_the_same(
    make_app: AppFactory, plans: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    @requires_limit("seats", 10)
    @app.get("/misordered-team")
    def misordered_team() -> str:
        return "team"

    assert get(app, "/misordered-team", "cus_starter")[0] == 403
    assert get(app, "/misordered-team", "cus_pro")[0] == 200
    assert any("'misordered_team'" in r.getMessage() for r in caplog.records if r.name == "entitlegate")
