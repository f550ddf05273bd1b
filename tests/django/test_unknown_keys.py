"""An unknown key in ENTITLEGATE (a typo: RULSE for RULES) is an error, wherever the site starts.

Ignored, it silently turned every rule off: paid pages served to customers without the feature.
It fails Django's start-up (``AppConfig.ready``, which every server and command runs: uvicorn and
gunicorn never run ``manage.py check``), the first build of the settings, and ``manage.py check``
(E013), and the message names the closest real key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from entitlegate_django import get_resolver
from tests.fake_stripe import FakeStripe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def typo(settings: Any, entitlegate_settings: dict[str, Any]) -> None:
    """ENTITLEGATE with RULSE where RULES was meant."""
    keys = {key: value for key, value in entitlegate_settings.items() if key != "RULES"}
    settings.ENTITLEGATE = {**keys, "RULSE": entitlegate_settings["RULES"]}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.typo_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations")]),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("typo")
def test_a_typo_never_lets_a_customer_without_the_feature_into_a_rule_gated_page(
    customer_client: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", [])

    with pytest.raises(ImproperlyConfigured, match=r"'RULSE'.*did you mean 'RULES'"):
        customer_client.get("/pro/")


@pytest.mark.usefixtures("typo")
def test_a_typo_fails_the_first_build_of_the_settings() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"ENTITLEGATE has an unknown key 'RULSE'"):
        get_resolver()


@pytest.mark.usefixtures("typo")
def test_a_typo_is_a_check_error_naming_the_closest_key() -> None:
    errors = [message for message in checks.run_checks() if message.id == "entitlegate.E013"]

    assert [error.level for error in errors] == [checks.ERROR]
    assert "did you mean 'RULES'" in errors[0].msg
    with pytest.raises(SystemCheckError, match=r"entitlegate\.E013"):
        call_command("check")


def test_a_key_like_no_other_lists_the_keys(configure: Callable[..., None]) -> None:
    configure(COLOUR="blue")

    with pytest.raises(ImproperlyConfigured, match=r"unknown key 'COLOUR'.*the keys are: STRIPE_API_KEY"):
        get_resolver()


def test_a_typo_stops_django_from_starting() -> None:
    result = _run("-c", "import django; django.setup()")

    assert result.returncode != 0
    assert "ENTITLEGATE has an unknown key 'RULSE' (did you mean 'RULES'?)" in result.stderr


def test_a_typo_stops_uvicorn_from_serving_the_site() -> None:
    result = _run("-m", "uvicorn", "tests.django.asgi:application", "--port", "0", "--lifespan", "off")

    assert result.returncode != 0
    assert "did you mean 'RULES'" in result.stderr
