"""The package's public names, its test helper, and the polite ImportError without Django."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable

import pytest
from django.test import Client

import entitlegate_django
from entitlegate_django import get_resolver
from entitlegate_django.testing import override_features
from tests.fake_stripe import FakeStripe


def test_all_lists_exactly_the_public_names_sorted() -> None:
    assert entitlegate_django.__all__ == [
        "FeatureDenied",
        "FeatureRequiredMixin",
        "get_resolver",
        "requires_feature",
        "requires_limit",
        "requires_usage",
    ]


def test_the_app_label_is_entitlegate() -> None:
    from django.apps import apps

    assert apps.get_app_config("entitlegate").name == "entitlegate_django"


def test_importing_without_django_says_which_extra_to_install() -> None:
    code = "import sys; sys.modules['django'] = None; import entitlegate_django"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert result.returncode != 0
    assert (
        'ImportError: entitlegate_django needs Django, which is not installed: pip install "entitlegate[django]"'
        in (result.stderr)
    )


@pytest.mark.django_db
def test_override_features_pins_a_customers_features(customer_client: Client, fake_stripe: FakeStripe) -> None:
    with override_features({"cus_1": {"seats-feature"}}):
        response = customer_client.get("/seats/")

    assert response.status_code == 200
    assert fake_stripe.calls() == 0


@pytest.mark.django_db
def test_override_features_is_undone_on_exit(customer_client: Client, fake_stripe: FakeStripe) -> None:
    with override_features({"cus_1": {"seats-feature"}}):
        pass

    assert customer_client.get("/seats/").status_code == 403


@override_features({"cus_1": {"gold"}})
def test_override_features_works_as_a_decorator() -> None:
    assert get_resolver().features("cus_1") == {"gold"}


@pytest.mark.asyncio
@override_features({"cus_1": {"gold"}})
async def test_override_features_works_on_an_async_test() -> None:
    assert await get_resolver().afeatures("cus_1") == {"gold"}


def test_override_features_finds_the_resolver_of_the_settings_in_force(configure: Callable[..., None]) -> None:
    configure(TTL=1)

    with override_features({"cus_1": {"gold"}}):
        assert get_resolver().ttl == 1.0
        assert get_resolver().features("cus_1") == {"gold"}


@pytest.mark.django_db
def test_override_features_decorates_a_django_testcase_whose_tests_all_run(fake_stripe: FakeStripe) -> None:
    import unittest

    from django.test import TestCase

    @override_features({"cus_1": {"gold"}})
    class PinnedTests(TestCase):
        def test_pinned(self) -> None:
            assert get_resolver().features("cus_1") == {"gold"}

        def test_pinned_in_a_view(self) -> None:
            from django.contrib.auth.models import User

            self.client.force_login(User.objects.create(username="cus_1"))
            assert self.client.get("/metal/").status_code == 200

    tests = unittest.defaultTestLoader.loadTestsFromTestCase(PinnedTests)
    result = unittest.TextTestRunner(stream=io.StringIO()).run(tests)

    assert result.testsRun == 2
    assert result.wasSuccessful(), result.failures + result.errors
    assert fake_stripe.calls() == 0
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    assert get_resolver().features("cus_1") == {"seats-feature"}  # the pins were undone after each test
