"""Fixtures for the Django integration: settings pointed at the fake Stripe, users, Stripe state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from entitlegate import Resolver
from entitlegate_django import get_resolver
from tests.django import settings as project_settings
from tests.fake_stripe import FakeStripe


@pytest.fixture(autouse=True)
def entitlegate_settings(settings: Any, fake_stripe: FakeStripe) -> dict[str, Any]:
    """The project's ENTITLEGATE, pointed at the fake Stripe; a fresh resolver for every test."""
    settings.ENTITLEGATE = {**project_settings.ENTITLEGATE, "STRIPE_API_BASE": fake_stripe.url}
    entitlegate: dict[str, Any] = settings.ENTITLEGATE
    return entitlegate


@pytest.fixture
def configure(settings: Any, entitlegate_settings: dict[str, Any]) -> Callable[..., None]:
    """Change ENTITLEGATE keys for one test: ``configure(TTL=0, DENIED=None)``."""

    def change(**keys: Any) -> None:
        settings.ENTITLEGATE = {**entitlegate_settings, **keys}

    return change


@pytest.fixture
def resolver() -> Resolver:
    return get_resolver()


@pytest.fixture
def customer_client(client: Client, django_user_model: type[User]) -> Client:
    """Signed in as cus_1, a Stripe customer."""
    client.force_login(django_user_model.objects.create(username="cus_1"))
    return client


@pytest.fixture
def no_customer_client(client: Client, django_user_model: type[User]) -> Client:
    """Signed in as a user without a Stripe customer id."""
    client.force_login(django_user_model.objects.create(username="staff"))
    return client
