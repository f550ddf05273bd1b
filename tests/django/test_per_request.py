"""One ``request.entitlements`` per request: one CUSTOMER call and one Stripe request, however many checks.

The rules, the decorators, the mixin, the view's own reads, the template filters and the context
processor all read the same object, which keeps the features or the outage it met: a page with
many checks during a Stripe outage asks Stripe once, not once per check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import django
import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import AsyncClient, Client, RequestFactory

from entitlegate_django import get_resolver
from entitlegate_django.entitlements import Entitlements, entitlements_of
from tests.django import customers
from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_retries(configure: Callable[..., None], fake_stripe: FakeStripe) -> Callable[..., None]:
    """Stripe answers every request with a 500 and the SDK does not retry: a request is one call."""
    fake_stripe.always_fail = 500

    def change(**keys: object) -> None:
        configure(STRIPE_MAX_RETRIES=0, **keys)

    change()
    return change


@pytest.fixture
def counted_customer(configure: Callable[..., None]) -> Iterator[list[str]]:
    configure(CUSTOMER="tests.django.customers.counted")
    customers.calls.clear()
    yield customers.calls
    customers.calls.clear()


def test_a_page_with_template_checks_in_an_outage_asks_stripe_once(
    customer_client: Client, fake_stripe: FakeStripe, no_retries: Callable[..., None]
) -> None:
    response = customer_client.get("/home/")  # a has_feature filter and the features variable

    assert response.status_code == 200
    assert fake_stripe.calls() == 1
    assert get_resolver().stats.misses == 1  # the resolver was asked once, not once per check


def test_a_gated_page_with_many_checks_in_an_outage_asks_stripe_once(
    customer_client: Client, fake_stripe: FakeStripe, no_retries: Callable[..., None]
) -> None:
    no_retries(ON_UNAVAILABLE="allow")  # so every check runs: the rule, two decorators, the view, the template

    response = customer_client.get("/pro/checks/")

    assert response.status_code == 200
    assert b"seats:yes analytics:yes export:True seats:0 features:" in response.content
    assert fake_stripe.calls() == 1
    assert get_resolver().stats.misses == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_async_page_with_many_checks_in_an_outage_asks_stripe_once(
    async_client: AsyncClient, django_user_model: type, fake_stripe: FakeStripe, no_retries: Callable[..., None]
) -> None:
    from asgiref.sync import sync_to_async

    no_retries(ON_UNAVAILABLE="allow")
    user = await sync_to_async(django_user_model.objects.create)(username="cus_1")
    await sync_to_async(async_client.force_login)(user)

    response = await async_client.get("/pro/achecks/")

    assert response.status_code == 200
    assert response.content == b"checked [True, True]"
    assert fake_stripe.calls() == 1


def test_the_customer_function_runs_once_per_request_however_many_checks(
    customer_client: Client, fake_stripe: FakeStripe, counted_customer: list[str]
) -> None:
    fake_stripe.set_feature("seats-feature", {"seats": "3"})
    fake_stripe.set_customer("cus_1", ["seats-feature", "analytics"])

    response = customer_client.get("/pro/checks/")

    assert response.status_code == 200
    assert counted_customer == ["/pro/checks/"]
    assert fake_stripe.calls() == 1


def test_without_the_middleware_the_checks_of_a_request_share_one_lookup(
    customer_client: Client, fake_stripe: FakeStripe, no_retries: Callable[..., None], settings: object
) -> None:
    no_retries(ON_UNAVAILABLE="allow", RULES={})
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "entitlegate" not in m]  # type: ignore[attr-defined]

    response = customer_client.get("/home/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 1
    assert get_resolver().stats.misses == 1


@pytest.mark.parametrize("customer", ["tests.django.customers.wrong_type", "tests.django.customers.blank"])
def test_a_non_string_or_blank_customer_is_no_customer_for_every_check_of_the_request(
    customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    configure(CUSTOMER=customer)

    assert customer_client.get("/pro/checks/").status_code == 403
    assert customer_client.get("/home/").content.strip() == b"seats:no features:"
    assert customer_client.get("/me/limit/").json() == {"seats": 0}
    assert fake_stripe.calls() == 0


def test_a_customer_function_raising_http404_gets_django_s_404(
    customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe
) -> None:
    configure(CUSTOMER="tests.django.customers.not_found")

    assert customer_client.get("/seats/").status_code == 404
    assert fake_stripe.calls() == 0


def test_entitlements_of_a_request_is_the_one_kept_on_it() -> None:
    request = RequestFactory().get("/")

    first = entitlements_of(request)

    assert isinstance(first, Entitlements)
    assert entitlements_of(request) is first
    assert request.entitlements is first  # type: ignore[attr-defined]


@pytest.mark.skipif(
    django.VERSION < (5, 0),
    reason="Django 4.2's resolve_url catches a NoReverseMatch for a URL path in the login redirect, "
    "and that exception's traceback keeps the frames, and so the request, in a cycle",
)
def test_a_checked_request_is_freed_at_once_not_by_the_garbage_collector() -> None:
    # request.entitlements refers to the request until its customer is known, then lets it go:
    # no reference cycle, so a server frees each request (and what it holds) when it is done.
    import gc
    import weakref

    from tests.django import views

    gc.disable()
    try:
        request = RequestFactory().get("/seats/")
        request.user = AnonymousUser()  # type: ignore[attr-defined]
        assert views.seats(request).status_code == 302
        freed = weakref.ref(request)
        del request
        assert freed() is None
    finally:
        gc.enable()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_async_view_whose_customer_function_needs_the_database_finds_the_customer_in_a_thread(
    async_client: AsyncClient, django_user_model: type, fake_stripe: FakeStripe, settings: object
) -> None:
    # Without LoadUser, request.user is loaded lazily from the database: reading it in the event
    # loop raises SynchronousOnlyOperation, and the lookup is run again in a worker thread.
    from asgiref.sync import sync_to_async

    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "LoadUser" not in m]  # type: ignore[attr-defined]
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    user = await sync_to_async(django_user_model.objects.create)(username="cus_1")
    await sync_to_async(async_client.force_login)(user)

    response = await async_client.get("/aseats/")

    assert response.status_code == 200
