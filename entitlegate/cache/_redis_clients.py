"""The redis-py clients a RedisCache talks through: built from a URL or handed in, one per event loop.

:func:`build` makes (or checks) the sync client and says where it points without a password;
:class:`LoopClients` gives each event loop an asyncio client of its own, held by a task on that
loop that also listens for invalidations and closes the client when the loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from entitlegate.cache._redis_core import Connection

__all__ = ["CLUSTER_SCHEMES", "Clients", "LoopClients", "LoopConnection", "build"]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""The URL schemes that select a Redis Cluster (redis-py's own cluster URL is a plain ``redis://``)."""

logger = logging.getLogger("entitlegate")


@dataclass(eq=False)
class LoopConnection(Connection):
    """The asyncio client one event loop uses, and the task that listens on it and closes it."""

    owned: bool = False
    keeper: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Clients:
    """The sync connection, whether it was built here (so closed here), where it points, and its password."""

    sync: Connection
    owned: bool
    location: str  # never the password or the query
    password: str | None
    async_factory: Callable[[], Any] | None  # from a URL: one asyncio client per loop
    cluster: bool = False  # a redis.cluster.RedisCluster: keys carry hash tags, a breaker per node


def build(
    target: object,
    *,
    async_client: object,
    socket_timeout: float,
    socket_connect_timeout: float,
) -> Clients:
    """The clients for ``target``, a redis URL or a ``redis.Redis`` / ``RedisCluster``; ``async_client`` is checked too.

    A ``redis+cluster://`` or ``rediss+cluster://`` URL (any one node: redis-py discovers the
    rest) builds ``redis.cluster.RedisCluster`` clients. Raises TypeError for anything else (an
    asyncio client alone, say how to pass it; a cluster beside a single client) and ValueError for
    a URL redis-py refuses or a client that decodes responses. A client handed in that could keep a
    request waiting long on a hung Redis gets a warning.
    """
    asyncio_kinds = (redis.asyncio.Redis, AsyncRedisCluster)
    if async_client is not None and not isinstance(async_client, asyncio_kinds):
        raise TypeError(
            "RedisCache async_client must be a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster, "
            f"got {type(async_client).__name__}"
        )
    factory: Callable[[], Any] | None = None
    client: Any
    if isinstance(target, str):
        url = target
        cluster = target.startswith(CLUSTER_SCHEMES)
        if cluster:  # redis-py's own cluster URL is a plain redis:// one; the scheme says "cluster" here
            url = target.replace("+cluster", "", 1)
        timeouts: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
        sync_kind: Any = RedisCluster if cluster else redis.Redis
        async_kind: Any = AsyncRedisCluster if cluster else redis.asyncio.Redis
        try:
            client = sync_kind.from_url(url, retry=Retry(NoBackoff(), 0), **timeouts)
        except ValueError as error:  # redis-py's message names the problem, never the URL
            raise ValueError(f"RedisCache: {error}") from None

        def factory() -> Any:
            return async_kind.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **timeouts)

        owned, location = True, _location_of_url(target)
    elif isinstance(target, (redis.Redis, RedisCluster)):
        client, owned, location = target, False, _location_of_client(target)
    elif isinstance(target, asyncio_kinds):
        raise TypeError(
            "RedisCache needs a redis URL or a redis.Redis; pass a redis.asyncio.Redis as async_client= "
            "beside it (a sync client cannot be served by an asyncio one)"
        )
    else:
        raise TypeError(f"RedisCache needs a redis URL or a redis.Redis, got {type(target).__name__}")
    if async_client is not None and isinstance(client, RedisCluster) != isinstance(async_client, AsyncRedisCluster):
        raise TypeError("RedisCache: give a RedisCluster an asyncio RedisCluster beside it, and a Redis a Redis")
    for checked, handed_in in ((client, not owned), (async_client, True)):
        if checked is None:
            continue
        if _options(checked).get("decode_responses"):
            raise ValueError("RedisCache stores bytes: give it a client with decode_responses=False")
        if handed_in:
            _warn_if_slow_to_fail(checked)
    password: str | None = _options(client).get("password")
    return Clients(Connection(client), owned, location, password, factory, isinstance(client, RedisCluster))


def _options(client: Any) -> dict[str, Any]:
    """The connection options of a client, single or cluster, sync or asyncio."""
    if isinstance(client, RedisCluster):
        options: dict[str, Any] = client.nodes_manager.connection_kwargs
    elif isinstance(client, AsyncRedisCluster):
        options = client.connection_kwargs
    else:
        options = client.connection_pool.connection_kwargs
    return options


class LoopClients:
    """One asyncio connection per event loop, made on the loop's first call and dropped with the loop.

    A client handed in (``handed_in``) serves the loop that first uses it; other loops get one from
    ``factory`` (a URL's), or none: :meth:`running` answers None, and the caller uses the sync
    client from a worker thread. Each connection is held by a task on its loop that runs
    ``listen(client)`` (None: nothing to listen for) and closes a client made here when it ends.
    Thread-safe.
    """

    def __init__(
        self,
        factory: Callable[[], Any] | None,
        handed_in: Any,  # redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | None
        listen: Callable[[redis.asyncio.Redis], Awaitable[None]] | None,
    ) -> None:
        self._factory = factory
        self._handed_in = handed_in
        self._handed_in_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._listen = listen
        self.by_loop: dict[asyncio.AbstractEventLoop, LoopConnection] = {}
        self._lock = threading.Lock()
        self._closed = False

    def running(self) -> LoopConnection | None:
        """The running loop's connection (made now if it has none), or None: use the sync client."""
        loop = asyncio.get_running_loop()
        connection = self.by_loop.get(loop)
        if connection is not None:
            return connection
        with self._lock:
            connection = self.by_loop.get(loop)
            if connection is not None or self._closed:
                return connection
            pinned = self._handed_in_loop() if self._handed_in_loop is not None else None
            if self._handed_in is not None and pinned in (None, loop):
                self._handed_in_loop = weakref.ref(loop)
                connection = LoopConnection(self._handed_in, owned=False)
            elif self._factory is not None:
                connection = LoopConnection(self._factory(), owned=True)
            else:
                return None
            for other in [other for other in self.by_loop if other.is_closed()]:
                del self.by_loop[other]  # a loop closed without cancelling its keeper
            self.by_loop[loop] = connection
        connection.keeper = loop.create_task(self._keep(loop, connection), name="entitlegate-redis-listener")
        return connection

    async def _keep(self, loop: asyncio.AbstractEventLoop, connection: LoopConnection) -> None:
        """A loop's listener; it also owns the loop's client, closing it when the loop shuts down."""
        try:
            if self._listen is not None:
                await self._listen(connection.redis)
            else:
                await loop.create_future()  # nothing to listen for: only hold the client until then
        finally:
            with self._lock:
                if self.by_loop.get(loop) is connection:
                    del self.by_loop[loop]
            if connection.owned:
                await connection.redis.aclose()

    def close(self) -> None:
        """Make no more connections, and have each loop's keeper close its own client, on its loop."""
        with self._lock:
            self._closed = True
            connections = list(self.by_loop.items())
        for loop, connection in connections:
            if connection.keeper is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(connection.keeper.cancel)

    def after_fork(self) -> None:
        """In a forked child: none of the parent's loops runs here, and its lock may be held."""
        self._lock = threading.Lock()
        self.by_loop = {}


def _warn_if_slow_to_fail(client: Any) -> None:
    """Warn when a client handed in could keep a request waiting on a hung Redis for long."""
    options = _options(client)
    timeout = options.get("socket_timeout")
    retry = options.get("retry")
    retries = max(int(getattr(retry, "_retries", 0)), 0) if retry is not None else 0
    if timeout is None or timeout * (retries + 1) > 1.0:
        longest = "for as long as it hangs" if timeout is None else f"up to {timeout * (retries + 1):g} s"
        logger.warning(
            "entitlegate: the %s given to RedisCache may hold a request %s when Redis hangs "
            "(socket_timeout=%s, %d retries); build it with socket_timeout=0.25 and "
            "retry=Retry(NoBackoff(), 0), or give RedisCache the URL",
            type(client).__name__,
            longest,
            timeout,
            retries,
        )


def _location_of_url(url: str) -> str:
    """Where a URL points, without its user, password or query (which may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _location_of_client(client: redis.Redis | RedisCluster) -> str:
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"redis+cluster://{node.host}:{node.port}" if node is not None else "redis+cluster://"
    options = client.connection_pool.connection_kwargs
    if options.get("path"):
        return f"unix://{options['path']}"
    return f"redis://{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"
