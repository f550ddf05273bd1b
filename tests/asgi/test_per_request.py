"""One request, one customer lookup and one Stripe request, whatever the number of checks (issue 19)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from entitlegate import Resolver
from entitlegate_asgi import (
    EntitlementMiddleware,
    Entitlements,
    RequiresFeature,
    RequiresLimit,
    requires_feature,
    requires_limit,
)
from tests.asgi.support import JSON, TestClient, as_customer, customer_from_header
from tests.fake_stripe import FEATURES, FakeStripe

MakeApp = Callable[..., Starlette]
ThreeSeats = Annotated[Entitlements, Depends(RequiresLimit("seats", 3))]


@requires_feature("seats-feature")
@requires_limit("seats", 2)
async def many_checks(request: Request) -> Response:
    entitlements: Entitlements = request.state.entitlements
    checks = [
        entitlements.has_feature("seats-feature"),
        await entitlements.ahas_feature("analytics"),
        entitlements.safe_has_feature("analytics"),
        sorted(entitlements.safe_features()),
        entitlements.safe_limit("seats"),
    ]
    return JSONResponse(checks)


def test_an_endpoint_with_many_checks_in_an_outage_asks_stripe_once(
    resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 503
    app = Starlette(
        routes=[Route("/pro/many", many_checks)],
        middleware=[_middleware(Resolver(resolver.source, on_unavailable="deny"), rules={"/pro": "seats-feature"})],
    )

    response = TestClient(app).get("/pro/many", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 503  # the rule's verdict: the outage denied, not an upsell
    assert fake_stripe.calls() == 1
    assert fake_stripe.calls(FEATURES) == 0  # an outage of the features: no catalog asked


def test_an_endpoint_with_many_checks_under_allow_in_an_outage_asks_stripe_once(
    resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 503
    app = Starlette(
        routes=[Route("/pro/many", many_checks)],
        middleware=[_middleware(Resolver(resolver.source, on_unavailable="allow"), rules={"/pro": "seats-feature"})],
    )

    response = TestClient(app).get("/pro/many", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 200
    assert response.json() == [True, True, True, [], 0]
    assert fake_stripe.calls() == 1


def test_fastapi_dependencies_and_reads_in_an_outage_ask_stripe_once(
    resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 503
    app = FastAPI()
    app.add_middleware(
        EntitlementMiddleware, resolver=Resolver(resolver.source, on_unavailable="allow"), customer=customer_from_header
    )

    @app.get("/team", dependencies=[Depends(RequiresFeature("seats-feature"))])
    async def team(entitlements: ThreeSeats) -> list[bool]:
        return [entitlements.has_feature("a"), await entitlements.ahas_feature("b"), "c" in entitlements]

    response = TestClient(app).get("/team", headers=as_customer("cus_1"))

    assert response.json() == [True, True, True]
    assert fake_stripe.calls() == 1


@pytest.mark.parametrize("value", [42, ["cus_1"], b"cus_1"], ids=["int", "list", "bytes"])
def test_a_non_string_customer_is_no_customer_logged_and_never_sent_to_stripe(
    make_app: MakeApp, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, value: object
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    def odd_customer(scope: Any) -> Any:
        return value

    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        ruled = TestClient(make_app(customer=odd_customer)).get("/pro", headers=JSON)
        unruled = TestClient(make_app(customer=odd_customer)).get("/features")

    assert ruled.status_code == 401
    assert unruled.json() == {"customer": None, "features": []}
    assert fake_stripe.calls() == 0
    assert "not a string" in caplog.text
    assert "odd_customer" in caplog.text


# One value per kind of problem: a callable's log line about one problem comes at most once a minute.
@pytest.mark.parametrize("value", ["   ", " cus_1"], ids=["blank", "padded"])
def test_a_blank_or_padded_customer_is_no_customer_logged_and_never_sent_to_stripe(
    make_app: MakeApp, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    async def padded_customer(scope: Any) -> str:
        return value

    with caplog.at_level(logging.ERROR, logger="entitlegate"):
        ruled = TestClient(make_app(customer=padded_customer)).get("/pro", headers=JSON)
        unruled = TestClient(make_app(customer=padded_customer)).get("/features")

    assert ruled.status_code == 401
    assert ruled.json() == {"error": "customer_required"}
    assert unruled.json() == {"customer": None, "features": []}
    assert fake_stripe.calls() == 0
    assert "padded_customer" in caplog.text


def test_the_customer_callable_runs_once_however_many_gates_and_reads(
    resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_feature("seats-feature", {"seats": "5"})
    asked: list[object] = []

    def counted(scope: Any) -> str | None:
        asked.append(scope["path"])
        return customer_from_header(scope)

    app = Starlette(
        routes=[Route("/pro/many", many_checks)],
        middleware=[_middleware(resolver, customer=counted, rules={"/pro": "seats-feature"})],
    )

    response = TestClient(app).get("/pro/many", headers=as_customer("cus_1"))

    assert response.json() == [True, False, False, ["seats-feature"], 5]
    assert asked == ["/pro/many"]
    assert fake_stripe.calls() == 1


def test_the_entitlements_are_the_core_per_request_object() -> None:
    from entitlegate.entitlements import Entitlements as CoreEntitlements

    assert issubclass(Entitlements, CoreEntitlements)


def _middleware(resolver: Resolver, **options: Any) -> Any:
    from starlette.middleware import Middleware

    options.setdefault("customer", customer_from_header)
    return Middleware(EntitlementMiddleware, resolver=resolver, **options)
