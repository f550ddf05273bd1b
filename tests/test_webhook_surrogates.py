"""A signed event whose strings hold lone Unicode surrogates is a bad delivery (400), not an outage.

JSON may escape a surrogate alone (``"\\ud800"``); Python decodes it, but no UTF-8 holds it, so a
cache that stores text (Redis) cannot take it. Stripe would redeliver a 503 for days.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from entitlegate import InvalidPayload, RedisCache, Resolver, StaticSource, WebhookHandler
from tests import stripe_events as ev
from tests.redis_server import RedisServer


@pytest.fixture
def redis_cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    cache = RedisCache(redis_server.url)
    yield cache
    cache.close()


def _signed_with_surrogate(payload: dict[str, object], surrogate_in: str) -> tuple[bytes, str]:
    body = json.dumps(payload).replace(surrogate_in, surrogate_in[:-1] + "\\ud800" + surrogate_in[-1])
    raw = body.encode()
    return raw, ev.sign(raw)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (ev.summary_event("cus_1", ["seats-feature"]), '"seats-feature"'),
        (ev.summary_event("cus_1", ["seats-feature"]), '"cus_1"'),
        (ev.subscription_event("cus_1"), '"cus_1"'),
        (ev.customer_deleted_event("cus_1"), '"cus_1"'),
    ],
)
def test_lone_surrogates_in_a_signed_event_are_an_invalid_payload_on_redis(
    redis_cache: RedisCache, payload: dict[str, object], where: str
) -> None:
    handler = WebhookHandler(Resolver(StaticSource({}), redis_cache), ev.SECRET)
    body, header = _signed_with_surrogate(payload, where)

    with pytest.raises(InvalidPayload, match="UTF-8"):
        handler.handle(body, header)
    answer = handler.respond(body, header)
    assert (answer.status, answer.body["error"]) == (400, "invalid_payload")
