"""The upgrade flow through real servers: each example app, with a Stripe key, opens the portal and back.

The servers are the example apps' own (runserver, flask run, uvicorn) talking to the fake Stripe;
the visitor is a browser-like client, as in ``tests/test_example_apps.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from example_app.servers import APPS, App, Server
from tests.fake_stripe import PORTAL_SESSIONS, FakeStripe
from tests.test_example_apps import Visitor, browse, new_customer, on_stripe

__all__ = ["browse", "on_stripe"]  # the fixtures, imported for the tests below


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.key)
def test_the_upgrade_button_opens_the_portal_and_the_return_shows_the_upgrade_at_once(
    app: App, on_stripe: dict[str, Server], fake_stripe: FakeStripe, browse: Callable[[Server], Visitor]
) -> None:
    server = on_stripe[app.key]
    customer = new_customer()
    fake_stripe.set_customer(customer, [])
    fake_stripe.set_subscription(customer, f"sub_{customer}")
    visitor = browse(server)
    visitor.sign_in(customer)
    assert visitor.get("seats").status_code == 403

    answer = visitor.submit("seats", "upgrade", feature="seats-feature")

    assert answer.status_code in (302, 303), answer.text
    assert answer.headers["location"].startswith("https://billing.stripe.test/p/session/")
    with fake_stripe.lock:
        (session,) = [
            r.params for r in fake_stripe.requests if r.path == PORTAL_SESSIONS and r.params["customer"] == customer
        ]
    assert session["flow_data[subscription_update][subscription]"] == f"sub_{customer}"
    return_url = session["return_url"]
    assert return_url == f"{server.url}{visitor.path('seats')}?entitlegate_return=1"

    fake_stripe.set_customer(customer, ["seats-feature"])  # paid in the portal; no webhook yet
    back = visitor.client.get(urlsplit(return_url).path + "?" + urlsplit(return_url).query)

    assert back.status_code == 303
    assert back.headers["location"] == visitor.path("seats")
    assert visitor.get("seats").status_code == 200
