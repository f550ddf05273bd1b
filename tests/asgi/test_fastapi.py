"""RequiresFeature as a FastAPI dependency, in a FastAPI app behind the middleware."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.responses import RedirectResponse

from entitlegate import Resolver, WebhookHandler
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
    app = FastAPI()
    app.add_middleware(EntitlementMiddleware, resolver=resolver, customer=customer_from_header, **options)

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

    @app.get("/open")
    async def open_route() -> str:
        return "open"

    return app


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
