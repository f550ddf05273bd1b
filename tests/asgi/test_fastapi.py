"""RequiresFeature as a FastAPI dependency, in a FastAPI app behind the middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import RedirectResponse

from entitlegate import Resolver, SourceUnavailable, WebhookHandler
from entitlegate_asgi import EntitlementMiddleware, Entitlements, RequiresFeature, webhook_app
from tests.asgi.support import (
    JSON,
    TestClient,
    as_customer,
    customer_from_header,
    websocket_refusal,
)
from tests.fake_stripe import FakeStripe
from tests.stripe_events import SECRET, signed, summary_event

needs_seats = RequiresFeature("seats-feature")
SeatsEntitlements = Annotated[Entitlements, Depends(needs_seats)]


def make_fastapi(resolver: Resolver, **options: Any) -> FastAPI:
    app = _routes(FastAPI(), resolver)
    app.add_middleware(EntitlementMiddleware, resolver=resolver, customer=customer_from_header, **options)
    return app


def wrap_fastapi(resolver: Resolver, **options: Any) -> EntitlementMiddleware:
    """The pure-ASGI way: the middleware around the whole FastAPI app, outside its error handling."""
    return EntitlementMiddleware(
        _routes(FastAPI(), resolver), resolver=resolver, customer=customer_from_header, **options
    )


def _routes(app: FastAPI, resolver: Resolver) -> FastAPI:
    @app.get("/direct")
    async def direct() -> list[str]:
        # Asks the resolver itself, not the request's entitlements.
        return sorted(await resolver.afeatures("cus_direct"))

    @app.get("/seats")
    async def seats(entitlements: SeatsEntitlements) -> dict[str, Any]:
        return {"customer": entitlements.customer, "features": sorted(entitlements.features)}

    @app.get("/sync-seats", dependencies=[Depends(needs_seats)])
    def sync_seats() -> str:
        return "sync"

    router = APIRouter(prefix="/reports", dependencies=[Depends(RequiresFeature(any_of=("analytics", "export")))])

    @router.get("/monthly")
    async def monthly() -> str:
        return "monthly"

    app.include_router(router)

    @app.websocket("/live")
    async def live(websocket: WebSocket, entitlements: SeatsEntitlements) -> None:
        await websocket.accept()
        await websocket.send_text("welcome")
        await websocket.close()

    @app.get("/degraded")
    async def degraded(connection: Request) -> dict[str, Any]:
        entitlements = await connection.state.entitlements.load()
        try:
            return {"features": sorted(entitlements.features)}
        except SourceUnavailable:
            return {"features": None}

    @app.get("/broken")
    async def broken() -> str:
        raise ZeroDivisionError

    @app.get("/open")
    async def open_route() -> str:
        return "open"

    @app.get("/account")
    async def account(connection: Request) -> dict[str, Any]:
        entitlements = await connection.state.entitlements.load()
        return {"features": sorted(entitlements.features)}

    return app


PLACEMENTS = {"add_middleware": make_fastapi, "wrapping": wrap_fastapi}


@pytest.fixture(params=sorted(PLACEMENTS))
def placed(request: pytest.FixtureRequest, resolver: Resolver) -> Callable[..., TestClient]:
    """``placed(**middleware_options)``: a client of the FastAPI app with the middleware added or wrapped around it.

    The client answers a server error with a 500 instead of raising it, as a real server would.
    """

    def build(**options: Any) -> TestClient:
        return TestClient(PLACEMENTS[request.param](resolver, **options), raise_server_exceptions=False)

    return build


def test_a_refusal_is_a_401_wherever_the_middleware_sits(placed: Callable[..., TestClient]) -> None:
    response = placed().get("/seats", headers=JSON)

    assert (response.status_code, response.json()) == (401, {"error": "customer_required"})


@pytest.mark.parametrize("path", ["/seats", "/sync-seats", "/reports/monthly"])
def test_a_refusal_is_a_403_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe, path: str
) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = placed().get(path, headers=as_customer("cus_1", **JSON))

    assert response.status_code == 403
    assert response.json()["error"] == "feature_required"


def test_an_outage_is_a_503_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500
    client = placed()

    assert client.get("/seats", headers=as_customer("cus_1")).status_code == 503
    assert client.get("/account", headers=as_customer("cus_1")).status_code == 503


def test_an_outage_met_by_the_app_asking_the_resolver_is_a_503_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500

    assert placed().get("/direct").status_code == 503


def test_on_denied_answers_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    def upgrade(scope: dict[str, Any], feature: str) -> RedirectResponse:
        return RedirectResponse(f"/upgrade/{feature}", status_code=303)

    response = placed(on_denied=upgrade).get("/seats", headers=as_customer("cus_1"), follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/upgrade/seats-feature")


def test_a_customer_with_the_feature_gets_through_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = placed().get("/seats", headers=as_customer("cus_1"))

    assert (response.status_code, response.json()["features"]) == (200, ["seats-feature"])


def test_an_outage_the_app_handles_keeps_the_apps_answer_wherever_the_middleware_sits(
    placed: Callable[..., TestClient], fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500

    response = placed().get("/degraded", headers=as_customer("cus_1"))

    assert (response.status_code, response.json()) == (200, {"features": None})


def test_an_app_error_is_still_a_500_wherever_the_middleware_sits(placed: Callable[..., TestClient]) -> None:
    # Only entitlegate's own refusals are answered by the middleware; the app's bugs stay 500s.
    response = placed().get("/broken")

    assert response.status_code == 500


@pytest.fixture
def client(resolver: Resolver) -> TestClient:
    return TestClient(make_fastapi(resolver))


def test_dependency_gives_the_endpoint_the_loaded_entitlements(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "export"])

    response = client.get("/seats", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert response.json() == {"customer": "cus_1", "features": ["export", "seats-feature"]}


def test_dependency_refuses_a_customer_without_the_feature_with_403_json(
    client: TestClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = client.get("/seats", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 403
    assert response.json() == {"error": "feature_required", "feature": "seats-feature"}


def test_dependency_refuses_a_request_without_a_customer_with_401(client: TestClient) -> None:
    response = client.get("/seats", headers=JSON)

    assert response.status_code == 401
    assert response.json() == {"error": "customer_required"}


def test_dependency_answers_503_in_an_outage(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    assert client.get("/seats", headers=as_customer("cus_1")).status_code == 503


def test_dependency_in_a_routes_dependencies_gates_a_sync_endpoint(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    fake_stripe.set_customer("cus_2", [])

    assert client.get("/sync-seats", headers=as_customer("cus_1")).json() == "sync"
    assert client.get("/sync-seats", headers=as_customer("cus_2")).status_code == 403


def test_dependency_on_a_router_gates_every_route_in_it(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    fake_stripe.set_customer("cus_2", [])

    assert client.get("/reports/monthly", headers=as_customer("cus_1")).status_code == 200
    assert client.get("/reports/monthly", headers=as_customer("cus_2")).status_code == 403


def test_route_without_the_dependency_asks_stripe_nothing(client: TestClient, fake_stripe: FakeStripe) -> None:
    assert client.get("/open", headers=as_customer("cus_1")).json() == "open"
    assert fake_stripe.calls() == 0


def test_dependency_refuses_a_websocket_before_accept(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    refusal = websocket_refusal(client, "/live", as_customer("cus_1"))

    assert refusal.status_code == 403


def test_dependency_lets_a_websocket_with_the_feature_in(client: TestClient, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    with client.websocket_connect("/live", headers=as_customer("cus_1")) as websocket:
        assert websocket.receive_text() == "welcome"


def test_dependency_refusal_goes_through_on_denied(resolver: Resolver, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    async def upgrade(scope: dict[str, Any], feature: str) -> RedirectResponse:
        return RedirectResponse(f"/upgrade/{feature}", status_code=303)

    client = TestClient(make_fastapi(resolver, on_denied=upgrade))
    response = client.get("/seats", headers=as_customer("cus_1"), follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/upgrade/seats-feature")


def test_dependency_overrides_replace_the_dependency_in_tests(resolver: Resolver, fake_stripe: FakeStripe) -> None:
    app = make_fastapi(resolver)
    app.dependency_overrides[needs_seats] = lambda: None
    client = TestClient(app)

    assert client.get("/sync-seats", headers=as_customer("cus_1")).json() == "sync"
    assert fake_stripe.calls() == 0


def test_dependency_without_the_middleware_fails_saying_so() -> None:
    app = FastAPI()

    @app.get("/seats", dependencies=[Depends(needs_seats)])
    async def seats() -> str:
        return "seats"

    with pytest.raises(RuntimeError, match="RequiresFeature needs EntitlementMiddleware"):
        TestClient(app).get("/seats")


def test_dependency_with_a_blank_feature_fails_when_built() -> None:
    with pytest.raises(ValueError, match="non-blank"):
        RequiresFeature("")


def test_webhook_app_mounts_in_fastapi_with_add_route(resolver: Resolver) -> None:
    app = make_fastapi(resolver)
    app.add_route("/stripe/webhook", webhook_app(WebhookHandler(resolver, SECRET)))
    client = TestClient(app)

    body, signature = signed(summary_event("cus_hook", ["seats-feature"]))

    response = client.post("/stripe/webhook", content=body, headers={"stripe-signature": signature})

    assert response.json()["action"] == "applied"
    assert client.get("/seats", headers=as_customer("cus_hook")).status_code == 200


def test_dependency_with_any_of_given_as_a_string_fails_when_built() -> None:
    with pytest.raises(TypeError, match="any_of"):
        RequiresFeature(any_of="analytics")
