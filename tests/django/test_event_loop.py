"""A gated async view on a cache hit runs entirely in the event loop: no thread, no executor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import RequestFactory

from entitlegate import Resolver
from entitlegate_django import FeatureDenied
from tests.django import views


class _NoThreadsLoop(asyncio.SelectorEventLoop):
    """An event loop that fails any attempt to run work in a thread (to_thread, sync_to_async)."""

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:
        raise AssertionError(f"a gated async view left the event loop to run {func!r}")


@pytest.fixture
def no_threads_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = _NoThreadsLoop()
    yield loop
    loop.close()


def test_async_view_on_a_cache_hit_never_leaves_the_event_loop(
    no_threads_loop: asyncio.AbstractEventLoop, resolver: Resolver, rf: RequestFactory
) -> None:
    resolver.apply_event("cus_1", ["seats-feature"], 1)
    request = rf.get("/aseats/")
    request.user = User(username="cus_1")

    response = no_threads_loop.run_until_complete(views.aseats(request))

    assert response.status_code == 200


def test_async_denial_on_a_cache_hit_never_leaves_the_event_loop(
    no_threads_loop: asyncio.AbstractEventLoop, resolver: Resolver, rf: RequestFactory
) -> None:
    resolver.apply_event("cus_1", ["other"], 1)
    request = rf.get("/aseats/")
    request.user = User(username="cus_1")

    with pytest.raises(FeatureDenied):
        no_threads_loop.run_until_complete(views.aseats(request))


@pytest.mark.parametrize(
    "hop", [lambda: asyncio.to_thread(print), lambda: sync_to_async(print)()], ids=["to_thread", "sync_to_async"]
)
def test_the_no_threads_loop_catches_a_thread_hop(no_threads_loop: asyncio.AbstractEventLoop, hop: Any) -> None:
    with pytest.raises(AssertionError, match="left the event loop"):
        no_threads_loop.run_until_complete(hop())
