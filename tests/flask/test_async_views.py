"""@requires_feature on ``async def`` views (flask[async]): the same answers as sync views."""

from __future__ import annotations

from flask import Flask

from entitlegate_flask import requires_feature
from tests.fake_stripe import FakeStripe


def test_async_view_runs_for_a_customer_with_the_feature(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    response = app.test_client().get("/async-seats", headers={"X-Customer": "cus_1"})
    assert (response.status_code, response.text) == (200, "async seats")


def test_async_view_is_never_started_for_a_denied_customer(app: Flask, fake_stripe: FakeStripe) -> None:
    started: list[str] = []

    @app.get("/async-report")
    @requires_feature("analytics")
    async def async_report() -> str:  # pragma: no cover - the denial keeps it from running
        started.append("report")
        return "report"

    fake_stripe.set_customer("cus_1", ["seats-feature"])
    response = app.test_client().get("/async-report", headers={"X-Customer": "cus_1"})
    assert (response.status_code, started) == (403, [])


def test_async_view_without_a_customer_is_unauthorized(app: Flask) -> None:
    assert app.test_client().get("/async-seats").status_code == 401


def test_async_view_in_an_outage_answers_503(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 401
    assert app.test_client().get("/async-seats", headers={"X-Customer": "cus_1"}).status_code == 503


def test_async_view_receives_its_arguments(app: Flask, fake_stripe: FakeStripe) -> None:
    @app.get("/async-seats/<int:seat>")
    @requires_feature("seats-feature")
    async def async_seat(seat: int) -> str:
        return f"async seat {seat}"

    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert app.test_client().get("/async-seats/3", headers={"X-Customer": "cus_1"}).text == "async seat 3"
