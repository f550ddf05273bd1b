"""What a RedisCache says to Redis: its keys, its scripts and the commands on them; it decides nothing.

Each method of :class:`RedisCommands` returns a :data:`Command`: a function of a
:class:`Connection` that sends the command and returns the reply on a ``redis.Redis`` connection,
or an awaitable of it on a ``redis.asyncio.Redis`` one, since redis-py's two clients share their
method names. Which write wins is the scripts' business (:mod:`._redis_format`), what a reply
means and what to do when Redis fails is the cache's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from entitlegate.cache import _redis_format as stored

__all__ = ["Command", "Connection", "Keyed", "RedisCommands"]

# An entry's key outlives its stale_ttl by this much at least, so that its stamps still stop a
# fetch that started before it (a slow Stripe call) from writing back an older set.
_STAMPS_KEPT = 300.0
_CLEARED_PER_CALL = 1000
_Arg = bytes | str | int | float


class _Scripts:
    """The Lua scripts, registered on one client (Redis reloads them by hash after a restart)."""

    def __init__(self, client: Any) -> None:  # a redis-py client, sync or asyncio, single or cluster
        self.put = client.register_script(stored.PUT)
        self.invalidate = client.register_script(stored.INVALIDATE)
        self.lease = client.register_script(stored.LEASE)
        self.release = client.register_script(stored.RELEASE)


@dataclass(eq=False)
class Connection:
    """A redis-py client, sync or asyncio, and the scripts registered on it."""

    redis: Any  # redis.Redis | redis.asyncio.Redis: the commands call what both clients have
    scripts: _Scripts = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.scripts = _Scripts(self.redis)


Command = Callable[[Connection], Any]
"""Sends one command (or one script) on a connection: its reply, or an awaitable of it."""


@dataclass(frozen=True, slots=True)
class Keyed:
    """A command on one customer's keys, which names them: on a cluster, ``key`` picks the node."""

    key: str
    send: Command

    def __call__(self, connection: Connection) -> Any:
        return self.send(connection)


class RedisCommands:
    """The keys of one cache (``prefix:livemode:account:customer``) and the commands on them.

    ``tagged`` (for a Redis Cluster) wraps the customer in a hash tag, ``prefix:...:{customer}``,
    so that a customer's entry and lease share a slot and each script runs on one node.
    Not thread-safe to :meth:`name` while others send; the cache names its keys once, when bound.
    """

    def __init__(self, prefix: str, *, tagged: bool = False) -> None:
        self.prefix = prefix
        self.tagged = tagged
        self.channel = f"{prefix}:invalidations"
        self.namespace = self._lease_namespace = ""
        self.name(None, None)

    def name(self, livemode: bool | None, account: str | None) -> bool:
        """Set the key prefixes for a livemode and account; True if they changed."""
        mode = "-" if livemode is None else "live" if livemode else "test"
        tail = f"{mode}:{account or '-'}:"
        namespace = f"{self.prefix}:{tail}"
        changed = namespace != self.namespace
        self.namespace, self._lease_namespace = namespace, f"{self.prefix}:lease:{tail}"
        return changed

    def key(self, customer: str) -> str:
        """The key of the customer's entry."""
        return self.namespace + ("{" + customer + "}" if self.tagged else customer)

    def _lease_key(self, customer: str) -> str:
        return self._lease_namespace + ("{" + customer + "}" if self.tagged else customer)

    def get(self, customer: str) -> Command:
        """``GET`` the customer's entry: its stored bytes, or None."""
        key = self.key(customer)
        return Keyed(key, lambda connection: connection.redis.get(key))

    def put(self, customer: str, value: bytes, *, event: bool, keep_for: float) -> Command:
        """Run the PUT script: store ``value`` unless Redis holds a newer entry.

        ``keep_for`` is how long (seconds) the entry may still be served; the key lives at least
        that long, and at least long enough for its stamps to stop an older write.
        """
        key_ttl = max(keep_for, _STAMPS_KEPT)
        milliseconds = math.ceil(key_ttl * 1000) if math.isfinite(key_ttl) else 0  # 0: kept for ever
        keys = [self.key(customer)]
        args: list[_Arg] = [value, "1" if event else "0", milliseconds, self.channel]
        return Keyed(keys[0], lambda connection: connection.scripts.put(keys=keys, args=args))

    def invalidate(self, customer: str, version: float, as_of: float, *, ended: bool) -> Command:
        """Run the INVALIDATE script: the entry is never fresh from now on; its stored bytes come back."""
        keys = [self.key(customer)]
        args: list[_Arg] = [
            stored.pack_version(version),
            math.ceil(_STAMPS_KEPT * 1000),
            self.channel,
            "1" if ended else "0",
            stored.pack_version(as_of),
        ]
        return Keyed(keys[0], lambda connection: connection.scripts.invalidate(keys=keys, args=args))

    def lease(self, customer: str, token: str, *, timeout: float, now: float) -> Command:
        """Run the LEASE script: the entry's bytes if fresh at ``now`` (epoch), 1 if claimed, else 0."""
        keys = [self.key(customer), self._lease_key(customer)]
        args: list[_Arg] = [token, math.ceil(timeout * 1000), now]
        return Keyed(keys[0], lambda connection: connection.scripts.lease(keys=keys, args=args))

    def release(self, customer: str, token: str) -> Command:
        """Run the RELEASE script: let the lease go if ``token`` still holds it."""
        keys = [self._lease_key(customer)]
        return Keyed(keys[0], lambda connection: connection.scripts.release(keys=keys, args=[token]))

    def clear(self) -> Callable[[Connection], None]:
        """Unlink every key of this namespace and tell every process to forget its copies (sync only)."""
        pattern, namespace, channel = _glob_escape(self.namespace) + "*", self.namespace, self.channel

        def clear(connection: Connection) -> None:
            client: redis.Redis = connection.redis
            batch: list[str | bytes] = []
            for key in client.scan_iter(match=pattern, count=_CLEARED_PER_CALL):
                batch.append(key)
                if len(batch) == _CLEARED_PER_CALL:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
            client.publish(channel, namespace)  # the bare namespace: forget them all

        return clear


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
