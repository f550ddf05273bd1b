"""EntitlementMiddleware through Starlette's TestClient: rules, refusals, and the lazy entitlements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from entitlegate import CacheUnavailable, Resolver, StaticSource, StripeSource
from entitlegate.gate import Cause, aportal_url, denial_cause
from entitlegate.testing import override_features
from entitlegate_asgi import EntitlementMiddleware
from tests.asgi.support import JSON, TestClient, as_customer, customer_from_header, ok, websocket_refusal
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, PORTAL_SESSIONS, FakeStripe

MakeApp = Callable[..., Starlette]


# -- rules ----------------------------------------------------------------------------------------


def test_customer_with_the_feature_reaches_a_ruled_route(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = TestClient(make_app()).get("/pro", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert response.text == "ok"


def test_customer_without_the_feature_gets_403_in_plain_text(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["other-feature"])

    response = TestClient(make_app()).get("/pro", headers=as_customer("cus_1"))

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert "seats-feature" in response.text


def test_refusal_is_json_for_a_client_that_accepts_json(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])

    response = TestClient(make_app()).get("/pro", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 403
    assert response.json() == {"error": "feature_required", "feature": "seats-feature"}


def test_request_without_a_customer_gets_401_and_asks_stripe_nothing(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    response = TestClient(make_app()).get("/pro", headers=JSON)

    assert response.status_code == 401
    assert response.json() == {"error": "customer_required"}
    assert fake_stripe.calls() == 0


def test_outage_on_a_ruled_route_answers_503(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    response = TestClient(make_app()).get("/pro", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 503
    assert response.json() == {"error": "entitlements_unavailable"}


def test_outage_under_on_unavailable_deny_is_answered_as_unavailable_not_as_an_upsell(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500
    app = make_app(resolver=Resolver(_stripe_source(fake_stripe), on_unavailable="deny"))

    response = TestClient(app).get("/pro", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 503
    assert response.json() == {"error": "entitlements_unavailable"}


def test_outage_under_on_unavailable_deny_refuses_a_websocket_as_unavailable(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500
    app = make_app(resolver=Resolver(_stripe_source(fake_stripe), on_unavailable="deny"))

    assert websocket_refusal(TestClient(app), "/pro/live", as_customer("cus_1")).status_code == 503


def test_on_denied_is_told_that_a_denial_comes_from_the_outage_policy(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    fake_stripe.always_fail = 500
    seen: list[tuple[str, Cause]] = []

    def upgrade(scope: dict[str, Any], feature: str) -> Response:
        seen.append((feature, denial_cause(feature)))
        return PlainTextResponse("try again soon" if denial_cause(feature) is Cause.UNAVAILABLE else "upgrade", 503)

    app = make_app(resolver=Resolver(_stripe_source(fake_stripe), on_unavailable="deny"), on_denied=upgrade)
    response = TestClient(app).get("/pro", headers=as_customer("cus_1"))

    assert (response.status_code, response.text) == (503, "try again soon")
    assert seen == [("seats-feature", Cause.UNAVAILABLE)]


def test_outage_under_on_unavailable_allow_lets_the_request_through(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500
    app = make_app(resolver=Resolver(_stripe_source(fake_stripe), on_unavailable="allow"))

    response = TestClient(app).get("/pro", headers=as_customer("cus_1"))

    assert (response.status_code, response.text) == (200, "ok")


def test_rules_match_on_path_segment_boundaries(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = TestClient(make_app())

    assert client.get("/pro/reports", headers=as_customer("cus_1")).status_code == 403
    assert client.get("/products", headers=as_customer("cus_1")).status_code == 200


def test_longest_prefix_wins(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["analytics"])
    app = make_app(rules={"/pro": "seats-feature", "/pro/reports": "analytics"})

    response = TestClient(app).get("/pro/reports", headers=as_customer("cus_1"))

    assert response.status_code == 200


def test_gated_request_on_a_cache_hit_does_not_ask_stripe_again(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    client = TestClient(make_app())

    statuses = [client.get("/pro", headers=as_customer("cus_1")).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == 1


def test_override_features_pins_a_customer_without_asking_stripe(
    make_app: MakeApp, resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    with override_features(resolver, {"cus_1": {"seats-feature"}}):
        response = TestClient(make_app()).get("/pro", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


# -- routes no rule gates -------------------------------------------------------------------------


def test_route_no_rule_gates_makes_no_stripe_call(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    response = TestClient(make_app()).get("/free", headers=as_customer("cus_1"))

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


def test_route_no_rule_gates_does_not_answer_503_in_an_outage(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 500

    response = TestClient(make_app()).get("/free", headers=as_customer("cus_1"))

    assert response.status_code == 200


def test_ruled_route_sees_its_entitlements_loaded(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature", "export"])

    async def read_without_loading(request: Request) -> Response:
        return JSONResponse(sorted(request.state.entitlements.features))

    app = make_app([Route("/pro/export", read_without_loading)])

    response = TestClient(app).get("/pro/export", headers=as_customer("cus_1"))

    assert response.json() == ["export", "seats-feature"]


def test_load_gives_an_unruled_endpoint_the_customers_features(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])

    response = TestClient(make_app()).get("/features", headers=as_customer("cus_1"))

    assert response.json() == {"customer": "cus_1", "features": ["seats-feature"]}


def test_load_without_a_customer_gives_no_features(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    response = TestClient(make_app()).get("/features")

    assert response.json() == {"customer": None, "features": []}
    assert fake_stripe.calls() == 0


def test_reading_entitlements_before_loading_raises_saying_how_to_load(make_app: MakeApp) -> None:
    async def read_without_loading(request: Request) -> Response:
        return JSONResponse(sorted(request.state.entitlements.features))

    client = TestClient(make_app([Route("/free/features", read_without_loading)]))

    with pytest.raises(RuntimeError, match=r"await request\.state\.entitlements\.load\(\)"):
        client.get("/free/features", headers=as_customer("cus_1"))


def test_features_read_in_an_outage_and_not_handled_answer_503(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503

    response = TestClient(make_app()).get("/features", headers=as_customer("cus_1", **JSON))

    assert response.status_code == 503
    assert response.json() == {"error": "entitlements_unavailable"}


def test_has_feature_in_an_outage_answers_as_on_unavailable_says(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503

    async def has_seats(request: Request) -> Response:
        entitlements = await request.state.entitlements.load()
        return JSONResponse(entitlements.has_feature("seats-feature"))

    app = make_app([Route("/seats", has_seats)], resolver=Resolver(_stripe_source(fake_stripe), on_unavailable="allow"))

    response = TestClient(app).get("/seats", headers=as_customer("cus_1"))

    assert response.json() is True


# -- customer callables ---------------------------------------------------------------------------


def test_async_customer_callable_is_awaited(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_async", ["seats-feature"])

    async def customer(scope: dict[str, Any]) -> str | None:
        return "cus_async"

    response = TestClient(make_app(customer=customer)).get("/pro")

    assert response.status_code == 200


def test_customer_callable_returning_an_empty_id_means_no_customer(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    client = TestClient(make_app(customer=lambda scope: ""))

    response = client.get("/pro")

    assert response.status_code == 401
    assert fake_stripe.calls() == 0


@pytest.mark.parametrize("returned", ["   ", " cus_1", "cus_1\n", 42, b"cus_1", ["cus_1"]], ids=repr)
def test_customer_callable_returning_no_customer_id_gets_401_and_a_log_line(
    make_app: MakeApp, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, returned: object
) -> None:
    def customer(scope: dict[str, Any]) -> object:
        return returned

    # A name of its own per case, so the once-a-minute limit on the same log line hides no case.
    customer.__qualname__ = f"customer_returning_{returned!r}"

    response = TestClient(make_app(customer=customer)).get("/pro", headers=JSON)

    assert (response.status_code, response.json()) == (401, {"error": "customer_required"})
    assert fake_stripe.calls() == 0
    assert any("EntitlementMiddleware customer=" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_customer_callable_that_raises_gets_401_and_a_log_line_with_the_traceback(
    make_app: MakeApp, fake_stripe: FakeStripe, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    def sync_customer(scope: dict[str, Any]) -> str:
        raise KeyError("user")

    async def async_customer(scope: dict[str, Any]) -> str:
        raise KeyError("user")

    customer = sync_customer if kind == "sync" else async_customer
    customer.__qualname__ = f"customer_raising_{kind}"
    response = TestClient(make_app(customer=customer)).get("/pro")

    assert response.status_code == 401
    assert fake_stripe.calls() == 0
    (record,) = [r for r in caplog.records if "EntitlementMiddleware customer=" in r.getMessage()]
    assert "KeyError" in record.getMessage()
    assert record.exc_info is not None


def test_customer_callable_that_raises_on_an_unruled_route_loads_no_customer(
    make_app: MakeApp, fake_stripe: FakeStripe
) -> None:
    def customer(scope: dict[str, Any]) -> str:
        raise LookupError("no session")

    response = TestClient(make_app(customer=customer)).get("/features")

    assert response.json() == {"customer": None, "features": []}


# -- on_denied ------------------------------------------------------------------------------------


def test_on_denied_answers_a_customer_without_the_feature(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    seen: list[str] = []

    def upgrade(scope: dict[str, Any], feature: str) -> Response:
        seen.append(feature)
        return RedirectResponse(f"/upgrade?feature={feature}", status_code=303)

    response = TestClient(make_app(on_denied=upgrade)).get("/pro", headers=as_customer("cus_1"), follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/upgrade?feature=seats-feature"
    assert seen == ["seats-feature"]


def test_async_on_denied_can_redirect_to_a_customer_portal_session(
    make_app: MakeApp, resolver: Resolver, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    async def upgrade(scope: dict[str, Any], feature: str) -> Response:
        customer = scope["state"]["entitlements"].customer
        return RedirectResponse(await aportal_url(resolver, customer, "https://example.test/pro"), status_code=303)

    response = TestClient(make_app(on_denied=upgrade)).get("/pro", headers=as_customer("cus_1"), follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("https://billing.stripe.test/p/session/")
    assert fake_stripe.calls(PORTAL_SESSIONS) == 1


def test_on_denied_is_not_asked_about_a_request_without_a_customer(make_app: MakeApp) -> None:
    def upgrade(scope: dict[str, Any], feature: str) -> Response:
        raise AssertionError("on_denied is for customers lacking a feature")

    response = TestClient(make_app(on_denied=upgrade)).get("/pro")

    assert response.status_code == 401


def test_on_denied_returning_no_asgi_app_fails_clearly(make_app: MakeApp, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", [])
    client = TestClient(make_app(on_denied=lambda scope, feature: None))

    with pytest.raises(TypeError, match="on_denied= must return an ASGI app"):
        client.get("/pro", headers=as_customer("cus_1"))


# -- construction ---------------------------------------------------------------------------------


def test_bad_rule_fails_at_construction_naming_rules(resolver: Resolver) -> None:
    with pytest.raises(ValueError, match=r"rules=.*'pro'"):
        EntitlementMiddleware(ok, resolver=resolver, customer=customer_from_header, rules={"pro": "seats-feature"})


def test_resolver_that_is_not_a_resolver_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="resolver="):
        EntitlementMiddleware(ok, resolver=object(), customer=customer_from_header)  # type: ignore[arg-type]


def test_customer_that_is_not_callable_fails_at_construction(resolver: Resolver) -> None:
    with pytest.raises(TypeError, match="customer="):
        EntitlementMiddleware(ok, resolver=resolver, customer="cus_1")  # type: ignore[arg-type]


def test_repr_never_shows_the_stripe_api_key(resolver: Resolver, fake_stripe: FakeStripe) -> None:
    middleware = EntitlementMiddleware(ok, resolver=resolver, customer=customer_from_header, rules={"/pro": "x"})

    assert fake_stripe.api_key not in repr(middleware)


def test_static_source_works_without_stripe(make_app: MakeApp) -> None:
    app = make_app(resolver=Resolver(StaticSource({"cus_1": ["seats-feature"]})))

    assert TestClient(app).get("/pro", headers=as_customer("cus_1")).status_code == 200


def _stripe_source(fake_stripe: FakeStripe) -> StripeSource:
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


def test_customer_can_come_from_starlettes_authentication_middleware(
    fake_stripe: FakeStripe, resolver: Resolver
) -> None:
    fake_stripe.set_customer("cus_signed_in", ["seats-feature"])

    class HeaderAuth(AuthenticationBackend):
        async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
            name = conn.headers.get("x-user")
            return None if name is None else (AuthCredentials(["authenticated"]), SimpleUser(name))

    def customer(scope: dict[str, Any]) -> str | None:
        user = scope["user"]
        return f"cus_{user.username}" if user.is_authenticated else None

    app = Starlette(
        routes=[Route("/pro", ok)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=HeaderAuth()),  # outside, so scope["user"] is set first
            Middleware(EntitlementMiddleware, resolver=resolver, customer=customer, rules={"/pro": "seats-feature"}),
        ],
    )
    client = TestClient(app)

    assert client.get("/pro", headers={"x-user": "signed_in"}).status_code == 200
    assert client.get("/pro").status_code == 401


def test_cors_preflight_is_answered_by_corsmiddleware_placed_before_it(resolver: Resolver) -> None:
    app = Starlette(
        routes=[Route("/pro", ok)],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["https://example.test"], allow_methods=["GET"]),
            Middleware(
                EntitlementMiddleware, resolver=resolver, customer=customer_from_header, rules={"/pro": "seats-feature"}
            ),
        ],
    )
    preflight = {"origin": "https://example.test", "access-control-request-method": "GET"}

    response = TestClient(app).options("/pro", headers=preflight)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://example.test"


def test_a_change_the_shared_cache_could_not_take_and_not_handled_answers_503(make_app: MakeApp) -> None:
    async def invalidate(request: Request) -> Response:
        raise CacheUnavailable("Redis is unavailable: 'cus_1' is invalidated in this process only")

    response = TestClient(make_app([Route("/invalidate", invalidate)])).get("/invalidate", headers=JSON)

    assert response.status_code == 503


def test_rules_given_as_a_string_fail_at_construction_naming_rules(resolver: Resolver) -> None:
    with pytest.raises(TypeError, match="rules="):
        EntitlementMiddleware(ok, resolver=resolver, customer=customer_from_header, rules="/pro")  # type: ignore[arg-type]
