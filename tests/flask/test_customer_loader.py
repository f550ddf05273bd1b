"""A customer_loader with a bug never gives a 500: the request has no customer, and a log says why.

The rule is ``entitlegate.gate.read_customer``'s, as in the other adapters: None and "" are no
customer; a loader that raises, or returns a blank or padded string or a non-string, is logged and
treated as no customer, so ``@requires_feature`` answers 401 (or the login view) and templates
render with no features, and nothing odd reaches Stripe.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import abort

from entitlegate import gate
from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory


def raises() -> str | None:
    raise LookupError("this user has no billing profile")


def blank() -> str:
    return "   "


def padded() -> str:
    return " cus_1"


def wrong_type() -> int:
    return 42


BUGGY: list[Callable[[], object]] = [raises, blank, padded, wrong_type]


def _extension(loader: Callable[[], object]) -> Entitlements:
    entitlements = Entitlements()
    entitlements.customer_loader(loader)  # type: ignore[arg-type]
    return entitlements


@pytest.fixture
def fresh_log_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which problems were logged this minute, so this test sees its own log line."""
    monkeypatch.setattr(gate, "_warned", {})


@pytest.mark.parametrize("path", ["/seats", "/async-seats"])
@pytest.mark.parametrize("loader", BUGGY)
def test_a_buggy_customer_loader_gets_401_and_never_reaches_stripe(
    make_app: AppFactory, fake_stripe: FakeStripe, loader: Callable[[], object], path: str
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    app = make_app(_extension(loader))

    response = app.test_client().get(path)

    assert response.status_code == 401
    assert fake_stripe.calls() == 0


@pytest.mark.parametrize("loader", BUGGY)
def test_a_buggy_customer_loader_is_sent_to_the_login_view(make_app: AppFactory, loader: Callable[[], object]) -> None:
    app = make_app(_extension(loader), ENTITLEGATE_LOGIN_VIEW="login")

    response = app.test_client().get("/seats")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/seats"


@pytest.mark.parametrize("loader", BUGGY)
def test_a_buggy_customer_loader_renders_templates_with_no_features(
    make_app: AppFactory, fake_stripe: FakeStripe, loader: Callable[[], object]
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    app = make_app(_extension(loader))

    response = app.test_client().get("/page")

    assert response.status_code == 200
    assert response.text == "seats=False sso=False features= count=0"


@pytest.mark.parametrize(
    ("loader", "problem"),
    [
        (raises, "raised LookupError"),
        (blank, "a blank string"),
        (padded, "whitespace around it"),
        (wrong_type, "a int"),
    ],
)
@pytest.mark.usefixtures("fresh_log_limit")
def test_a_buggy_customer_loader_is_logged_by_name(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, loader: Callable[[], object], problem: str
) -> None:
    app = make_app(_extension(loader))

    app.test_client().get("/seats")

    (line,) = [r.getMessage() for r in caplog.records if r.name == "entitlegate"]
    assert f"customer_loader {__name__}.{loader.__name__}" in line
    assert problem in line


def test_a_customer_loader_may_abort_with_its_own_http_error(make_app: AppFactory) -> None:
    def forbidden() -> str | None:
        abort(418)

    app = make_app(_extension(forbidden))

    assert app.test_client().get("/seats").status_code == 418
