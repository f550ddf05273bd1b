"""``python -m entitlegate``, run as a real subprocess against the fake Stripe over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fake_stripe import FakeStripe

ROOT = Path(__file__).resolve().parent.parent


def environment(fake: FakeStripe, env: dict[str, str] | None = None) -> dict[str, str]:
    """The command's environment: this one's, pointed at the fake Stripe, without the caller's settings."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "DJANGO_SETTINGS_MODULE", "ENTITLEGATE_"))
    }
    environ |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations")]),
        "STRIPE_API_KEY": fake.api_key,
        "STRIPE_API_BASE": fake.url,
    }
    return environ | (env or {})


def run(
    fake: FakeStripe, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entitlegate", *args],
        cwd=cwd or ROOT,
        env=environment(fake, env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def account(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.set_feature("analytics", {"seats": "3"}, name="Analytics")
    fake_stripe.set_feature("audit-log", {"seats": "unlimited", "projects": "2.5"}, name="Audit log")
    fake_stripe.set_feature("legacy-reports", active=False, name="Old reports")
    return fake_stripe


def project(tmp_path: Path, name: str, source: str) -> Path:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return tmp_path


FLASK_APP = """
    from flask import Flask
    from entitlegate_flask import requires_feature
    from entitlegate.limits import LimitRequirement

    def create_app():
        app = Flask(__name__)

        @app.get("/reports")
        @requires_feature({key!r})
        def reports():
            return "reports"

        LimitRequirement("seats", 1)
        return app
"""


def test_check_on_a_project_with_a_typo_exits_1_and_suggests_the_closest_name(
    account: FakeStripe, tmp_path: Path
) -> None:
    cwd = project(tmp_path, "typo_app", FLASK_APP.format(key="analytcs"))
    done = run(account, "check", "--app", "typo_app:create_app", cwd=cwd)
    assert done.returncode == 1, done.stderr
    assert "unknown lookup key" in done.stdout
    assert "'analytcs'" in done.stdout
    assert "did you mean 'analytics'" in done.stdout


def test_check_on_a_project_whose_names_are_all_known_exits_0(account: FakeStripe, tmp_path: Path) -> None:
    account.set_feature("audit-log", {"seats": "unlimited"})  # no malformed metadata left
    cwd = project(tmp_path, "good_app", FLASK_APP.format(key="analytics"))
    done = run(account, "check", "--app", "good_app:create_app", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 1 lookup_keys and 1 limit names against 3 features")


def test_check_reports_an_archived_feature_and_malformed_limits(account: FakeStripe, tmp_path: Path) -> None:
    cwd = project(tmp_path, "old_app", FLASK_APP.format(key="legacy-reports"))
    done = run(account, "check", "--app", "old_app:create_app", cwd=cwd)
    assert done.returncode == 1
    assert "archived feature: lookup_key 'legacy-reports'" in done.stdout
    assert "malformed limit: feature 'audit-log'" in done.stdout
    assert "projects='2.5'" in done.stdout


def test_check_sets_up_a_django_project_and_reads_its_rules(account: FakeStripe, tmp_path: Path) -> None:
    project(
        tmp_path,
        "dj_settings",
        """
        SECRET_KEY = "not-a-secret"
        INSTALLED_APPS = ["entitlegate_django"]
        ROOT_URLCONF = "dj_urls"
        ENTITLEGATE = {"RULES": {"/audit": "audit-logs"}}
        """,
    )
    project(
        tmp_path,
        "dj_urls",
        """
        from django.http import HttpResponse
        from django.urls import path
        from entitlegate_django.decorators import requires_feature

        @requires_feature("analytics")
        def reports(request):
            return HttpResponse("reports")

        urlpatterns = [path("reports", reports)]
        """,
    )
    done = run(account, "check", "--app", "dj_settings", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "'audit-logs' is not a feature of this account; did you mean 'audit-log'?" in done.stdout
    assert "'analytics'" not in done.stdout.split("unknown lookup key")[-1]


def test_check_builds_a_starlette_apps_middleware_so_its_rules_register(account: FakeStripe, tmp_path: Path) -> None:
    project(
        tmp_path,
        "asgi_app",
        """
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from entitlegate import Resolver, StaticSource
        from entitlegate_asgi import EntitlementMiddleware

        resolver = Resolver(StaticSource({}))
        gate = Middleware(EntitlementMiddleware, resolver=resolver, customer=lambda s: None, rules={"/a": "analytix"})
        app = Starlette(middleware=[gate])
        """,
    )
    done = run(account, "check", "--app", "asgi_app:app", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "did you mean 'analytics'" in done.stdout


def test_check_with_an_app_that_registers_nothing_is_a_finding(account: FakeStripe, tmp_path: Path) -> None:
    cwd = project(tmp_path, "empty_app", "app = object()\n")
    done = run(account, "check", "--app", "empty_app", cwd=cwd)
    assert done.returncode == 1
    assert "registered no gate" in done.stdout


@pytest.mark.parametrize("spec", ["no_such_module", "empty_app:nothing", ":app"])
def test_an_app_that_cannot_be_found_is_a_usage_error(account: FakeStripe, tmp_path: Path, spec: str) -> None:
    cwd = project(tmp_path, "empty_app", "app = object()\n")
    done = run(account, "check", "--app", spec, cwd=cwd)
    assert done.returncode == 2
    assert "--app" in done.stderr


def test_features_prints_the_catalog_as_a_table_and_flags_malformed_metadata(account: FakeStripe) -> None:
    done = run(account, "features")
    assert done.returncode == 1  # the malformed projects=2.5 is a finding
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["LOOKUP_KEY", "NAME", "ACTIVE", "LIMITS", "MALFORMED", "(ignored)"]
    audit_line = next(line for line in lines if line.startswith("audit-log"))
    assert "seats=unlimited" in audit_line
    assert "projects='2.5'" in audit_line
    assert "archived" in next(line for line in lines if line.startswith("legacy-reports"))
    assert "3 features" in done.stdout


def test_features_of_a_clean_catalog_exits_0(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("pro", {"seats": "25"})
    done = run(fake_stripe, "features", "--json")
    assert done.returncode == 0, done.stderr
    assert '"limits": {"seats": "25"}' in done.stdout


def test_a_missing_key_is_a_configuration_error_naming_the_variable(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "features", env={"STRIPE_API_KEY": ""})
    assert done.returncode == 2
    assert "$STRIPE_API_KEY is required" in done.stderr


def test_api_key_env_picks_another_variable(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_feature("pro")
    env = {"STRIPE_API_KEY": "", "OTHER_KEY": fake_stripe.api_key}
    done = run(fake_stripe, "features", "--api-key-env", "OTHER_KEY", env=env)
    assert done.returncode == 0, done.stderr


def test_a_rejected_key_exits_2_and_is_never_echoed(fake_stripe: FakeStripe) -> None:
    wrong = "sk_test_wrong_0123456789abcdef"
    done = run(fake_stripe, "features", env={"STRIPE_API_KEY": wrong})
    assert done.returncode == 2
    assert "rejected the API key" in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert "0123456789" not in done.stdout + done.stderr


def test_an_outage_exits_2_saying_stripe_did_not_answer(fake_stripe: FakeStripe) -> None:
    fake_stripe.always_fail = 503
    done = run(fake_stripe, "features")
    assert done.returncode == 2
    assert "cannot list the account's features" in done.stderr


@pytest.mark.parametrize("verb", [[], ["features"], ["check"]])
def test_every_verb_has_help(fake_stripe: FakeStripe, verb: list[str]) -> None:
    done = run(fake_stripe, *verb, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: entitlegate")


def test_a_usage_error_exits_2(fake_stripe: FakeStripe) -> None:
    assert run(fake_stripe, "frobnicate").returncode == 2
    assert run(fake_stripe, "check").returncode == 2  # --app is required
