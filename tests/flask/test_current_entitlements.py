"""``current_entitlements``: the request's core ``Entitlements``, one lookup and one answer per request.

Every check a request makes (``@requires_feature``, ``@requires_limit``, ``ext.has_feature()``,
the Jinja globals) reads the same object, so the customer loader runs once and Stripe is asked
once, an outage included; what the loader returns is read by ``entitlegate.gate.read_customer``,
as in every adapter.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, render_template_string, request

from entitlegate.entitlements import Entitlements as RequestEntitlements
from entitlegate_flask import (
    Entitlements,
    EntitlementsExtension,
    current_entitlements,
    requires_feature,
    requires_limit,
)
from tests.fake_stripe import FEATURES, FakeStripe
from tests.flask.conftest import AppFactory

PAGE = "{{ has_feature('seats-feature') }} {{ has_feature('sso') }} {{ features|length }} {{ limit('seats') }}"


def busy_app(make_app: AppFactory, loader: Callable[[], object], **config: object) -> Flask:
    """An app whose ``/busy`` page makes seven checks: two decorators, two in code, four in its template."""
    extension = Entitlements()
    extension.customer_loader(loader)
    app = make_app(extension, **config)

    @app.get("/busy")
    @requires_feature("seats-feature")
    @requires_limit("seats", 2)
    def busy() -> str:
        in_code = f"{extension.has_feature('seats-feature')} {current_entitlements.safe_limit('seats')}"
        return f"{in_code} | {render_template_string(PAGE)}"

    return app


class CountingLoader:
    """A customer loader reading the ``X-Customer`` header, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return request.headers.get("X-Customer")


def test_the_extension_is_also_named_entitlements_extension() -> None:
    assert EntitlementsExtension is Entitlements


def test_current_entitlements_is_the_requests_core_entitlements(app: Flask, fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    with app.test_request_context(headers={"X-Customer": "cus_1"}):
        assert isinstance(current_entitlements._get_current_object(), RequestEntitlements)  # type: ignore[attr-defined]
        assert current_entitlements.customer == "cus_1"
        assert current_entitlements.has_feature("seats-feature")
        assert current_entitlements._get_current_object() is current_entitlements._get_current_object()  # type: ignore[attr-defined]


def test_each_request_gets_a_fresh_one(app: Flask, fake_stripe: FakeStripe) -> None:
    with app.test_request_context(headers={"X-Customer": "cus_1"}):
        first = current_entitlements._get_current_object()  # type: ignore[attr-defined]
    with app.test_request_context(headers={"X-Customer": "cus_2"}):
        assert current_entitlements._get_current_object() is not first  # type: ignore[attr-defined]
        assert current_entitlements.customer == "cus_2"


def test_a_page_with_many_checks_looks_up_its_customer_once_and_asks_stripe_once(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_feature("seats-feature", {"seats": "5"})
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    loader = CountingLoader()
    app = busy_app(make_app, loader)

    response = app.test_client().get("/busy", headers={"X-Customer": "cus_1"})

    assert (response.status_code, response.text) == (200, "True 5 | True False 1 5")
    # One catalog read for the limits is two requests: the active features, then the archived ones.
    assert (loader.calls, fake_stripe.calls(), fake_stripe.calls(FEATURES)) == (1, 1, 2)


def test_a_page_with_many_checks_during_an_outage_asks_stripe_once(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    app = busy_app(make_app, CountingLoader(), ENTITLEGATE_ON_UNAVAILABLE="allow")
    fake_stripe.always_fail = 401

    response = app.test_client().get("/busy", headers={"X-Customer": "cus_1"})

    assert (response.status_code, response.text) == (200, "True 0 | True True 0 0")
    assert fake_stripe.calls() == 1


def test_a_gated_page_during_an_outage_asks_stripe_once_for_its_503(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    app = busy_app(make_app, CountingLoader())
    fake_stripe.always_fail = 401

    assert app.test_client().get("/busy", headers={"X-Customer": "cus_1"}).status_code == 503
    assert fake_stripe.calls() == 1


@pytest.mark.parametrize("answer", [42, b"cus_1", "   ", " cus_1"], ids=["int", "bytes", "blank", "padded"])
def test_a_customer_loader_answering_no_customer_id_means_no_customer(
    make_app: AppFactory, fake_stripe: FakeStripe, answer: object
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"])
    app = busy_app(make_app, lambda: answer, ENTITLEGATE_ON_UNAVAILABLE="allow")

    with app.test_request_context():
        assert current_entitlements.customer is None
        assert current_entitlements.features == frozenset()
    assert app.test_client().get("/busy").status_code == 401
    assert fake_stripe.calls() == 0


def test_without_a_customer_loader_the_first_check_says_what_to_register(make_app: AppFactory) -> None:
    app = make_app(Entitlements())
    with app.test_request_context(), pytest.raises(RuntimeError, match="customer_loader"):
        current_entitlements.customer  # noqa: B018 - the read is the test
