"""Limits from Feature metadata in ASGI: ``requires_limit``, ``RequiresLimit``, ``entitlements.limit``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from entitlegate.gate import Cause, denial_cause, denial_shortfall
from entitlegate_asgi import EntitlementMiddleware, Entitlements, RequiresLimit, requires_limit
from tests.asgi.support import JSON, TestClient, as_customer, customer_from_header, websocket_refusal
from tests.fake_stripe import FakeStripe

MakeApp = Callable[..., Starlette]


@pytest.fixture
def plans(fake_stripe: FakeStripe) -> FakeStripe:
    """Starter 3 seats, Pro 25, Enterprise unlimited; cus_starter, cus_pro and cus_big hold one each."""
    fake_stripe.set_feature("starter", {"seats": "3"})
    fake_stripe.set_feature("pro", {"seats": "25"})
    fake_stripe.set_feature("enterprise", {"seats": "unlimited"})
    fake_stripe.set_customer("cus_starter", ["starter"])
    fake_stripe.set_customer("cus_pro", ["pro"])
    fake_stripe.set_customer("cus_big", ["enterprise"])
    return fake_stripe


def seats_wanted(request: HTTPConnection) -> int:
    return int(request.query_params.get("seats", "1"))


@requires_limit("seats", seats_wanted)
async def add_seat(request: Request) -> Response:
    seats = request.state.entitlements.limit("seats")
    return JSONResponse({"seats": "unlimited" if seats == math.inf else seats})


@requires_limit("seats", 4)
def add_fourth_seat(request: Request) -> Response:
    return PlainTextResponse("added")


def routes() -> list[Route]:
    return [Route("/team/seats", add_seat, methods=["POST"]), Route("/team/fourth", add_fourth_seat, methods=["POST"])]


def test_a_customer_within_the_limit_gets_through(make_app: MakeApp, plans: FakeStripe) -> None:
    response = TestClient(make_app(routes())).post("/team/seats?seats=3", headers=as_customer("cus_starter"))

    assert response.status_code == 200
    assert response.json() == {"seats": 3}


def test_a_customer_over_the_limit_gets_a_403_naming_the_limit_as_json(make_app: MakeApp, plans: FakeStripe) -> None:
    response = TestClient(make_app(routes())).post("/team/seats?seats=4", headers=as_customer("cus_starter", **JSON))

    assert response.status_code == 403
    assert response.json() == {"error": "limit_exceeded", "limit": "seats", "allowed": 3, "need": 4}


def test_a_limit_denial_in_plain_text_says_what_the_plan_allows(make_app: MakeApp, plans: FakeStripe) -> None:
    response = TestClient(make_app(routes())).post("/team/fourth", headers=as_customer("cus_starter"))

    assert response.status_code == 403
    assert response.text == "Forbidden: this needs 4 seats; the plan allows 3.\n"


def test_a_higher_plan_lets_the_same_request_through(make_app: MakeApp, plans: FakeStripe) -> None:
    client = TestClient(make_app(routes()))

    assert client.post("/team/fourth", headers=as_customer("cus_pro")).text == "added"
    assert client.post("/team/seats?seats=1000", headers=as_customer("cus_big")).json() == {"seats": "unlimited"}


def test_a_limit_denial_goes_to_on_denied_naming_the_limit_and_its_shortfall(
    make_app: MakeApp, plans: FakeStripe
) -> None:
    seen: list[Any] = []

    def upgrade(scope: Any, feature: str) -> Response:
        seen.append((feature, denial_cause(feature), denial_shortfall(feature)))
        return PlainTextResponse(f"upgrade for more {feature}", 402)

    response = TestClient(make_app(routes(), on_denied=upgrade)).post(
        "/team/fourth", headers=as_customer("cus_starter")
    )

    assert (response.status_code, response.text) == (402, "upgrade for more seats")
    [(feature, cause, shortfall)] = seen
    assert feature == "seats"
    assert cause is Cause.MISSING
    assert (shortfall.limit, shortfall.allowed, shortfall.need) == ("seats", 3, 4)


def test_a_limit_without_a_customer_is_a_401(make_app: MakeApp, plans: FakeStripe) -> None:
    response = TestClient(make_app(routes())).post("/team/fourth", headers=JSON)

    assert response.status_code == 401
    assert plans.calls() == 0


def test_a_limit_in_an_outage_is_a_503_never_a_guess(make_app: MakeApp, plans: FakeStripe) -> None:
    plans.always_fail = 503

    response = TestClient(make_app(routes())).post("/team/fourth", headers=as_customer("cus_pro", **JSON))

    assert response.status_code == 503
    assert response.json() == {"error": "entitlements_unavailable"}


def test_a_need_callable_returning_no_whole_number_fails_loudly(make_app: MakeApp, plans: FakeStripe) -> None:
    client = TestClient(make_app(routes()))

    with pytest.raises(ValueError, match="whole number"):
        client.post("/team/seats?seats=-1", headers=as_customer("cus_pro"))


def test_a_bad_need_fails_at_decoration() -> None:
    with pytest.raises(ValueError, match="whole number"):
        requires_limit("seats", -1)
    with pytest.raises(ValueError, match="limit name"):
        RequiresLimit(" ")


def test_limit_reads_what_alimit_loaded_and_says_how_to_load_before(make_app: MakeApp, plans: FakeStripe) -> None:
    async def team(request: Request) -> Response:
        entitlements: Entitlements = await request.state.entitlements.load()
        try:
            entitlements.limit("seats")
        except RuntimeError as error:
            before = str(error)
        seats = await entitlements.alimit("seats")
        return JSONResponse({"before": before, "seats": seats, "then": entitlements.limit("seats")})

    answer = TestClient(make_app([Route("/team", team)])).get("/team", headers=as_customer("cus_pro")).json()

    assert "await request.state.entitlements.alimit(name)" in answer["before"]
    assert (answer["seats"], answer["then"]) == (25, 25)


def test_a_page_reads_features_and_limits_with_one_stripe_request(make_app: MakeApp, plans: FakeStripe) -> None:
    async def team(request: Request) -> Response:
        entitlements: Entitlements = request.state.entitlements
        limits = await entitlements.alimits()
        return JSONResponse({"features": sorted(await entitlements.afeatures()), "limits": dict(limits)})

    answer = TestClient(make_app([Route("/team", team)])).get("/team", headers=as_customer("cus_starter")).json()

    assert answer == {"features": ["starter"], "limits": {"seats": 3}}
    assert plans.calls() == 1


# -- FastAPI ----------------------------------------------------------------------------------------

seat_for_each = RequiresLimit("seats", lambda request: int(request.query_params["seats"]))
SeatedEntitlements = Annotated[Entitlements, Depends(seat_for_each)]


def fastapi_app(resolver: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(EntitlementMiddleware, resolver=resolver, customer=customer_from_header)

    @app.post("/team/seats")
    async def add(entitlements: SeatedEntitlements) -> dict[str, float]:
        return {"seats": entitlements.limit("seats")}

    return app


def test_requires_limit_dependency_lets_a_customer_within_the_limit_through(resolver: Any, plans: FakeStripe) -> None:
    response = TestClient(fastapi_app(resolver)).post("/team/seats?seats=25", headers=as_customer("cus_pro"))

    assert response.status_code == 200
    assert response.json() == {"seats": 25}


def test_requires_limit_dependency_refuses_with_the_limit_body(resolver: Any, plans: FakeStripe) -> None:
    response = TestClient(fastapi_app(resolver)).post("/team/seats?seats=26", headers=as_customer("cus_pro", **JSON))

    assert response.status_code == 403
    assert response.json() == {"error": "limit_exceeded", "limit": "seats", "allowed": 25, "need": 26}


def test_requires_limit_dependency_can_be_overridden(resolver: Any, plans: FakeStripe) -> None:
    app = fastapi_app(resolver)

    async def everyone(request: Request) -> Entitlements:
        entitlements: Entitlements = request.state.entitlements
        await entitlements.alimits()
        return entitlements

    app.dependency_overrides[seat_for_each] = everyone

    response = TestClient(app).post("/team/seats?seats=26", headers=as_customer("cus_starter"))

    assert response.json() == {"seats": 3}


def test_requires_limit_dependency_has_a_readable_repr() -> None:
    assert repr(RequiresLimit("seats", 3)) == "RequiresLimit('seats', 3)"


@requires_limit("seats", 4)
async def seats_feed(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("seats")
    await websocket.close()


def test_a_websocket_short_of_the_limit_is_refused_before_it_is_accepted(make_app: MakeApp, plans: FakeStripe) -> None:
    client = TestClient(make_app([WebSocketRoute("/team/live", seats_feed)]))

    refused = websocket_refusal(client, "/team/live", as_customer("cus_starter", **JSON))
    with client.websocket_connect("/team/live", headers=as_customer("cus_pro")) as websocket:
        greeting = websocket.receive_text()

    assert refused.status_code == 403
    assert refused.json() == {"error": "limit_exceeded", "limit": "seats", "allowed": 3, "need": 4}
    assert greeting == "seats"
