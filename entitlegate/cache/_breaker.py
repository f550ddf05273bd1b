"""Remembering an outage, so a hung server costs one request a timeout rather than every request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Breaker"]

logger = logging.getLogger("entitlegate")


class Breaker:
    """After a failure, :meth:`allows` says no for ``retry_after`` seconds; then one call probes.

    While the probe is out the others still skip, so a server that hangs rather than refuses costs
    one caller a timeout per ``retry_after``. The first failure of an outage logs a warning and so
    does at most one failure per ``warn_every`` seconds after it; the recovery logs once. ``name``
    says what failed in those lines, ``describe`` words an error (neither may reveal a secret), and
    ``meanwhile`` says what callers do while it is down.
    ``on_recovery`` is called once per outage, by the caller that records the server's answer.
    Thread-safe; ``allows`` takes no lock while the server is up.
    """

    def __init__(
        self,
        name: str,
        *,
        retry_after: float,
        clock: Callable[[], float],
        describe: Callable[[BaseException], str] = str,
        warn_every: float = 30.0,
        on_recovery: Callable[[], None] | None = None,
        meanwhile: str = "answering from the source without it",
    ) -> None:
        self.name = name
        self.meanwhile = meanwhile
        self.on_recovery = on_recovery
        self._describe = describe
        self.retry_after = retry_after
        self.warn_every = warn_every
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0  # 0.0: up
        self._down_since: float | None = None
        self._warned_at = -float("inf")

    @property
    def down(self) -> bool:
        """Whether an outage is being remembered (the server failed and has not answered since)."""
        return self._down_since is not None

    def allows(self) -> bool:
        """Whether to call the server now: it is up, or this caller is the one to probe it."""
        if not self._down_until:
            return True
        now = self._clock()
        with self._lock:
            if not self._down_until:
                return True
            if now < self._down_until:
                return False
            self._down_until = now + self.retry_after  # claimed: the others skip while it probes
            return True

    def succeeded(self) -> None:
        """Record an answer from the server."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since, self._down_until = self._down_since, None, 0.0
        if since is not None:  # another caller may have recorded the recovery first
            if self.on_recovery is not None:
                self.on_recovery()
            logger.info("entitlegate: %s is answering again after %.1f s", self.name, self._clock() - since)

    def failed(self, error: BaseException) -> None:
        """Record a failure: skip the server for ``retry_after`` seconds."""
        now = self._clock()
        with self._lock:
            self._down_until = now + self.retry_after
            if self._down_since is None:
                self._down_since = now
            elif now - self._warned_at < self.warn_every:
                return
            self._warned_at = now
        logger.warning(
            "entitlegate: %s is unavailable (%s: %s); %s, retrying in %.1f s",
            self.name,
            type(error).__name__,
            self._describe(error),
            self.meanwhile,
            self.retry_after,
        )
