"""``@requires_feature`` above the route decorator: the view is still gated, and a log line says so.

``@app.get`` registers the function it is given, so a ``@requires_feature`` written above it wraps
a function nobody calls, and the page used to be served to everyone. The extension finds such views
at the app's first request, registers the gated wrapper in their place, and logs an error naming
the view and the fix.
"""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask

from entitlegate_flask import requires_feature
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory


def _add_misordered_views(app: Flask) -> None:
    @requires_feature("seats-feature")
    @app.get("/misordered")
    def misordered() -> str:
        return "paid content"

    @requires_feature("seats-feature")
    @app.get("/amisordered")
    async def amisordered() -> str:
        return "paid content"

    blueprint = Blueprint("shop", __name__)

    @requires_feature("seats-feature")
    @blueprint.get("/shop/misordered")
    def shop_misordered() -> str:
        return "paid content"

    app.register_blueprint(blueprint)


@pytest.fixture
def misordered_app(make_app: AppFactory, fake_stripe: FakeStripe) -> Flask:
    fake_stripe.set_customer("cus_free", [])
    fake_stripe.set_customer("cus_paid", ["seats-feature"])
    app = make_app()
    _add_misordered_views(app)
    return app


@pytest.mark.parametrize("path", ["/misordered", "/amisordered", "/shop/misordered"])
@pytest.mark.parametrize(("customer", "status"), [("cus_free", 403), ("cus_paid", 200), (None, 401)])
def test_a_view_with_requires_feature_above_the_route_is_gated(
    misordered_app: Flask, path: str, customer: str | None, status: int
) -> None:
    headers = {"X-Customer": customer} if customer else {}

    response = misordered_app.test_client().get(path, headers=headers)

    assert response.status_code == status


def test_the_first_request_logs_each_misordered_view_and_the_fix(
    misordered_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = misordered_app.test_client()
    client.get("/")
    client.get("/")

    lines = sorted(r.getMessage() for r in caplog.records if r.name == "entitlegate")
    assert len(lines) == 3
    assert "'shop.shop_misordered'" in lines[-1]
    assert all("put @requires_feature below the route decorator" in line for line in lines)


def test_a_view_registered_both_ungated_and_gated_stays_as_registered(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_free", [])
    app = make_app()

    def catalogue() -> str:
        return "catalogue"

    app.add_url_rule("/free-catalogue", "free_catalogue", catalogue)
    app.add_url_rule("/paid-catalogue", "paid_catalogue", requires_feature("seats-feature")(catalogue))
    client = app.test_client()

    assert client.get("/free-catalogue", headers={"X-Customer": "cus_free"}).status_code == 200
    assert client.get("/paid-catalogue", headers={"X-Customer": "cus_free"}).status_code == 403


def test_twice_above_the_route_both_requirements_apply(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_seats", ["seats-feature"])
    fake_stripe.set_customer("cus_both", ["seats-feature", "analytics"])
    app = make_app()

    @requires_feature("analytics")
    @requires_feature("seats-feature")
    @app.get("/twice")
    def twice() -> str:
        return "paid content"

    client = app.test_client()

    assert client.get("/twice", headers={"X-Customer": "cus_seats"}).status_code == 403
    assert client.get("/twice", headers={"X-Customer": "cus_both"}).status_code == 200
