"""Worker processes for the multi-process tests: real OS processes sharing one Redis.

Each worker (started with the spawn method, so nothing is inherited but the arguments) runs a
:class:`~entitlegate.Resolver` with a :class:`~entitlegate.RedisCache` over the real ``stripe``
SDK talking to the fake Stripe, and a :class:`~entitlegate.WebhookHandler`. The test process
sends it commands over a pipe; every wait in here polls a condition against a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from entitlegate import RedisCache, Resolver, StripeSource, WebhookHandler
from tests.stripe_events import SECRET

_REPLY_TIMEOUT = 30.0


class _State:
    def __init__(self, redis_url: str, stripe_url: str, api_key: str) -> None:
        self.redis_url = redis_url
        self.stripe_url = stripe_url
        self.api_key = api_key
        self.cache: RedisCache | None = None
        self.resolver: Resolver | None = None
        self.handler: WebhookHandler | None = None

    def configure(self, **cache_options: Any) -> None:
        if self.cache is not None:
            self.cache.close()
        source = StripeSource(api_key=self.api_key, api_base=self.stripe_url, max_network_retries=0)
        self.cache = RedisCache(self.redis_url, **cache_options)
        self.resolver = Resolver(source, self.cache)
        self.handler = WebhookHandler(self.resolver, SECRET)

    def configure_usage(self, *, timeout: float = 1.0, **resolver_options: Any) -> None:
        """A resolver that counts usage in the shared Redis and sends meter events to the fake Stripe."""
        if self.resolver is not None:
            self.resolver.close()
        if self.cache is not None:
            self.cache.close()
        source = StripeSource(api_key=self.api_key, api_base=self.stripe_url, max_network_retries=0, timeout=timeout)
        self.cache = RedisCache(self.redis_url)
        self.resolver = Resolver(source, self.cache, **resolver_options)
        self.handler = None

    def record(self, customer: str, meter: str, identifiers: list[str], threads: int, start_at: float) -> int:
        """``threads`` threads recording one use per identifier, from ``start_at``; how many were recorded."""
        resolver = self.resolver
        assert resolver is not None
        _sleep_until(start_at)
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(
                lambda identifier: resolver.record_usage(customer, meter, identifier=identifier), identifiers
            ):
                pass
        return len(identifiers)

    def consume(self, customer: str, meter: str, limit: int, threads: int, start_at: float) -> int:
        """``threads`` threads each asking to use one of ``limit`` at once; how many were let through."""
        resolver = self.resolver
        assert resolver is not None

        def consume_one(_: int) -> bool:
            _sleep_until(start_at)
            admitted, _total = resolver.consume_usage(customer, meter, limit)
            return admitted

        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(consume_one, range(threads)))

    def usage(self, customer: str, meter: str) -> int:
        assert self.resolver is not None
        return self.resolver.usage(customer, meter)

    def flush_usage(self) -> int:
        assert self.resolver is not None
        return self.resolver.flush_usage()

    def features(self, customer: str) -> list[str]:
        assert self.resolver is not None
        return sorted(self.resolver.features(customer))

    def limit(self, customer: str, name: str) -> float:
        assert self.resolver is not None
        return float(self.resolver.limit(customer, name))

    def refresh(self, customer: str) -> list[str]:
        assert self.resolver is not None
        return sorted(self.resolver.refresh(customer))

    def copied(self, customer: str, timeout: float = 5.0) -> list[str]:
        """Read once the listener has subscribed (subscribing forgets every copy), leaving a copy."""
        assert self.resolver is not None
        assert self.cache is not None
        self.features(customer)  # starts the listener
        deadline = time.monotonic() + timeout
        while not self.cache.listening:
            if time.monotonic() > deadline:
                raise AssertionError(f"the listener did not subscribe within {timeout} s")
            time.sleep(0.001)
        answer = self.features(customer)
        assert self.cache.peek(customer) is not None
        return answer

    def timed_features(self, customer: str) -> tuple[list[str], float]:
        started = time.monotonic()
        answer = self.features(customer)
        return answer, time.monotonic() - started

    def timed_run(self, customers: list[str]) -> tuple[list[list[str]], list[float]]:
        """Ask for each customer in turn; the answers and how long each took."""
        answers, seconds = [], []
        for customer in customers:
            answer, took = self.timed_features(customer)
            answers.append(answer)
            seconds.append(took)
        return answers, seconds

    def listening(self) -> bool:
        """Whether the cache's listener is subscribed: it has heard Redis answer since any outage."""
        assert self.cache is not None
        return self.cache.listening

    def namespace(self) -> str:
        assert self.cache is not None
        return self.cache.namespace

    def key(self, customer: str) -> str:
        assert self.cache is not None
        return self.cache.key(customer)

    def watch(self, customer: str, expected: list[str], timeout: float, ready: Callable[[], None]) -> float:
        """Prime a local copy, say ready, then poll until the answer is ``expected``; when it was."""
        assert self.resolver is not None
        self.resolver.features(customer)
        ready()
        wanted = frozenset(expected)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.resolver.features(customer) == wanted:
                return time.monotonic()
            time.sleep(0.0002)  # a poll interval, not a wait: lets the listener thread have the GIL
        raise AssertionError(f"{customer} did not become {sorted(wanted)} within {timeout} s")

    def handle(self, deliveries: list[tuple[bytes, str]], start_at: float = 0.0) -> tuple[float, list[str]]:
        """Apply webhook deliveries in order, as an adapter would; when handling began, and outcomes.

        An outcome is the action of a delivery answered 200, else the error an adapter would send.
        """
        assert self.handler is not None
        _sleep_until(start_at)
        began = time.monotonic()
        answers = [self.handler.respond(body, signature) for body, signature in deliveries]
        return began, [str(answer.body.get("action") or answer.body["error"]) for answer in answers]

    def hammer(self, customer: str, threads: int, start_at: float) -> list[list[str]]:
        """``threads`` threads all asking for ``customer`` at ``start_at`` (a monotonic time)."""

        def ask() -> list[str]:
            _sleep_until(start_at)
            return self.features(customer)

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda _: ask(), range(threads)))

    def stats(self) -> dict[str, int]:
        assert self.resolver is not None
        return dataclasses.asdict(self.resolver.stats)


def _sleep_until(moment: float) -> None:
    # A common start time for several processes, not a wait for a condition.
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def serve(conn: Connection, redis_url: str, stripe_url: str, api_key: str) -> None:
    """A worker's main loop: run each command received, send back ``("ok", result)`` or an error."""
    state = _State(redis_url, stripe_url, api_key)
    while True:
        command, kwargs = conn.recv()
        if command == "stop":
            break
        try:
            if command == "watch":
                kwargs["ready"] = lambda: conn.send(("ready", None))
            result = getattr(state, command)(**kwargs)
        except BaseException as error:
            conn.send(("error", "".join(traceback.format_exception(error))))
        else:
            conn.send(("ok", result))
    if state.resolver is not None:
        state.resolver.close()
    if state.cache is not None:
        state.cache.close()


class Worker:
    """The test side of one worker process."""

    def __init__(self, context: Any, name: str, *, redis_url: str, stripe_url: str, api_key: str) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(child, redis_url, stripe_url, api_key), name=name, daemon=True
        )
        self.process.start()
        child.close()

    def send(self, command: str, **kwargs: Any) -> None:
        self.conn.send((command, kwargs))

    def receive(self, expect: str = "ok", timeout: float = _REPLY_TIMEOUT) -> Any:
        if not self.conn.poll(timeout):
            raise AssertionError(f"worker {self.process.name} did not answer within {timeout} s")
        kind, value = self.conn.recv()
        if kind == "error":
            raise AssertionError(f"worker {self.process.name} failed:\n{value}")
        assert kind == expect, (kind, value)
        return value

    def call(self, command: str, **kwargs: Any) -> Any:
        self.send(command, **kwargs)
        return self.receive()


class Workers(list[Worker]):
    """A few worker processes, started together (spawn) and stopped together."""

    def __init__(self, count: int, **options: str) -> None:
        context = multiprocessing.get_context("spawn")
        super().__init__(Worker(context, f"worker-{i}", **options) for i in range(count))

    def configure(self, **cache_options: Any) -> None:
        for worker in self:
            worker.send("configure", **cache_options)
        for worker in self:
            worker.receive()

    def call_all(self, command: str, **kwargs: Any) -> list[Any]:
        for worker in self:
            worker.send(command, **kwargs)
        return [worker.receive() for worker in self]

    def stop(self) -> None:
        for worker in self:
            with contextlib.suppress(OSError):
                worker.send("stop")
        for worker in self:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
