"""``requires_usage``: a view runs while the customer's use of a meter stays within their limit.

The resolver is a StaticSource on a MemoryCache (``factories.make_usage_resolver``: starter allows
3 exports, team 100, cus_free none) and the customer is the ``X-Customer`` header, so a request
needs no user in the database (and 100 of them can run in threads). A usage denial takes the
path of a feature denial: the site's 403 page, or the ``DENIED`` handler; an outage is a 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import django
import pytest
from django.test import AsyncClient, Client

from entitlegate import Resolver
from entitlegate.gate import UsageShortfall
from entitlegate_django import FeatureDenied, get_resolver, requires_usage
from tests.fake_stripe import FakeStripe

SYNC_GATES = ["/export/", "/class-export/"]  # the decorator, and the decorator through method_decorator
JSON = {"HTTP_ACCEPT": "application/json"}


USAGE = {
    "STRIPE_API_KEY": None,
    "STRIPE_API_BASE": None,
    "RESOLVER": "tests.django.factories.make_usage_resolver",
    "CUSTOMER": "tests.django.customers.header_customer",
}


def as_customer(customer: str) -> dict[str, str]:
    return {"HTTP_X_CUSTOMER": customer}


@pytest.fixture
def usage(configure: Callable[..., None]) -> Resolver:
    """The settings point at the usage resolver; it, fresh for this test."""
    configure(**USAGE)
    return get_resolver()


@pytest.fixture
def denials(usage: Resolver, configure: Callable[..., None]) -> list[FeatureDenied]:
    """DENIED set to a handler that keeps what it was handed."""
    from tests.django import factories

    factories.denials.clear()
    configure(**USAGE, DENIED="tests.django.factories.keep_denial")
    return factories.denials


@pytest.mark.parametrize("path", SYNC_GATES)
def test_the_gate_admits_exactly_the_limit_then_shows_the_sites_403_page(
    client: Client, usage: Resolver, path: str
) -> None:
    statuses = [client.post(path, **as_customer("cus_starter")).status_code for _ in range(3)]
    response = client.post(path, **as_customer("cus_starter"))

    assert statuses == [200, 200, 200]
    assert response.status_code == 403
    assert b"<h1>No entry</h1>" in response.content
    assert b"Your plan allows 3 of &#x27;exports&#x27; this period, and 3 are used." in response.content
    assert usage.usage("cus_starter", "exports") == 3


def test_a_json_denied_handler_gets_the_body_naming_meter_usage_and_limit(
    client: Client, configure: Callable[..., None]
) -> None:
    configure(**USAGE, DENIED="tests.django.factories.json_denial")
    usage = get_resolver()
    for _ in range(3):
        client.post("/export/", **as_customer("cus_starter"))

    response = client.post("/export/", **as_customer("cus_starter"), **JSON)

    assert response.status_code == 403
    assert response.json() == {"error": "usage_exceeded", "meter": "exports", "usage": 3, "limit": 3}
    assert usage.usage("cus_starter", "exports") == 3


def test_a_usage_denial_goes_to_the_denied_handler_with_its_usage(client: Client, denials: list[FeatureDenied]) -> None:
    assert get_resolver().usage("cus_free", "exports") == 0  # the usage resolver, with DENIED set
    response = client.post("/export/", **as_customer("cus_free"))

    assert response.status_code == 402
    (denial,) = denials
    assert (denial.feature, denial.customer) == ("exports", "cus_free")
    assert denial.usage == UsageShortfall("exports", 0, 0, 1)
    assert denial.shortfall is None


def test_a_number_limit_and_a_value_count_for_every_customer(client: Client, usage: Resolver) -> None:
    statuses = [client.post("/big-export/", **as_customer("cus_free")).status_code for _ in range(3)]
    assert statuses == [200, 200, 403]
    assert usage.usage("cus_free", "exports") == 4


def test_without_a_customer_the_visitor_is_sent_to_login_and_nothing_is_counted(
    client: Client, usage: Resolver
) -> None:
    response = client.post("/export/")

    assert (response.status_code, response["Location"]) == (302, "/login/?next=/export/")
    assert usage.stats.source_calls == 0


def test_100_concurrent_requests_at_one_below_the_limit_admit_exactly_one(usage: Resolver) -> None:
    usage.record_usage("cus_team", "exports", 99)
    start = threading.Barrier(100)
    statuses: list[int] = []

    def request() -> None:
        client = Client()  # one client per thread: a test client is not shared across threads
        start.wait()
        statuses.append(client.post("/export/", **as_customer("cus_team")).status_code)

    threads = [threading.Thread(target=request) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [403] * 99
    assert usage.usage("cus_team", "exports") == 100


@pytest.mark.asyncio
async def test_an_async_view_admits_exactly_the_limit_then_is_denied(usage: Resolver) -> None:
    client = AsyncClient()
    statuses = [(await client.post("/aexport/", headers={"X-Customer": "cus_starter"})).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 403]
    assert await usage.ausage("cus_starter", "exports") == 3


@pytest.mark.skipif(django.VERSION < (5, 0), reason="AsyncClient takes headers= from Django 5.0")
@pytest.mark.asyncio
async def test_100_concurrent_async_requests_at_one_below_the_limit_admit_exactly_one(usage: Resolver) -> None:
    import asyncio

    await usage.arecord_usage("cus_team", "exports", 99)
    client = AsyncClient()
    responses = await asyncio.gather(
        *(client.post("/aexport/", headers={"X-Customer": "cus_team"}) for _ in range(100))
    )

    assert sorted(r.status_code for r in responses) == [200] + [403] * 99
    assert await usage.ausage("cus_team", "exports") == 100


# An outage: the settings' StripeSource talks to a fake Stripe that fails, and the counter is cold.


@pytest.fixture
def stripe_down(fake_stripe: FakeStripe, configure: Callable[..., None]) -> Iterator[Callable[[str], None]]:
    """``stripe_down(policy)``: settings on a failing Stripe; after the test, Stripe back, the resolver closed."""
    fake_stripe.set_feature("starter", {"exports": "3"})
    fake_stripe.set_customer("cus_starter", ["starter"])
    fake_stripe.add_meter("exports")
    fake_stripe.always_fail = 500

    def policy(on_unavailable: str) -> None:
        configure(CUSTOMER="tests.django.customers.header_customer", ON_UNAVAILABLE=on_unavailable)

    yield policy
    fake_stripe.always_fail = None
    get_resolver().close()  # sends what an "allow" let through


@pytest.mark.parametrize(("policy", "status"), [("raise", 503), ("deny", 403), ("allow", 200)])
@pytest.mark.parametrize("path", ["/export/", "/big-export/"])
def test_a_cold_counter_with_stripe_down_follows_the_outage_policy(
    client: Client, stripe_down: Callable[[str], None], policy: str, status: int, path: str
) -> None:
    stripe_down(policy)
    assert client.post(path, **as_customer("cus_starter")).status_code == status


@pytest.mark.django_db
def test_the_portal_upgrade_handler_tells_a_json_client_the_usage_and_where_to_upgrade(
    client: Client, fake_stripe: FakeStripe, configure: Callable[..., None]
) -> None:
    fake_stripe.set_customer("cus_free", [])
    fake_stripe.add_meter("exports")
    configure(CUSTOMER="tests.django.customers.header_customer", DENIED="entitlegate_django.denied.portal_upgrade")

    response = client.post("/export/", **as_customer("cus_free"), **JSON)

    assert response.status_code == 403
    body = response.json()
    assert body.pop("upgrade_url").startswith("https://")
    assert body == {"error": "usage_exceeded", "meter": "exports", "usage": 0, "limit": 0}


def test_requires_usage_refuses_bad_arguments_at_decoration() -> None:
    with pytest.raises(ValueError, match="meter"):
        requires_usage(" ", limit="exports")
    with pytest.raises(ValueError, match="whole number"):
        requires_usage("exports", limit=-1)


def test_the_decorated_view_keeps_its_requirement() -> None:
    from tests.django import views

    assert views.export.required_usage.meter == "exports"  # type: ignore[attr-defined]
