"""The example apps and `make demo`, as a person meets them: each framework's own server on loopback, over HTTP.

The servers are the commands `make demo` and `make run-*` use (runserver, flask run, uvicorn), in
processes of their own; the tests are the visitor (a browser-like client with a cookie jar) and
Stripe (signed webhooks, and the fake Stripe API for the apps configured with a Stripe key).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from entitlegate import testing
from example_app import webhooks
from example_app.catalog import demo_customers
from example_app.demo import walk
from example_app.environment import DEMO_WEBHOOK_SECRET, from_env
from example_app.servers import APPS, App, Server, ServerFailed, serving
from tests.fake_stripe import FakeStripe
from tests.polling import wait_for
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT = 60.0
_SETTINGS = ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "CACHE_URL")
STRIPE_MODE_SECRET = "whsec_example_apps_tests"


def base_env(**settings: str) -> dict[str, str]:
    """This process's environment without the example apps' settings, plus ``settings``."""
    env = {name: value for name, value in os.environ.items() if name not in _SETTINGS}
    return env | settings


def new_customer() -> str:
    """A customer id no fixture, earlier test or shared Redis has seen: no features until a webhook."""
    return f"cus_test_{uuid.uuid4().hex[:16]}"


class Visitor:
    """A browser's part: a cookie jar, and forms filled in from the page that shows them (Django's CSRF token too)."""

    def __init__(self, server: Server) -> None:
        self.app = server.app
        # A connection per request: on a kept-alive connection Django's runserver answers ~40 ms late
        # (its response is written in pieces, and Nagle's algorithm meets the client's delayed ACK).
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        self.client = httpx.Client(base_url=server.url, timeout=10.0, limits=no_keepalive)

    def path(self, name: str) -> str:
        return "/" if not name else self.app.path(name)

    def get(self, name: str) -> httpx.Response:
        return self.client.get(self.path(name))

    def submit(self, on: str, action: str, **fields: str) -> httpx.Response:
        """Open page ``on``, then post its form to ``action`` with ``fields`` (no redirect followed)."""
        page = self.get(on)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token is not None:
            fields["csrfmiddlewaretoken"] = token[1]
        return self.client.post(self.path(action), data=fields)

    def sign_in(self, customer: str) -> None:
        answer = self.submit("signin", "signin", customer=customer)
        assert answer.status_code in (302, 303), answer.text

    def features(self) -> list[str]:
        answer = self.get("api/features")
        assert answer.status_code == 200, answer.text
        features: list[str] = answer.json()["features"]
        return features

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def embedded() -> Iterator[dict[str, Server]]:
    """The three apps as `make run-*` serves them with nothing set: the fixture and a memory cache."""
    with serving(APPS, base_env()) as servers:
        yield {server.app.key: server for server in servers}


@pytest.fixture(params=APPS, ids=lambda app: app.key)
def server(request: pytest.FixtureRequest, embedded: dict[str, Server]) -> Server:
    app: App = request.param
    return embedded[app.key]


@pytest.fixture
def browse() -> Iterator[Callable[[Server], Visitor]]:
    """Open visitors on servers; each is closed after the test."""
    opened: list[Visitor] = []

    def open_visitor(server: Server) -> Visitor:
        opened.append(Visitor(server))
        return opened[-1]

    yield open_visitor
    for visitor in opened:
        visitor.close()


@pytest.fixture
def visitor(server: Server, browse: Callable[[Server], Visitor]) -> Visitor:
    return browse(server)


# -- make demo --------------------------------------------------------------------------------------


def run_demo(**settings: str) -> subprocess.CompletedProcess[str]:
    """The walkthrough as `make demo` runs it, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "example_app.demo"],
        cwd=ROOT,
        env=base_env(**settings),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    return run_demo()


def test_make_demo_shows_deny_webhook_allow_in_every_framework_and_exits_0(
    demo: subprocess.CompletedProcess[str],
) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for label in ("Django", "Flask", "Starlette"):
        row = (
            rf"^{label} +\S.*?/analytics/? +403 +400 +3 seats: 403 +200 applied +200 +25 seats: 200 "
            r"+analytics, pro-plan, seats-feature$"
        )
        assert re.search(row, demo.stdout, re.MULTILINE), demo.stdout


def test_make_demo_shows_a_limit_denial_then_the_higher_limit_after_the_upgrade_webhook(
    demo: subprocess.CompletedProcess[str],
) -> None:
    steps = re.findall(r"^  ok   POST /team/seats/? \(a fourth seat\): (.*)$", demo.stdout, re.MULTILINE)
    assert steps == ["3 seats: 403", "25 seats: 200"] * 3, demo.stdout


def test_make_demo_shows_the_usage_limit_admitting_three_exports_then_refusing_the_fourth(
    demo: subprocess.CompletedProcess[str],
) -> None:
    steps = re.findall(r"^  ok   POST /exports/run/? four times \(3 a month\): (.*)$", demo.stdout, re.MULTILINE)
    assert steps == ["200 200 200 403"] * 3, demo.stdout


def test_make_demo_stops_every_server_it_started(demo: subprocess.CompletedProcess[str]) -> None:
    ports = [int(port) for port in re.findall(r" at http://127\.0\.0\.1:(\d+)", demo.stdout)]
    assert len(ports) == 3, demo.stdout
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def test_make_demo_ignores_stripe_and_redis_settings() -> None:
    run = run_demo(STRIPE_API_KEY="sk_test_not_for_the_demo", CACHE_URL="redis://127.0.0.1:1/0")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not passed on to the apps: STRIPE_API_KEY, CACHE_URL" in run.stdout
    assert "sk_test_not_for_the_demo" not in run.stdout + run.stderr


def test_walkthrough_reports_a_step_that_did_not_do_what_it_should() -> None:
    flask = next(app for app in APPS if app.key == "flask")
    with serving([flask], base_env()) as [server]:
        first = walk(server)
        again = walk(server)  # the customer already holds analytics: the page is not denied
    assert first.ok
    assert not again.ok
    assert again.failures[0].endswith("got 200, expected 403")


# -- pages, sign-in and the buttons -----------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_sign_in(visitor: Visitor) -> None:
    answer = visitor.get("seats")
    assert answer.status_code in (302, 303)
    assert urlsplit(answer.headers["location"]).path == visitor.path("signin")


def test_signed_in_customer_has_the_features_the_fixture_gives_them(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_pro")
    assert visitor.features() == sorted(demo_customers()["cus_demo_pro"])


def test_anonymous_visitor_has_no_features(visitor: Visitor) -> None:
    assert visitor.get("api/features").json() == {"customer": None, "features": []}


def test_home_page_marks_each_gated_page_open_or_locked(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_starter")
    rows = visitor.get("").text.split("<tr>")
    seats = next(row for row in rows if "Team seats" in row)
    analytics = next(row for row in rows if "Analytics" in row)
    assert "open" in seats
    assert "locked" in analytics
    assert 'name="feature" value="analytics"' in analytics


def test_page_without_the_feature_is_a_403_that_offers_the_upgrade(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_starter")
    answer = visitor.get("analytics")
    assert answer.status_code == 403
    assert "this page needs the <code>analytics</code> feature" in answer.text
    assert 'name="feature" value="analytics"' in answer.text


def test_page_with_the_feature_opens(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_starter")
    answer = visitor.get("seats")
    assert answer.status_code == 200
    assert "You are in" in answer.text


def test_upgrade_button_sends_a_signed_webhook_and_the_page_opens(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    assert visitor.get("seats").status_code == 403
    answer = visitor.submit("seats", "upgrade", feature="seats-feature")
    assert answer.status_code in (302, 303), answer.text
    assert answer.headers["location"] == visitor.path("seats")
    assert visitor.get("seats").status_code == 200


def test_upgrade_button_keeps_the_features_already_held(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    visitor.submit("", "upgrade", feature="seats-feature")
    visitor.submit("", "upgrade", feature="analytics")
    assert visitor.features() == ["analytics", "seats-feature"]


def test_upgrade_button_grants_only_features_a_page_needs(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    assert visitor.submit("", "upgrade", feature="everything").status_code == 400
    assert visitor.features() == []


def test_undo_button_reads_the_fixture_again(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_free")
    visitor.submit("", "upgrade", feature="seats-feature")
    assert visitor.get("seats").status_code == 200
    answer = visitor.submit("", "reread")
    assert answer.status_code in (302, 303), answer.text
    assert visitor.get("seats").status_code == 403


# -- the team page: seats from the plan's Feature metadata, "add a seat" gated on them ----------------


@pytest.mark.parametrize(
    ("customer", "seats"),
    [("cus_demo_free", "0"), ("cus_demo_starter", "3"), ("cus_demo_pro", "25"), ("cus_demo_enterprise", "unlimited")],
)
def test_team_page_shows_the_seats_the_customers_plan_allows(visitor: Visitor, customer: str, seats: str) -> None:
    visitor.sign_in(customer)
    page = visitor.get("team")
    assert page.status_code == 200
    assert f'data-seat-limit="{seats}"' in page.text


def test_adding_a_fourth_seat_on_starter_is_a_403_that_names_the_limit_and_offers_pro(visitor: Visitor) -> None:
    visitor.sign_in("cus_demo_starter")
    answer = visitor.submit("team", "team/seats")
    assert answer.status_code == 403
    assert "your plan allows 3 seats; this needs 4" in answer.text
    assert 'name="feature" value="pro-plan"' in answer.text


@pytest.mark.parametrize("customer", ["cus_demo_pro", "cus_demo_enterprise"])
def test_adding_a_fourth_seat_on_a_bigger_plan_is_allowed(visitor: Visitor, customer: str) -> None:
    visitor.sign_in(customer)
    answer = visitor.submit("team", "team/seats")
    assert answer.status_code == 200
    assert "Seat 4 added" in answer.text


def test_the_upgrade_offered_by_a_limit_denial_raises_the_limit(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    assert visitor.submit("team", "team/seats").status_code == 403
    answer = visitor.submit("team", "upgrade", feature="pro-plan")
    assert answer.status_code in (302, 303), answer.text
    assert answer.headers["location"] == visitor.path("team")
    assert 'data-seat-limit="25"' in visitor.get("team").text
    assert visitor.submit("team", "team/seats").status_code == 200


def test_upgrading_to_a_plan_replaces_the_plan_held(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    visitor.submit("", "upgrade", feature="seats-feature")
    visitor.submit("", "upgrade", feature="starter-plan")
    visitor.submit("", "upgrade", feature="pro-plan")
    assert visitor.features() == ["pro-plan", "seats-feature"]


def test_anonymous_visitor_on_the_team_page_is_sent_to_sign_in(visitor: Visitor) -> None:
    answer = visitor.get("team")
    assert answer.status_code in (302, 303)
    assert urlsplit(answer.headers["location"]).path == visitor.path("signin")


# -- the exports page: a usage limit (Starter 3 exports a month), counted at each export let through --


def test_exports_are_allowed_up_to_the_plans_limit_then_refused_naming_the_usage(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())  # a fresh customer: a counter no other test has used
    assert visitor.submit("", "upgrade", feature="starter-plan").status_code in (302, 303)
    page = visitor.get("exports")
    assert page.status_code == 200
    assert 'data-exports-limit="3"' in page.text
    assert 'data-exports-used="0"' in page.text

    answers = [visitor.submit("exports", "exports/run") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 403]
    assert 'data-exports-used="3"' in answers[2].text
    assert "your plan allows 3 exports this month, and 3 are used" in answers[3].text
    assert 'data-exports-used="3"' in visitor.get("exports").text  # the refused export counted nothing


def test_a_customer_whose_plan_has_no_exports_is_refused_the_first(visitor: Visitor) -> None:
    visitor.sign_in(new_customer())
    assert 'data-exports-limit="0"' in visitor.get("exports").text
    answer = visitor.submit("exports", "exports/run")
    assert answer.status_code == 403
    assert "your plan allows 0 exports this month, and 0 are used" in answer.text


def test_webhook_with_a_wrong_signature_is_refused_and_changes_nothing(server: Server, visitor: Visitor) -> None:
    customer = new_customer()
    visitor.sign_in(customer)
    event = testing.summary_event(customer, ["seats-feature"])
    delivery = webhooks.deliver(server.url + visitor.path("stripe/webhook"), event, "whsec_someone_else")
    assert delivery.status == 400
    assert visitor.get("seats").status_code == 403


def test_webhook_signed_with_the_demo_secret_is_applied(server: Server, visitor: Visitor) -> None:
    customer = new_customer()
    visitor.sign_in(customer)
    event = testing.summary_event(customer, ["analytics"])
    delivery = webhooks.deliver(server.url + visitor.path("stripe/webhook"), event, DEMO_WEBHOOK_SECRET)
    assert (delivery.status, delivery.action) == (200, "applied")
    assert visitor.features() == ["analytics"]


def test_sign_in_refuses_what_is_not_a_customer_id(visitor: Visitor) -> None:
    answer = visitor.submit("signin", "signin", other="'; drop table customers")
    assert answer.status_code == 400
    assert "demo_customer" not in answer.headers.get("set-cookie", "")


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(visitor: Visitor) -> None:
    back = visitor.submit("signin", "signin", customer="cus_demo_pro", next=visitor.path("seats"))
    away = visitor.submit("signin", "signin", customer="cus_demo_pro", next="https://elsewhere.example/")
    assert back.headers["location"] == visitor.path("seats")
    assert away.headers["location"] == "/"


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.key)
def test_a_stripe_key_without_its_webhook_secret_stops_the_app_at_start_up(app: App) -> None:
    env = base_env(STRIPE_API_KEY="sk_test_key_without_secret")
    with pytest.raises(ServerFailed, match="STRIPE_WEBHOOK_SECRET is not") as failed, serving([app], env):
        pass
    assert "sk_test_key_without_secret" not in str(failed.value)


def test_a_live_key_is_refused_without_being_quoted() -> None:
    with pytest.raises(ValueError, match="STRIPE_API_KEY is a live-mode key") as refused:
        from_env({"STRIPE_API_KEY": "sk_live_abc123", "STRIPE_WEBHOOK_SECRET": "whsec_abc"})
    assert "sk_live_abc123" not in str(refused.value)


def test_a_cache_url_that_is_not_redis_is_refused_without_being_quoted() -> None:
    with pytest.raises(ValueError, match="CACHE_URL must be a redis://") as refused:
        from_env({"CACHE_URL": "memcached://user:hunter2@cache"})
    assert "hunter2" not in str(refused.value)


def test_the_settings_repr_shows_no_secret() -> None:
    env = from_env({"STRIPE_API_KEY": "sk_test_abc123", "STRIPE_WEBHOOK_SECRET": "whsec_abc456"})
    assert "abc123" not in repr(env)
    assert "abc456" not in repr(env)


@pytest.fixture(scope="module")
def on_stripe(_fake_stripe_server: FakeStripe) -> Iterator[dict[str, Server]]:
    """The three apps with a (test-mode) Stripe key, talking to the fake Stripe over HTTP."""
    settings = {
        "STRIPE_API_KEY": _fake_stripe_server.api_key,
        "STRIPE_WEBHOOK_SECRET": STRIPE_MODE_SECRET,
        "STRIPE_API_BASE": _fake_stripe_server.url,
    }
    with serving(APPS, base_env(**settings)) as servers:
        yield {server.app.key: server for server in servers}


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.key)
def test_with_stripe_keys_features_come_from_stripe(
    app: App, on_stripe: dict[str, Server], fake_stripe: FakeStripe, browse: Callable[[Server], Visitor]
) -> None:
    customer = new_customer()
    fake_stripe.set_customer(customer, ["analytics"])
    visitor = browse(on_stripe[app.key])
    visitor.sign_in(customer)
    assert visitor.get("analytics").status_code == 200
    assert visitor.get("seats").status_code == 403
    assert fake_stripe.count_by_customer()[customer] >= 1


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.key)
def test_with_stripe_keys_webhooks_need_the_stripe_webhook_secret(
    app: App, on_stripe: dict[str, Server], fake_stripe: FakeStripe
) -> None:
    customer = new_customer()
    fake_stripe.set_customer(customer, [])
    server = on_stripe[app.key]
    url = server.url + app.path("stripe/webhook")
    event = testing.summary_event(customer, ["seats-feature"])
    assert webhooks.deliver(url, event, DEMO_WEBHOOK_SECRET).status == 400
    assert webhooks.deliver(url, event, STRIPE_MODE_SECRET).action == "applied"


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.key)
def test_with_stripe_keys_the_seat_limit_comes_from_the_features_metadata(
    app: App, on_stripe: dict[str, Server], fake_stripe: FakeStripe, browse: Callable[[Server], Visitor]
) -> None:
    customer = new_customer()
    fake_stripe.set_feature("pro-plan", {"seats": "25"})
    fake_stripe.set_customer(customer, ["pro-plan"])
    visitor = browse(on_stripe[app.key])
    visitor.sign_in(customer)
    assert 'data-seat-limit="25"' in visitor.get("team").text
    assert visitor.submit("team", "team/seats").status_code == 200


# -- CACHE_URL=redis://… ----------------------------------------------------------------------------


@pytest.mark.redis
def test_with_a_redis_cache_url_a_webhook_to_one_app_opens_the_page_in_every_app(
    redis_server: RedisServer, browse: Callable[[Server], Visitor]
) -> None:
    pytest.importorskip("entitlegate.cache.redis")
    customer = new_customer()
    with serving(APPS, base_env(CACHE_URL=redis_server.url)) as servers:
        visitors = [browse(server) for server in servers]
        for visitor in visitors:
            visitor.sign_in(customer)
            assert visitor.get("analytics").status_code == 403
        sender = servers[0]
        event = testing.summary_event(customer, ["analytics"])
        url = sender.url + sender.app.path("stripe/webhook")
        assert webhooks.deliver(url, event, DEMO_WEBHOOK_SECRET).action == "applied"
        wait_for(lambda: [visitor.get("analytics").status_code for visitor in visitors] == [200, 200, 200])
