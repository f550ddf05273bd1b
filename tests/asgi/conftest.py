"""Fixtures for the ASGI layer: a resolver on the fake Stripe, and a Starlette app factory around it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from entitlegate import Resolver, StripeSource, WebhookHandler
from entitlegate_asgi import EntitlementMiddleware, webhook_app
from tests.asgi.support import customer_from_header, default_routes
from tests.fake_stripe import FakeStripe
from tests.stripe_events import SECRET


@pytest.fixture
def stripe_source(fake_stripe: FakeStripe) -> StripeSource:
    """The real StripeSource on the fake Stripe; no retries, so an outage shows at once."""
    return StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_network_retries=0)


@pytest.fixture
def resolver(stripe_source: StripeSource) -> Resolver:
    return Resolver(stripe_source)


@pytest.fixture
def make_app(resolver: Resolver) -> Callable[..., Starlette]:
    """``make_app(routes, rules=..., **middleware_options)``: a Starlette app behind the middleware.

    Rules default to ``{"/pro": "seats-feature"}``; the webhook app is at ``/stripe/webhook``.
    """

    def make(routes: Sequence[BaseRoute] | None = None, *, rules: Any = None, **options: Any) -> Starlette:
        options.setdefault("resolver", resolver)
        options.setdefault("customer", customer_from_header)
        options["rules"] = {"/pro": "seats-feature"} if rules is None else rules
        routes = default_routes() if routes is None else list(routes)
        routes.append(Route("/stripe/webhook", webhook_app(WebhookHandler(options["resolver"], SECRET))))
        return Starlette(routes=routes, middleware=[Middleware(EntitlementMiddleware, **options)])

    return make
