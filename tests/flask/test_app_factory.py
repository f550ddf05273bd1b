"""One Entitlements object serving two apps, each with its own config, as in an app factory."""

from __future__ import annotations

import gc
import weakref

from flask import Flask

from entitlegate_flask import Entitlements
from tests.fake_stripe import FakeStripe
from tests.flask.conftest import AppFactory, header_customer
from tests.stripe_events import signed, summary_event

entitlements = Entitlements()  # module level, as in an app factory's extensions module
entitlements.customer_loader(header_customer)


def test_two_apps_share_one_extension_and_keep_their_own_settings(
    make_app: AppFactory, fake_stripe: FakeStripe
) -> None:
    fake_stripe.set_customer("cus_1", ["seats-feature"], account="acct_platform")
    fake_stripe.set_customer("cus_1", [])
    connected = make_app(entitlements, ENTITLEGATE_STRIPE_ACCOUNT="acct_platform", ENTITLEGATE_TTL=60)
    direct = make_app(entitlements)

    assert connected.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    assert direct.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403
    assert connected.extensions["entitlegate"].resolver.ttl == 60
    assert direct.extensions["entitlegate"].resolver.ttl == 300


def test_a_webhook_to_one_app_changes_only_that_apps_answers(make_app: AppFactory, fake_stripe: FakeStripe) -> None:
    first, second = make_app(entitlements), make_app(entitlements)
    body, signature = signed(summary_event("cus_1", ["seats-feature"]))
    first.test_client().post("/stripe/webhook", data=body, headers={"Stripe-Signature": signature})
    assert first.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 200
    assert second.test_client().get("/seats", headers={"X-Customer": "cus_1"}).status_code == 403


def test_resolver_property_answers_for_the_current_app(make_app: AppFactory) -> None:
    first, second = make_app(entitlements), make_app(entitlements)
    with first.app_context():
        assert entitlements.resolver is first.extensions["entitlegate"].resolver
    with second.app_context():
        assert entitlements.resolver is second.extensions["entitlegate"].resolver


def test_extension_given_the_app_sets_it_up_at_once(config: dict[str, object], fake_stripe: FakeStripe) -> None:
    app = Flask(__name__)
    app.config.update(config)
    direct = Entitlements(app)
    assert app.extensions["entitlegate"].extension is direct


def test_extension_keeps_no_reference_to_an_app(make_app: AppFactory) -> None:
    app = make_app(entitlements)
    app.test_client().get("/page", headers={"X-Customer": "cus_1"})
    gone = weakref.ref(app)
    del app
    gc.collect()
    assert gone() is None
