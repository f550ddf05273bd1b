"""Features read in a view's own code: ``ext.features()`` / ``ext.has_feature()``, and outages."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from entitlegate import CacheUnavailable
from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer


def app_reading_features(make_app: AppFactory, **config: object) -> Flask:
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    app = make_app(entitlements, **config)

    @app.get("/mine")
    def mine() -> ResponseReturnValue:
        return jsonify(
            features=sorted(entitlements.features()),
            seats=entitlements.has_feature("seats-feature"),
            sso=entitlements.has_feature("sso"),
        )

    return app


def test_a_view_reads_its_customers_features_with_one_lookup(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "analytics"])
    client = app_reading_features(make_app).test_client()

    response = client.get("/mine", headers={"X-Customer": "cus_1"})

    assert response.json == {"features": ["analytics", "seats-feature"], "seats": True, "sso": False}
    assert fake_stripe.calls() == 1


def test_without_a_customer_a_view_sees_no_features(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    response = app_reading_features(make_app).test_client().get("/mine")

    assert response.json == {"features": [], "seats": False, "sso": False}
    assert fake_stripe.calls() == 0


def test_an_outage_a_view_leaves_unhandled_is_a_503_not_a_500(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429
    response = app_reading_features(make_app).test_client().get("/mine", headers={"X-Customer": "cus_1"})

    assert response.status_code == 503


def test_the_apps_own_503_handler_renders_that_outage(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429
    app = app_reading_features(make_app)

    @app.errorhandler(503)
    def busy(error: Exception) -> ResponseReturnValue:
        return "come back soon", 503

    response = app.test_client().get("/mine", headers={"X-Customer": "cus_1"})

    assert (response.status_code, response.data) == (503, b"come back soon")


def test_has_feature_in_code_follows_the_outage_policy(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 429
    entitlements = Entitlements()
    entitlements.customer_loader(header_customer)
    app = make_app(entitlements, ENTITLEGATE_ON_UNAVAILABLE="deny")

    @app.get("/check")
    def check() -> ResponseReturnValue:
        return jsonify(seats=entitlements.has_feature("seats-feature"))

    response = app.test_client().get("/check", headers={"X-Customer": "cus_1"})

    assert response.json == {"seats": False}


def test_a_change_the_shared_cache_could_not_take_is_a_503_not_a_500(make_app: AppFactory) -> None:
    app = make_app()

    @app.post("/invalidate")
    def invalidate() -> ResponseReturnValue:
        raise CacheUnavailable("Redis is unavailable: 'cus_1' is invalidated in this process only")

    assert app.test_client().post("/invalidate").status_code == 503
