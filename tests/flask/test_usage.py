"""``@requires_usage``: a use of a meter is let through while the period's total stays within the limit.

The counter is the resolver's (MemoryCache here); each request let through counts one use at
admission. A usage denial takes the feature denial's path: 403, the denied handler naming the
meter, or ``{"error": "usage_exceeded", "meter", "usage", "limit"}`` for a JSON client; an
outage of the counter (cold, with Stripe down) is a 503 under "raise".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask

from entitlegate import MemoryCache, Resolver, StaticSource, StripeSource
from entitlegate.gate import denial_usage
from entitlegate.resolver import OnUnavailable
from entitlegate_flask import Entitlements, requires_usage
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CUSTOMERS = {"cus_starter": ["starter"], "cus_team": ["team"], "cus_free": []}
PLANS = {"starter": {"exports": "3"}, "team": {"exports": "100"}}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(StaticSource(CUSTOMERS, features=PLANS), MemoryCache())


def gated_app(make_app: AppFactory, resolver: Resolver) -> tuple[Flask, Entitlements]:
    extension = Entitlements(resolver=resolver)
    extension.customer_loader(header_customer)
    app = make_app(extension, ENTITLEGATE_STRIPE_API_KEY=..., ENTITLEGATE_STRIPE_API_BASE=...)

    @app.post("/export")
    @requires_usage("exports", limit="exports")
    def export() -> str:
        return "exported"

    @app.post("/async-export")
    @requires_usage("exports", limit="exports")
    async def async_export() -> str:
        return "exported"

    @app.post("/big-export")
    @requires_usage("exports", limit=4, value=2)
    def big_export() -> str:
        return "exported twice over"

    return app, extension


@pytest.fixture
def app(make_app: AppFactory, resolver: Resolver) -> Flask:
    return gated_app(make_app, resolver)[0]


def post(app: Flask, path: str, customer: str | None = "cus_starter", **headers: str) -> tuple[int, str]:
    if customer is not None:
        headers["X-Customer"] = customer
    response = app.test_client().post(path, headers=headers)
    return response.status_code, response.text


@pytest.mark.parametrize("path", ["/export", "/async-export"])
def test_the_gate_admits_exactly_the_limit_then_tells_a_json_client_meter_usage_and_limit(
    app: Flask, resolver: Resolver, path: str
) -> None:
    assert [post(app, path)[0] for _ in range(3)] == [200, 200, 200]

    response = app.test_client().post(path, headers={"X-Customer": "cus_starter", **JSON})

    assert response.status_code == 403
    assert response.json == {"error": "usage_exceeded", "meter": "exports", "usage": 3, "limit": 3}
    assert response.headers["Vary"] == "Accept"
    assert resolver.usage("cus_starter", "exports") == 3


def test_a_browser_over_the_limit_gets_the_apps_403_page(app: Flask) -> None:
    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[str, int]:
        return "no exports left", 403

    for _ in range(3):
        post(app, "/export")
    assert post(app, "/export", **BROWSER) == (403, "no exports left")


def test_a_usage_denial_goes_to_the_denied_handler_naming_the_meter(make_app: AppFactory, resolver: Resolver) -> None:
    app, extension = gated_app(make_app, resolver)

    @extension.denied_handler
    def upgrade(feature: str) -> tuple[str, int]:
        return f"upgrade for {feature}: {denial_usage(feature)}", 402

    assert post(app, "/export", "cus_free") == (
        402,
        "upgrade for exports: UsageShortfall(meter='exports', usage=0, limit=0, value=1)",
    )


def test_a_number_limit_and_a_value_count_for_every_customer(app: Flask, resolver: Resolver) -> None:
    assert [post(app, "/big-export", "cus_free")[0] for _ in range(3)] == [200, 200, 403]
    assert resolver.usage("cus_free", "exports") == 4


@pytest.mark.parametrize("customer", [None, "  "])
def test_without_a_customer_it_is_401_and_nothing_is_counted(app: Flask, resolver: Resolver, customer: str) -> None:
    assert post(app, "/export", customer)[0] == 401
    assert resolver.stats.source_calls == 0


def test_100_concurrent_requests_at_one_below_the_limit_admit_exactly_one(app: Flask, resolver: Resolver) -> None:
    resolver.record_usage("cus_team", "exports", 99)
    start = threading.Barrier(100)
    statuses: list[int] = []

    def request() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.post("/export", headers={"X-Customer": "cus_team"}).status_code)

    threads = [threading.Thread(target=request) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [403] * 99
    assert resolver.usage("cus_team", "exports") == 100


# An outage: a fresh resolver (a cold counter) whose StripeSource talks to a fake Stripe that fails.


@pytest.fixture
def stripe_down(fake_stripe: FakeStripe) -> Iterator[list[Resolver]]:
    """Stripe failing; the resolvers made on it are closed after the test, Stripe back."""
    fake_stripe.set_feature("starter", {"exports": "3"})
    fake_stripe.set_customer("cus_starter", ["starter"])
    fake_stripe.add_meter("exports")
    fake_stripe.always_fail = 500
    made: list[Resolver] = []
    yield made
    fake_stripe.always_fail = None
    for resolver in made:
        resolver.close()  # sends what an "allow" let through


def stripe_app(make_app: AppFactory, fake: FakeStripe, made: list[Resolver], policy: OnUnavailable) -> Flask:
    source = StripeSource(api_key=fake.api_key, api_base=fake.url, max_retries=0)
    made.append(Resolver(source, MemoryCache(), on_unavailable=policy, retry_after=0))
    return gated_app(make_app, made[-1])[0]


@pytest.mark.parametrize(
    ("policy", "status"),
    [("raise", 503), ("deny", 403), ("allow", 200)],
)
@pytest.mark.parametrize("path", ["/export", "/big-export"])
def test_a_cold_counter_with_stripe_down_follows_the_outage_policy(
    make_app: AppFactory,
    fake_stripe: FakeStripe,
    stripe_down: list[Resolver],
    policy: OnUnavailable,
    status: int,
    path: str,
) -> None:
    app = stripe_app(make_app, fake_stripe, stripe_down, policy)
    assert post(app, path)[0] == status


def test_a_cold_counter_with_stripe_back_counts_from_stripes_total(
    make_app: AppFactory, fake_stripe: FakeStripe, stripe_down: list[Resolver]
) -> None:
    app = stripe_app(make_app, fake_stripe, stripe_down, "raise")
    assert post(app, "/export")[0] == 503
    fake_stripe.always_fail = None
    assert [post(app, "/export")[0] for _ in range(4)] == [200, 200, 200, 403]


@pytest.mark.parametrize(
    ("meter", "limit", "value", "says"),
    [
        ("", "exports", 1, "meter"),
        ("exports", "", 1, "limit name"),
        ("exports", -1, 1, "whole number >= 0"),
        ("exports", "exports", 0, "value"),
    ],
)
def test_requires_usage_refuses_bad_arguments_at_decoration(
    meter: str, limit: str | int, value: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        requires_usage(meter, limit=limit, value=value)
