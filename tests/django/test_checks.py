"""System checks: each wrong or missing setting reported with a stable id, never with a secret."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tests.stripe_events import SECRET


def _ids(tags: list[str] | None = None) -> list[str]:
    return sorted(
        message.id or "" for message in checks.run_checks(tags=tags) if (message.id or "").startswith("entitlegate.")
    )


def test_the_test_project_passes_every_check() -> None:
    assert _ids() == []


def test_check_command_fails_on_an_entitlegate_error(configure: Callable[..., None]) -> None:
    configure(CUSTOMER="tests.django.nowhere.customer")

    with pytest.raises(SystemCheckError, match=r"entitlegate.E004.*CUSTOMER"):
        call_command("check")


@pytest.mark.parametrize(
    ("keys", "check_id"),
    [
        ({"STRIPE_API_KEY": None}, "entitlegate.E002"),
        ({"STRIPE_API_KEY": "pk_test_1"}, "entitlegate.E002"),
        ({"STRIPE_API_KEY": "test_1"}, "entitlegate.E002"),
        ({"STRIPE_API_KEY": "sk_test_1\n"}, "entitlegate.E002"),
        ({"CACHE": "memcached://localhost"}, "entitlegate.E003"),
        ({"CUSTOMER": None}, "entitlegate.E004"),
        ({"CUSTOMER": "tests.django.nowhere.customer"}, "entitlegate.E004"),
        (
            {"RESOLVER": "tests.django.nowhere.resolver", "STRIPE_API_KEY": None, "STRIPE_API_BASE": None},
            "entitlegate.E005",
        ),
        ({"DENIED": "tests.django.nowhere.denied"}, "entitlegate.E006"),
        ({"RULES": {"/pro": 3}}, "entitlegate.E007"),
        ({"RULES": [("pro", "x")]}, "entitlegate.E007"),
        ({"TTL": "soon"}, "entitlegate.E008"),
        ({"ON_UNAVAILABLE": "maybe"}, "entitlegate.E009"),
        ({"STRIPE_ACCOUNT": "cus_1"}, "entitlegate.E010"),
        ({"STRIPE_API_BASE": "ftp://x"}, "entitlegate.E010"),
        ({"WEBHOOK_SECRET": 123}, "entitlegate.E012"),
        ({"WEBHOOK_SECRET": "sk_test_1"}, "entitlegate.E012"),
        ({"WEBHOOK_SECRET": " whsec_1"}, "entitlegate.E012"),
        ({"WEBHOOK_SECRET": None}, "entitlegate.W001"),
        ({"WEBHOOK_SECRETS": "whsec_typo"}, "entitlegate.E013"),
        ({"RESOLVER": "tests.django.factories.static_resolver"}, "entitlegate.W003"),
    ],
)
def test_a_wrong_setting_is_reported_by_its_check(
    configure: Callable[..., None], keys: dict[str, Any], check_id: str
) -> None:
    configure(**keys)

    assert _ids() == [check_id]


def test_entitlegate_that_is_not_a_dict_is_e001(settings: Any) -> None:
    settings.ENTITLEGATE = "sk_test_123"

    assert _ids() == ["entitlegate.E001"]


def test_a_resolver_takes_the_place_of_the_api_key(configure: Callable[..., None]) -> None:
    configure(STRIPE_API_KEY=None, STRIPE_API_BASE=None, RESOLVER="tests.django.factories.make_static_resolver")

    assert _ids() == []


def test_key_and_secret_checks_are_security_checks(configure: Callable[..., None]) -> None:
    configure(STRIPE_API_KEY=None, WEBHOOK_SECRET=None)

    assert _ids(tags=[checks.Tags.security]) == ["entitlegate.E002", "entitlegate.W001"]


def test_rules_without_the_middleware_are_an_error(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "entitlegate" not in m]

    assert _ids() == ["entitlegate.E011"]


def test_no_rules_and_no_middleware_is_fine(settings: Any, configure: Callable[..., None]) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "entitlegate" not in m]
    configure(RULES={})

    assert _ids() == []


def test_the_middleware_before_authentication_is_a_warning(settings: Any) -> None:
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "entitlegate_django.middleware.EntitlementMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]

    assert _ids() == ["entitlegate.W004"]


def test_check_messages_never_show_the_api_key_or_secret(configure: Callable[..., None]) -> None:
    configure(STRIPE_API_KEY="pk_live_do_not_show", CACHE="redis-ish://user:hunter2@host", WEBHOOK_SECRET=[SECRET])

    text = " ".join(str(message) for message in checks.run_checks())

    assert "do_not_show" not in text
    assert "hunter2" not in text
    assert SECRET not in text


def test_a_redis_cache_without_redis_installed_is_e003(
    configure: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # makes "import redis" fail, as without the extra
    configure(CACHE="redis://localhost:6379/0")

    messages = [message for message in checks.run_checks() if message.id == "entitlegate.E003"]

    assert len(messages) == 1
    assert 'pip install "entitlegate[redis]"' in messages[0].msg
