"""Small sources and clocks of our own for core tests (not mocks of anything: real Sources)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping

from entitlegate import SourceUnavailable


class Clock:
    """A clock tests move by hand: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingSource:
    """A Source that answers from a dict, counts its calls, and can be made to fail or be slow."""

    livemode: bool | None = None

    def __init__(self, mapping: Mapping[str, Iterable[str]] | None = None, *, delay: float = 0.0) -> None:
        self.mapping = {customer: frozenset(keys) for customer, keys in (mapping or {}).items()}
        self.delay = delay
        self.calls = 0
        self.failing: Exception | None = None
        self._lock = threading.Lock()

    def fetch(self, customer: str) -> frozenset[str]:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.failing is not None:
            raise self.failing
        return self.mapping.get(customer, frozenset())

    async def afetch(self, customer: str) -> frozenset[str]:
        with self._lock:
            self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing is not None:
            raise self.failing
        return self.mapping.get(customer, frozenset())


class GatedSource:
    """A Source whose fetch waits until ``gate`` is set: a fetch held in flight for as long as a test needs."""

    livemode: bool | None = None

    def __init__(self, mapping: Mapping[str, Iterable[str]]) -> None:
        self.mapping = {customer: frozenset(keys) for customer, keys in mapping.items()}
        self.gate = threading.Event()
        self.entered = threading.Event()

    def fetch(self, customer: str) -> frozenset[str]:
        self.entered.set()
        self.gate.wait(30)
        return self.mapping.get(customer, frozenset())

    async def afetch(self, customer: str) -> frozenset[str]:
        return await asyncio.to_thread(self.fetch, customer)


def outage() -> SourceUnavailable:
    return SourceUnavailable("the test says Stripe is down")
