"""OpenTelemetry metrics: counters read from resolver.stats at collection, a source-call histogram, webhooks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from bench.otel import meter_reader
from entitlegate import Resolver, WebhookHandler
from tests.doubles import CountingSource, outage
from tests.stripe_events import SECRET, signed, summary_event
from tests.test_cli import ROOT


@pytest.fixture(scope="module")
def reader() -> InMemoryMetricReader:
    """The process's SDK meter provider (OpenTelemetry allows one), read in memory."""
    found: InMemoryMetricReader = meter_reader()
    return found


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "entitlegate"
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def of(resolver: Resolver, found: list[Any]) -> Any:
    label = resolver_label(resolver)
    (point,) = [point for point in found if point.attributes.get("entitlegate.resolver") == label]
    return point


def resolver_label(resolver: Resolver) -> str:
    from entitlegate import metrics as ours

    return ours._observed[resolver]["entitlegate.resolver"]


def test_counters_are_the_resolvers_stats_read_at_collection(reader: InMemoryMetricReader) -> None:
    resolver = Resolver(CountingSource({"cus_1": {"analytics"}}))
    resolver.has_feature("cus_1", "analytics")
    for _ in range(3):
        resolver.has_feature("cus_1", "analytics")
    assert of(resolver, points(reader, "entitlegate.hits")).value == 3
    assert of(resolver, points(reader, "entitlegate.misses")).value == 1
    assert of(resolver, points(reader, "entitlegate.source_calls")).value == 1
    assert of(resolver, points(reader, "entitlegate.errors")).value == 0


def test_a_stale_serve_and_a_source_error_are_counted(reader: InMemoryMetricReader) -> None:
    clock = [0.0]
    source = CountingSource({"cus_1": {"analytics"}})
    resolver = Resolver(source, ttl=1, stale_ttl=100, clock=lambda: clock[0])
    resolver.features("cus_1")
    clock[0] = 5.0
    source.failing = outage()
    resolver.features("cus_1")
    assert of(resolver, points(reader, "entitlegate.stale_served")).value == 1
    assert of(resolver, points(reader, "entitlegate.errors")).value == 1
    assert of(resolver, points(reader, "entitlegate.source.unavailable")).value == 1


def test_each_source_call_is_timed_and_a_hit_is_not(reader: InMemoryMetricReader) -> None:
    resolver = Resolver(CountingSource({"cus_1": {"analytics"}}, delay=0.01))
    resolver.features("cus_1")
    for _ in range(100):
        resolver.features("cus_1")
    timing = of(resolver, points(reader, "entitlegate.source.duration"))
    assert timing.count == 1
    assert timing.sum >= 0.01


def test_an_observed_resolver_has_the_attributes_of_any_other(reader: InMemoryMetricReader) -> None:
    import entitlegate.resolver as resolver_module

    observe, resolver_module._observe_metrics = resolver_module._observe_metrics, None
    try:
        plain = Resolver(CountingSource({}))  # as without the otel extra
    finally:
        resolver_module._observe_metrics = observe
    observed = Resolver(CountingSource({}))
    assert observed._time_source is not None
    assert plain._time_source is None
    # Same names in the same order: attribute reads on the hit path stay specialised alike.
    assert list(vars(observed)) == list(vars(plain))


@pytest.mark.asyncio
async def test_an_async_source_call_is_timed_too(reader: InMemoryMetricReader) -> None:
    resolver = Resolver(CountingSource({"cus_1": {"analytics"}}))
    await resolver.afeatures("cus_1")
    assert of(resolver, points(reader, "entitlegate.source.duration")).count == 1


def test_webhook_results_are_counted_by_action(reader: InMemoryMetricReader) -> None:
    def count(action: str) -> int:
        return sum(
            point.value for point in points(reader, "entitlegate.webhooks") if point.attributes["action"] == action
        )

    before = count("applied"), count("duplicate")
    handler = WebhookHandler(Resolver(CountingSource({})), SECRET)
    body, header = signed(summary_event("cus_1", ["analytics"]))
    handler.handle(body, header)
    handler.handle(body, header)
    assert (count("applied"), count("duplicate")) == (before[0] + 1, before[1] + 1)


def test_a_redis_outage_shows_as_an_unavailable_cache(reader: InMemoryMetricReader) -> None:
    from entitlegate import RedisCache

    cache = RedisCache("redis://127.0.0.1:1/0")
    try:
        resolver = Resolver(CountingSource({"cus_1": {"analytics"}}), cache)  # held, as an app holds it
        resolver.features("cus_1")
        (point,) = points(reader, "entitlegate.cache.unavailable")
        assert point.value >= 1
    finally:
        cache.close()


def test_without_opentelemetry_nothing_is_imported_or_wrapped() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from entitlegate import Resolver, StaticSource
        resolver = Resolver(StaticSource({"cus_1": ["analytics"]}))
        assert resolver.has_feature("cus_1", "analytics")
        assert "entitlegate.metrics" not in sys.modules
        assert resolver._time_source is None
        try:
            import entitlegate.metrics
        except ImportError as error:
            print(error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "entitlegate[otel]"' in done.stdout
