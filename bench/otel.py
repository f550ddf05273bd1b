"""Section 1: the hit with OpenTelemetry metrics on (the SDK's meter provider set), beside the plain hit.

entitlegate's counters are observable instruments that read ``resolver.stats`` when the reader
collects, so a hit should cost what it costs without OpenTelemetry. The plain resolver is made
as it is without the otel extra (not observed); the other is observed on an SDK
``MeterProvider`` with an in-memory reader, which collects once after the batches.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Any

from bench._timing import Row, alternated, spread
from entitlegate import MemoryCache, Resolver, StaticSource

SECTION = "1 hit"
FEATURES = ["seats-feature", "analytics", "export", "sso", "audit-log"]
GOAL = 1.10  # at most 10% over the plain hit: within the noise of a busy machine


_READER: Any = None


def meter_reader() -> Any:
    """The process's SDK meter provider's in-memory reader, set up on first use.

    OpenTelemetry allows one global meter provider per process, so this bench and
    ``tests/test_metrics.py`` (which may run in one pytest process) share it.
    """
    global _READER
    if _READER is None:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        _READER = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    return _READER


def run(*, quick: bool = False) -> list[Row]:
    """The plain hit and the observed hit, alternated, and their ratio batch by batch."""
    import entitlegate.resolver as resolver_module

    number = 20_000 if quick else 200_000
    rounds = 3 if quick else 25
    reader = meter_reader()

    observe, resolver_module._observe_metrics = resolver_module._observe_metrics, None
    try:
        plain = Resolver(StaticSource({"cus_1": FEATURES}), MemoryCache())  # as without the otel extra
    finally:
        resolver_module._observe_metrics = observe
    observed = Resolver(StaticSource({"cus_1": FEATURES}), MemoryCache())
    assert observed._time_source is not None, "the resolver is not observed: is opentelemetry installed?"
    for resolver in (plain, observed):
        resolver.features("cus_1")

    def calls(check: Callable[[str, str], bool]) -> Callable[[int], object]:
        return timeit.Timer("has(c, k)", globals={"has": check, "c": "cus_1", "k": "analytics"}).timeit

    plains, observeds = (
        [t * 1e9 for t in side]
        for side in alternated(calls(plain.has_feature), calls(observed.has_feature), number=number, rounds=rounds)
    )
    reader.collect()  # the counters are read here, once, and not in any hit
    ratios = [hit / base for base, hit in zip(plains, observeds, strict=True)]
    ratio = statistics.median(ratios)
    return [
        Row(
            SECTION,
            "MemoryCache `has_feature`, not observed (no otel extra)",
            statistics.median(plains),
            spread(plains),
            "ns",
        ),
        Row(
            SECTION,
            "MemoryCache `has_feature`, OpenTelemetry SDK meter provider set",
            statistics.median(observeds),
            spread(observeds),
            "ns",
        ),
        Row(
            SECTION,
            "hit with OpenTelemetry / plain hit",
            ratio,
            spread(ratios, 2),
            "x",
            f"{len(ratios)} alternated batches; counters are read at collection, none is added per hit",
            goal=f"<= {GOAL:g}x",
            met=ratio <= GOAL,
            why="a hit would be paying for a metric it records",
        ),
    ]
