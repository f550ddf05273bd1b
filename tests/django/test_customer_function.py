"""A CUSTOMER function with a bug never gives a 500: the request has no customer, and a log says why.

The rule is ``entitlegate.gate.read_customer``'s: None and "" are no customer; a function that
raises, or returns a blank or padded string or a non-string, is logged and treated as no customer,
so every gate (decorator, mixin, middleware rule, template) answers 403 / login, and nothing odd
reaches Stripe.
"""

from __future__ import annotations

from collections.abc import Callable

import django
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from entitlegate import gate
from tests.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db

BUGGY = [
    "tests.django.customers.raises",
    "tests.django.customers.blank",
    "tests.django.customers.padded",
    "tests.django.customers.wrong_type",
]
GATED = ["/seats/", "/class-seats/", "/decorated/", "/pro/"]  # decorator, mixin, method_decorator, rule


@pytest.fixture
def fresh_log_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which problems were logged this minute, so this test sees its own log line."""
    monkeypatch.setattr(gate, "_warned", {})


@pytest.mark.parametrize("path", GATED)
@pytest.mark.parametrize("customer", BUGGY)
def test_a_buggy_customer_function_gets_403_and_never_reaches_stripe(
    customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe, customer: str, path: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    configure(CUSTOMER=customer)

    response = customer_client.get(path)

    assert response.status_code == 403
    assert fake_stripe.calls() == 0


@pytest.mark.parametrize("customer", BUGGY)
def test_a_buggy_customer_function_sends_an_anonymous_user_to_login(
    client: Client, configure: Callable[..., None], customer: str
) -> None:
    configure(CUSTOMER=customer)

    response = client.get("/seats/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(
    ("customer", "problem"),
    [
        ("tests.django.customers.raises", "raised LookupError"),
        ("tests.django.customers.blank", "a blank string"),
        ("tests.django.customers.padded", "whitespace around it"),
        ("tests.django.customers.wrong_type", "a int, not a string"),
    ],
)
@pytest.mark.usefixtures("fresh_log_limit")
def test_a_buggy_customer_function_is_logged_naming_the_setting_and_the_function(
    customer_client: Client,
    configure: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    customer: str,
    problem: str,
) -> None:
    configure(CUSTOMER=customer)

    customer_client.get("/seats/")

    (line,) = [r.getMessage() for r in caplog.records if r.name == "entitlegate"]
    assert "ENTITLEGATE['CUSTOMER']" in line
    assert customer in line
    assert problem in line


@pytest.mark.parametrize("customer", BUGGY)
def test_a_buggy_customer_function_renders_templates_with_no_features(
    customer_client: Client, configure: Callable[..., None], fake_stripe: FakeStripe, customer: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    configure(CUSTOMER=customer)

    response = customer_client.get("/home/")

    assert response.status_code == 200
    assert response.content.strip() == b"seats:no features:"


@pytest.mark.parametrize("customer", BUGGY)
def test_a_buggy_customer_function_reads_as_no_customer_on_request_entitlements(
    customer_client: Client, configure: Callable[..., None], customer: str
) -> None:
    configure(CUSTOMER=customer)

    response = customer_client.get("/me/features/")

    assert response.status_code == 200
    assert response.json() == {"features": []}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    [
        "/aseats/",
        "/class-aseats/",
        pytest.param(
            "/adecorated/",
            marks=pytest.mark.skipif(
                django.VERSION < (5, 1), reason="method_decorator wraps async methods from Django 5.1"
            ),
        ),
        "/pro/",
    ],
)
@pytest.mark.parametrize("customer", BUGGY)
async def test_a_buggy_customer_function_gets_403_in_async_views_too(
    async_client: AsyncClient, configure: Callable[..., None], fake_stripe: FakeStripe, customer: str, path: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    configure(CUSTOMER=customer)
    user = await sync_to_async(User.objects.create)(username="cus_1")
    await sync_to_async(async_client.force_login)(user)

    response = await async_client.get(path)

    assert response.status_code == 403
    assert fake_stripe.calls() == 0
