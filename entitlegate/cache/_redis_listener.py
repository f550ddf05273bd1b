"""Keeping a local tier true: follow the invalidation channel, reconnect, and forget on any gap.

:func:`listen` runs in a daemon thread on a ``redis.Redis``; :func:`alisten` in a task on a
``redis.asyncio.Redis``. Both follow the same steps, deciding nothing themselves: subscribe, clear
the local tier once the server confirms (messages may have been missed before), drop the copy each
message names, ping when the channel has been quiet for a heartbeat and give up on a server that
has not answered for another, then reconnect with a growing pause (and clear once subscribed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import RedisClusterException

from entitlegate.cache._local import LocalTier

__all__ = ["Invalidations", "alisten", "listen"]

logger = logging.getLogger("entitlegate")

_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 2.0
_T = TypeVar("_T")
_SETTLE = 1.0  # how long a cancelled call may take to end before its connection is closed
_WAKE = 0.1  # how often the thread looks at its stop flag while the channel is quiet


class _Silent(Exception):
    """The server answered neither a message nor a ping for a heartbeat: treat it as gone."""


class Invalidations:
    """What the channel's messages mean for ``local``: a message is the key of a changed entry.

    ``namespace`` returns the key prefix (``prefix:livemode:account:``) this tier holds copies
    for; a key outside it is another namespace's business, and the bare prefix means all of them.
    ``tagged``: keys wrap the customer in a cluster's hash tag (``{customer}``).
    ``answered`` is told that the server answered (a subscription it confirmed).
    """

    def __init__(
        self,
        local: LocalTier,
        channel: str,
        namespace: Callable[[], str],
        *,
        heartbeat: float,
        clock: Callable[[], float] = time.monotonic,
        answered: Callable[[], None] = lambda: None,
        tagged: bool = False,
    ) -> None:
        self.local = local
        self.answered = answered
        self.channel = channel
        self.heartbeat = heartbeat
        self._namespace = namespace
        self.tagged = tagged
        self.clock = clock
        self.listening = 0  # listeners subscribed now (a thread, and a task per event loop)
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: none of the parent's listeners runs here."""
        self._lock = threading.Lock()
        self.listening = 0

    def received(self, key: bytes) -> None:
        """A message: drop the copy of the customer whose key it names."""
        namespace = self._namespace()
        text = key.decode(errors="replace")
        if not text.startswith(namespace):
            return
        customer = text[len(namespace) :]
        if self.tagged and customer.startswith("{") and customer.endswith("}"):
            customer = customer[1:-1]  # a cluster's hash tag
        if customer:
            self.local.drop(customer)
        else:
            self.local.clear()

    def connected(self) -> None:
        """The server confirmed the subscription: from now on no change goes unheard."""
        # The server is back for the commands too, before the clear: a copy fetched meanwhile is
        # then either stopped by the clear or written to Redis, never kept whole past the outage.
        self.answered()
        self.local.clear()  # anything published while this subscriber was away was missed
        with self._lock:
            self.listening += 1

    def lost(self, error: BaseException | None, *, was_connected: bool) -> None:
        """The subscription ended (``error`` says why, if it failed).

        The copies stay: each is cut to the tier's ttl while the shared cache answers, and while it
        does not they are all there is to answer from (forgetting them would send every check to
        the source). Whatever changed meanwhile is forgotten by :meth:`connected`, on the way back.
        """
        if was_connected:
            with self._lock:
                self.listening -= 1
        if error is not None and not isinstance(error, (redis.RedisError, OSError, RedisClusterException, _Silent)):
            logger.error("entitlegate: the Redis invalidation listener failed; reconnecting", exc_info=error)


def listen(client: Any, invalidations: Invalidations, stopping: threading.Event) -> None:
    """Follow the channel until ``stopping`` is set (a daemon thread's body)."""
    pause = _FIRST_PAUSE
    while not stopping.is_set():
        pubsub = client.pubsub()
        error: BaseException | None = None
        connected = False
        try:
            pubsub.subscribe(invalidations.channel)
            _confirm(pubsub.get_message, invalidations)
            invalidations.connected()
            connected = True
            pause = _FIRST_PAUSE
            _follow(pubsub, invalidations, stopping)
        except Exception as failure:
            error = failure
        finally:
            _quietly(pubsub.close)
            invalidations.lost(error, was_connected=connected)
        stopping.wait(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)


async def alisten(client: Any, invalidations: Invalidations) -> None:
    """Async twin of :func:`listen`: follow the channel until the task is cancelled."""
    pause = _FIRST_PAUSE
    while True:
        pubsub = client.pubsub()
        reader = _Reader(pubsub)
        error: BaseException | None = None
        connected = False
        try:
            if isinstance(client, AsyncRedisCluster):
                # Its pub/sub needs the slots, which an asyncio cluster client learns on first use.
                await _settled(client.initialize())
            await _settled(pubsub.subscribe(invalidations.channel))
            await _aconfirm(reader, invalidations)
            invalidations.connected()
            connected = True
            pause = _FIRST_PAUSE
            await _afollow(pubsub, reader, invalidations)
        except Exception as failure:
            error = failure
        finally:
            await reader.stop()
            await _aquietly(pubsub)
            invalidations.lost(error, was_connected=connected)
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)


async def _settled(call: Awaitable[_T]) -> _T:
    """Await a redis-py call in a task of its own, so that a cancellation of ours always gets through.

    redis-py sends commands under ``asyncio.wait_for``, which before Python 3.12 swallows a
    cancellation that arrives as the send completes; the listener would then outlive its event
    loop's shutdown, which waits on it for ever. ``asyncio.wait`` never swallows one.
    """
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        # Let the call end (redis-py may finish it regardless) before the caller's cleanup closes
        # the connection under it: else it writes to a closed one, and the socket is left open.
        # Bounded, as every Redis call is, so a stuck call cannot hold up the loop's shutdown.
        await asyncio.wait({task}, timeout=_SETTLE)
        task.add_done_callback(_retrieve)
        raise
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so a call abandoned on cancellation is not reported as lost


class _Quiet:
    """Nothing arrived in time."""


_QUIET = _Quiet()


class _Reader:
    """Reads the channel in a task of its own, so that waiting for a message needs no timeout.

    redis-py's own timeouts may swallow the listener's cancellation (see :func:`_settled`); a read
    without one, awaited through ``asyncio.wait``, always lets it through.
    """

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub
        self._reading: asyncio.Future[Any] | None = None

    async def next(self, timeout: float) -> Any:
        """The next message (None for one redis-py keeps to itself), or ``_QUIET`` after ``timeout``."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._pubsub.get_message(timeout=None))
        done, _ = await asyncio.wait({self._reading}, timeout=timeout)
        if not done:
            return _QUIET
        reading, self._reading = self._reading, None
        return reading.result()

    async def stop(self) -> None:
        reading, self._reading = self._reading, None
        if reading is None:
            return
        reading.cancel()
        await asyncio.wait({reading})
        _retrieve(reading)


def _confirm(get_message: Callable[..., Any], invalidations: Invalidations) -> None:
    deadline = invalidations.clock() + invalidations.heartbeat
    while (left := deadline - invalidations.clock()) > 0:
        message = get_message(timeout=left)
        if message is not None and message["type"] == "subscribe":
            return
    raise _Silent("no subscribe confirmation")


async def _aconfirm(reader: _Reader, invalidations: Invalidations) -> None:
    deadline = invalidations.clock() + invalidations.heartbeat
    while (left := deadline - invalidations.clock()) > 0:
        message = await reader.next(left)
        if isinstance(message, dict) and message["type"] == "subscribe":
            return
    raise _Silent("no subscribe confirmation")


def _follow(pubsub: Any, invalidations: Invalidations, stopping: threading.Event) -> None:
    clock, heartbeat = invalidations.clock, invalidations.heartbeat
    heard, pinged = clock(), False
    while not stopping.is_set():
        message = pubsub.get_message(timeout=min(heartbeat, _WAKE))
        if message is not None:
            heard, pinged = clock(), False
            if message["type"] == "message":
                invalidations.received(message["data"])
        elif clock() - heard >= heartbeat:
            if pinged:
                raise _Silent("no answer to a ping")
            pubsub.ping()
            heard, pinged = clock(), True


async def _afollow(pubsub: Any, reader: _Reader, invalidations: Invalidations) -> None:
    pinged = False
    while True:
        message = await reader.next(invalidations.heartbeat)
        if message is not _QUIET:
            pinged = False
            if isinstance(message, dict) and message["type"] == "message":
                invalidations.received(message["data"])
        elif pinged:
            raise _Silent("no answer to a ping")
        else:
            await _settled(pubsub.ping())
            pinged = True


def _quietly(close: Callable[[], object]) -> None:
    try:
        close()
    except Exception:  # closing a connection to a server that is gone may fail; it is gone anyway
        logger.debug("entitlegate: closing the Redis listener's connection failed", exc_info=True)


async def _aquietly(pubsub: Any) -> None:
    try:
        # redis-py 5.0.0 names it close(); aclose() from 5.0.1 on.
        close = getattr(pubsub, "aclose", None) or pubsub.close
        await close()
    except Exception:
        logger.debug("entitlegate: closing the Redis listener's connection failed", exc_info=True)
