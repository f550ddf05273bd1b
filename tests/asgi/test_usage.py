"""``requires_usage`` and ``RequiresUsage``: an endpoint runs while the customer stays within a meter's limit.

The resolver is a StaticSource on a MemoryCache (starter allows 3 exports, team 100, cus_free
none); each request let through counts one use at admission. A usage denial is refused as a
missing feature is (403 with ``{"error": "usage_exceeded", "meter", "usage", "limit"}``, plain
text for a browser, or ``on_denied``); an outage of a cold counter is a 503 under "raise".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from entitlegate import MemoryCache, Resolver, StaticSource, StripeSource
from entitlegate.gate import denial_usage
from entitlegate_asgi import EntitlementMiddleware, Entitlements, RequiresUsage, requires_usage
from tests.asgi.support import JSON, TestClient, as_customer, customer_from_header, websocket_refusal
from tests.fake_stripe import FakeStripe

MakeApp = Callable[..., Starlette]
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CUSTOMERS = {"cus_starter": ["starter"], "cus_team": ["team"], "cus_free": []}
PLANS = {"starter": {"exports": "3"}, "team": {"exports": "100"}}


@pytest.fixture
def usage() -> Resolver:
    return Resolver(StaticSource(CUSTOMERS, features=PLANS), MemoryCache())


@requires_usage("exports", limit="exports")
async def export(request: Request) -> Response:
    return PlainTextResponse("exported")


@requires_usage("exports", limit=4, value=2)
def big_export(request: Request) -> Response:
    return PlainTextResponse("exported twice over")


@requires_usage("exports", limit="exports")
async def export_feed(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("exporting")
    await websocket.close()


def routes() -> list[Any]:
    return [
        Route("/export", export, methods=["POST"]),
        Route("/big-export", big_export, methods=["POST"]),
        WebSocketRoute("/export/live", export_feed),
    ]


def test_the_gate_admits_exactly_the_limit_then_tells_a_json_client_meter_usage_and_limit(
    make_app: MakeApp, usage: Resolver
) -> None:
    client = TestClient(make_app(routes(), resolver=usage))
    statuses = [client.post("/export", headers=as_customer("cus_starter")).status_code for _ in range(3)]

    response = client.post("/export", headers=as_customer("cus_starter", **JSON))

    assert statuses == [200, 200, 200]
    assert response.status_code == 403
    assert response.json() == {"error": "usage_exceeded", "meter": "exports", "usage": 3, "limit": 3}
    assert usage.usage("cus_starter", "exports") == 3


def test_a_browser_over_the_limit_gets_the_plain_denial(make_app: MakeApp, usage: Resolver) -> None:
    client = TestClient(make_app(routes(), resolver=usage))

    response = client.post("/export", headers=as_customer("cus_free", **BROWSER))

    assert response.status_code == 403
    assert response.text == "Forbidden: the plan allows 0 exports this period, and 0 are used.\n"


def test_a_usage_denial_goes_to_on_denied_naming_the_meter(make_app: MakeApp, usage: Resolver) -> None:
    def upgrade(scope: Any, feature: str) -> Response:
        return PlainTextResponse(f"upgrade for {feature}: {denial_usage(feature)}", 402)

    client = TestClient(make_app(routes(), resolver=usage, on_denied=upgrade))

    response = client.post("/export", headers=as_customer("cus_free"))

    assert (response.status_code, response.text) == (
        402,
        "upgrade for exports: UsageShortfall(meter='exports', usage=0, limit=0, value=1)",
    )


def test_a_number_limit_and_a_value_count_for_every_customer_in_a_sync_endpoint(
    make_app: MakeApp, usage: Resolver
) -> None:
    client = TestClient(make_app(routes(), resolver=usage))
    statuses = [client.post("/big-export", headers=as_customer("cus_free")).status_code for _ in range(3)]

    assert statuses == [200, 200, 403]
    assert usage.usage("cus_free", "exports") == 4


def test_without_a_customer_it_is_a_401_and_nothing_is_counted(make_app: MakeApp, usage: Resolver) -> None:
    response = TestClient(make_app(routes(), resolver=usage)).post("/export", headers=JSON)

    assert (response.status_code, response.json()) == (401, {"error": "customer_required"})
    assert usage.stats.source_calls == 0


def test_a_websocket_over_the_limit_is_refused_before_it_is_accepted(make_app: MakeApp, usage: Resolver) -> None:
    client = TestClient(make_app(routes(), resolver=usage))

    refused = websocket_refusal(client, "/export/live", as_customer("cus_free", **JSON))
    with client.websocket_connect("/export/live", headers=as_customer("cus_starter")) as websocket:
        greeting = websocket.receive_text()

    assert refused.status_code == 403
    assert refused.json() == {"error": "usage_exceeded", "meter": "exports", "usage": 0, "limit": 0}
    assert greeting == "exporting"


@pytest.mark.asyncio
async def test_100_concurrent_requests_at_one_below_the_limit_admit_exactly_one(
    make_app: MakeApp, usage: Resolver
) -> None:
    await usage.arecord_usage("cus_team", "exports", 99)
    transport = httpx.ASGITransport(app=make_app(routes(), resolver=usage))

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        responses = await asyncio.gather(
            *(asyncio.create_task(client.post("/export", headers=as_customer("cus_team"))) for _ in range(100))
        )

    assert sorted(response.status_code for response in responses) == [200] + [403] * 99
    assert await usage.ausage("cus_team", "exports") == 100


# -- an outage: a cold counter, and a StripeSource whose fake Stripe fails --------------------------


@pytest.fixture
def stripe_resolver(fake_stripe: FakeStripe) -> Iterator[Callable[[str], Resolver]]:
    """``stripe_resolver(policy)``: a fresh resolver on a failing Stripe; closed after, Stripe back."""
    fake_stripe.set_feature("starter", {"exports": "3"})
    fake_stripe.set_customer("cus_starter", ["starter"])
    fake_stripe.add_meter("exports")
    fake_stripe.always_fail = 500
    made: list[Resolver] = []

    def make(policy: str) -> Resolver:
        source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)
        made.append(Resolver(source, MemoryCache(), on_unavailable=policy))  # type: ignore[arg-type]
        return made[-1]

    yield make
    fake_stripe.always_fail = None
    for resolver in made:
        resolver.close()  # sends what an "allow" let through


@pytest.mark.parametrize(("policy", "status"), [("raise", 503), ("deny", 503), ("allow", 200)])
@pytest.mark.parametrize("path", ["/export", "/big-export"])
def test_a_cold_counter_with_stripe_down_follows_the_outage_policy(
    make_app: MakeApp, stripe_resolver: Callable[[str], Resolver], policy: str, status: int, path: str
) -> None:
    # "deny" without on_denied is a 503 too, as for features: an outage is no upsell.
    client = TestClient(make_app(routes(), resolver=stripe_resolver(policy)))

    response = client.post(path, headers=as_customer("cus_starter", **JSON))

    assert response.status_code == status


def test_an_outage_denial_reaches_on_denied_as_unavailable(
    make_app: MakeApp, stripe_resolver: Callable[[str], Resolver]
) -> None:
    from entitlegate.gate import Cause, denial_cause

    seen: list[Cause] = []

    def upgrade(scope: Any, feature: str) -> Response:
        seen.append(denial_cause(feature))
        return PlainTextResponse("try later", 503)

    client = TestClient(make_app(routes(), resolver=stripe_resolver("deny"), on_denied=upgrade))

    assert client.post("/export", headers=as_customer("cus_starter")).status_code == 503
    assert seen == [Cause.UNAVAILABLE]


# -- FastAPI -----------------------------------------------------------------------------------------

one_export = RequiresUsage("exports", limit="exports")
ExportEntitlements = Annotated[Entitlements, Depends(one_export)]


def fastapi_app(resolver: Resolver) -> FastAPI:
    app = FastAPI()
    app.add_middleware(EntitlementMiddleware, resolver=resolver, customer=customer_from_header)

    @app.post("/export")
    async def run_export(entitlements: ExportEntitlements) -> dict[str, str | None]:
        return {"exported_for": entitlements.customer}

    return app


def test_the_dependency_admits_exactly_the_limit_then_refuses_with_the_usage_body(usage: Resolver) -> None:
    client = TestClient(fastapi_app(usage))
    answers = [client.post("/export", headers=as_customer("cus_starter")).json() for _ in range(3)]

    response = client.post("/export", headers=as_customer("cus_starter", **JSON))

    assert answers == [{"exported_for": "cus_starter"}] * 3
    assert response.status_code == 403
    assert response.json() == {"error": "usage_exceeded", "meter": "exports", "usage": 3, "limit": 3}


def test_the_dependency_in_an_outage_is_a_503(stripe_resolver: Callable[[str], Resolver]) -> None:
    client = TestClient(fastapi_app(stripe_resolver("raise")))

    response = client.post("/export", headers=as_customer("cus_starter", **JSON))

    assert (response.status_code, response.json()) == (503, {"error": "entitlements_unavailable"})


@pytest.mark.asyncio
async def test_100_concurrent_requests_through_the_dependency_admit_exactly_one(usage: Resolver) -> None:
    await usage.arecord_usage("cus_team", "exports", 99)
    transport = httpx.ASGITransport(app=fastapi_app(usage))

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        responses = await asyncio.gather(*(client.post("/export", headers=as_customer("cus_team")) for _ in range(100)))

    assert sorted(response.status_code for response in responses) == [200] + [403] * 99


def test_the_dependency_can_be_overridden_and_has_a_readable_repr(usage: Resolver) -> None:
    app = fastapi_app(usage)

    async def everyone(request: Request) -> Entitlements:
        entitlements: Entitlements = await request.state.entitlements.load()
        return entitlements

    app.dependency_overrides[one_export] = everyone

    assert TestClient(app).post("/export", headers=as_customer("cus_free")).status_code == 200
    assert usage.usage("cus_free", "exports") == 0
    assert repr(one_export) == "RequiresUsage('exports', limit='exports', value=1)"


def test_bad_arguments_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match="meter"):
        requires_usage(" ", limit="exports")
    with pytest.raises(ValueError, match="value"):
        RequiresUsage("exports", limit=3, value=0)
