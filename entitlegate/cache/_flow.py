"""One cache operation as a flow: its decisions in a generator, its I/O done by whoever runs it.

A :data:`Flow` yields what it needs done, a command (a callable of a connection) or a pause
(seconds, a float), and is sent back the command's reply, or :data:`DOWN` when the server is
unavailable; it returns the operation's answer. It does no I/O itself, so one flow serves a sync
and an async twin alike: each twin only runs it (httpx's auth flows work the same way).
:class:`Run` is the part of running one that is no I/O either, the breaker's bookkeeping
included, so the two drivers differ only in how they send a command and how they wait.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from entitlegate.cache._breaker import Breaker

__all__ = ["DOWN", "Flow", "Run"]

T = TypeVar("T")


class _Down(enum.Enum):
    DOWN = "down"


DOWN = _Down.DOWN
"""The reply to a command the server did not answer: it failed, or an outage is remembered."""

Flow = Generator[Callable[[Any], Any] | float, Any, T]


class Run(Generic[T]):
    """A flow being run: the step to take now (:attr:`step`), until :attr:`done`; then :attr:`result`.

    A command the breaker does not let through is answered :data:`DOWN` at once, with no I/O;
    a reply or a failure of a command the driver sent is recorded on the breaker. An exception the
    flow raises (``CacheUnavailable``) comes out of :meth:`replied`/:meth:`failed`, or of the
    constructor, for the driver to let through. ``pick`` chooses the breaker of each command (a
    cluster has one per node, so one node's outage leaves the others' customers alone).
    """

    __slots__ = ("_breaker", "_flow", "_pick", "done", "result", "step")

    def __init__(self, flow: Flow[T], breaker: Breaker, pick: Callable[[Any], Breaker] | None = None) -> None:
        self._flow = flow
        self._breaker = breaker
        self._pick = pick
        self.done = False
        self.step: Callable[[Any], Any] | float = 0.0
        self.result: T
        self._advance(None)

    def replied(self, reply: Any) -> None:
        """The step was taken: a command answered ``reply`` (a pause's reply is ignored)."""
        if callable(self.step):
            self._breaker.succeeded()
        self._advance(reply)

    def failed(self, error: BaseException, breaker: Breaker | None = None) -> None:
        """The command failed with ``error``: the server (or ``breaker``'s, if given) is down."""
        (breaker or self._breaker).failed(error)
        self._advance(DOWN)

    def _advance(self, reply: Any) -> None:
        while True:
            try:
                step = self._flow.send(reply)
            except StopIteration as finished:
                self.done, self.result = True, finished.value
                return
            if callable(step) and self._pick is not None:
                self._breaker = self._pick(step)
            if not callable(step) or self._breaker.allows():
                self.step = step
                return
            reply = DOWN
