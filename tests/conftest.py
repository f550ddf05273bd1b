"""Fixtures for the servers every test talks to: a fake Stripe over HTTP and a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import stripe

from entitlegate import Resolver
from tests.fake_stripe import FakeStripe, start
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def _fake_stripe_server() -> Iterator[FakeStripe]:
    fake, server = start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_stripe(_fake_stripe_server: FakeStripe) -> Iterator[FakeStripe]:
    """The fake Stripe, emptied before each test."""
    _fake_stripe_server.reset()
    yield _fake_stripe_server
    _fake_stripe_server.reset()


@pytest.fixture
def stripe_client(fake_stripe: FakeStripe) -> stripe.StripeClient:
    """A real StripeClient pointed at the fake."""
    return stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url})


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session (started on first use)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


Closing = Callable[[Resolver], Resolver]


@pytest.fixture
def closing() -> Iterator[Closing]:
    """Hands back the resolver given, and closes it after the test (before the fake is emptied)."""
    made: list[Resolver] = []

    def keep(resolver: Resolver) -> Resolver:
        made.append(resolver)
        return resolver

    yield keep
    for resolver in made:
        resolver.close()
