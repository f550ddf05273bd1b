"""Forking: a child process gets connections and coalescing state of its own (real os.fork)."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable

import pytest

from entitlegate import Resolver, SourceUnavailable, StripeSource
from tests.doubles import GatedSource
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, FakeStripe
from tests.polling import wait_for

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def start_child(body: Callable[[], bool]) -> Callable[[float], int]:
    """Run ``body`` in a forked child; returns ``wait(timeout)``: its exit code (0: it returned True)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads running
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)

    def wait(timeout: float) -> int:
        statuses: list[int] = []

        def exited() -> bool:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses.append(status)
            return bool(done)

        try:
            wait_for(exited, timeout)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child did not finish within {timeout} s") from None
        return os.waitstatus_to_exitcode(statuses[0])

    return wait


def in_child(body: Callable[[], bool], timeout: float = 10.0) -> int:
    """Run ``body`` in a forked child and wait for it; its exit code (0: it returned True)."""
    return start_child(body)(timeout)


def test_a_forked_child_asks_stripe_on_a_connection_of_its_own(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_parent", ["parent-feature"])
    fake_stripe.set_customer("cus_child", ["child-feature"])
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_retries=0)
    assert source.fetch("cus_parent") == {"parent-feature"}  # leaves a kept-alive connection

    assert in_child(lambda: source.fetch("cus_child") == {"child-feature"}) == 0

    ports = {r.params["customer"]: r.port for r in fake_stripe.requests if r.path == ACTIVE_ENTITLEMENTS}
    # On the parent's socket, parent and child would read each other's answers.
    assert ports["cus_child"] != ports["cus_parent"]
    assert source.fetch("cus_parent") == {"parent-feature"}


def test_parent_and_child_fetching_at_once_each_get_their_own_customers_features(fake_stripe: FakeStripe) -> None:
    fake_stripe.set_customer("cus_parent", ["parent-feature"])
    fake_stripe.set_customer("cus_child", ["child-feature"])
    source = StripeSource(api_key=fake_stripe.api_key, api_base=fake_stripe.url, max_retries=0)
    assert source.fetch("cus_parent") == {"parent-feature"}

    def fetch_often(customer: str, expected: set[str]) -> int:
        wrong = 0
        for _ in range(100):
            try:
                wrong += source.fetch(customer) != expected
            except SourceUnavailable:
                wrong += 1
        return wrong

    # Both on the connection the parent opened before the fork, unless the child made its own.
    wait_child = start_child(lambda: fetch_often("cus_child", {"child-feature"}) == 0)
    parent_wrong = fetch_often("cus_parent", {"parent-feature"})
    assert wait_child(30) == 0
    assert parent_wrong == 0


def test_a_fetch_in_flight_at_fork_time_does_not_hang_the_child() -> None:
    source = GatedSource({"cus_1": {"seats-feature"}})
    resolver = Resolver(source)
    parent_fetch = threading.Thread(target=resolver.features, args=("cus_1",))
    parent_fetch.start()
    try:
        assert source.entered.wait(5)  # the parent's thread leads a flight for cus_1

        def child() -> bool:
            source.gate = threading.Event()
            source.gate.set()  # the child's own fetch answers at once
            return resolver.features("cus_1") == {"seats-feature"}

        assert in_child(child) == 0
    finally:
        source.gate.set()
        parent_fetch.join(10)
    assert resolver.features("cus_1") == {"seats-feature"}
