"""Usage counters and pending meter events in Redis: RedisCache's side of :class:`~entitlegate.usage.UsageStore`.

The keys, under ``prefix:usage:livemode:account:`` (beside the entries' namespace, so
:meth:`RedisCache.clear` never drops a count or an unsent event):

- ``<customer>:n:<period start>:<meter>``: the counter, an integer. Set only by the SEED script
  (set-if-cold) and kept until ``period start + 373 days``: the store is handed the period's start
  only, and no Stripe billing period is longer than a year, so that is at least the period's end
  plus 7 days for every period (a monthly counter outlives its period by up to eleven months; it
  is one small key per customer, meter and period).
- ``<customer>:events``: a hash, identifier -> packed event (:func:`pack`), the events not yet acked.
- ``<customer>:leases``: a sorted set, identifier -> the time (ms, Redis's own clock) its lease
  ends; 0 for an event never claimed.
- ``prefix:usage-pending:livemode:account:``: the index, a sorted set of the customers that may
  have pending events (scored by when each last queued one), so that :meth:`RedisUsage.claim`
  finds them without scanning the keyspace.

On a Redis Cluster the customer is a hash tag, ``{customer}``, so a customer's counters, events
and leases share a slot and each script runs on one node; the index is one key on one node, so it
is written by a command of its own before the ADD script; a process skips that command for a
customer it indexed less than half the grace ago (the member cannot be dropped meanwhile), so the
warm path is one round trip there too, as on a single Redis, where the ADD script writes the index.

Every time a script compares (a lease's end, an index member's age) is read from Redis (``TIME``),
so the hosts' clocks do not matter; scripts that write after ``TIME`` need Redis 5 or later.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from redis.exceptions import NoScriptError

from entitlegate._meters import MeterEvent
from entitlegate.cache._flow import DOWN, Flow
from entitlegate.cache._redis_core import Connection, Keyed, RedisCommands
from entitlegate.errors import CacheUnavailable

__all__ = ["RedisUsage", "pack", "unpack"]

PACKING = 1
"""The version of :func:`pack`'s format, its first element."""

_COUNTER_KEPT_MS = (366 + 7) * 86_400 * 1000  # the longest billing period (a leap year), plus 7 days
_INDEX_PAGE = 500
# On a cluster a customer leaves the index only once it has been idle this long (seconds, Redis
# time): its ADD script may still be on its way after its index command (see INDEX).
_INDEX_GRACE = 60
_INDEX_SKIPPED_FOR = _INDEX_GRACE / 2  # seconds after indexing a customer that its adds skip INDEX
_INDEXED_KEPT = 100_000  # customers remembered as indexed; past that the memory starts afresh

# KEYS: counter, events, leases[, index on a single Redis]; ARGV: value, limit ('' = none),
# packed event, identifier, customer. Cold: nil, nothing written. Else {1, total} or {0, total}.
ADD = """
local held = redis.call('GET', KEYS[1])
if not held then
  return false
end
if ARGV[2] ~= '' and tonumber(held) + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, held}
end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[3], 'NX', 0, ARGV[4])
if KEYS[4] then
  redis.call('ZADD', KEYS[4], redis.call('TIME')[1], ARGV[5])
end
return {1, total}
"""

# KEYS: counter; ARGV: total, expiry (unix ms). Set if cold; answers the counter, as a string.
SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""

# KEYS: the index; ARGV: customer. On a cluster, run BEFORE the ADD script: an event is never
# pending under a customer the index lacks, even if this process dies between the two. A member
# with nothing pending (its ADD was cold or denied, or its events were acked) is harmless: a
# claim finds nothing there and drops it once idle.
INDEX = """
redis.call('ZADD', KEYS[1], redis.call('TIME')[1], ARGV[1])
return 1
"""

# KEYS: the index; ARGV: customer, grace (s). Drops the customer if it has not queued an event
# for ``grace`` seconds. On a cluster its events live on another node, so "nothing pending there"
# and "drop it here" cannot be one atomic step; an adder indexes itself before it queues (or
# indexed itself less than half the grace ago), so the grace covers an adder between the two (a
# process stalled longer than that there leaves its event unindexed until the customer's next
# index command).
DROP = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(redis.call('TIME')[1]) - tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# KEYS: events, leases[, index on a single Redis]; ARGV: n, lease (ms), customer.
# Leases up to n events whose lease has ended (or that were never claimed): {pending, {packed...}}.
CLAIM = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local until_ = now + tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local found = {}
for _, id in ipairs(ids) do
  local packed = redis.call('HGET', KEYS[1], id)
  if packed then
    redis.call('ZADD', KEYS[2], until_, id)
    found[#found + 1] = packed
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
local pending = redis.call('HLEN', KEYS[1])
if pending == 0 and KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[3])
end
return {pending, found}
"""

# KEYS: events, leases[, index on a single Redis]; ARGV: customer, identifiers... Answers how
# many events of the customer are still pending.
ACK = """
for i = 2, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
local pending = redis.call('HLEN', KEYS[1])
if pending == 0 and KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return pending
"""


def pack(event: MeterEvent) -> bytes:
    """``event`` as stored in Redis: JSON ``[1, event_name, customer, value, identifier, timestamp]``."""
    fields = [PACKING, event.event_name, event.customer, event.value, event.identifier, event.timestamp]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def unpack(data: object) -> MeterEvent:
    """The event :func:`pack` made; ``ValueError`` saying why for anything else."""
    try:
        fields = json.loads(data) if isinstance(data, (bytes, str)) else None
    except ValueError:  # JSON or UTF-8
        fields = None
    if not isinstance(fields, list) or not fields or fields[0] != PACKING or type(fields[0]) is not int:
        raise ValueError(f"not a meter event packed by entitlegate (format {PACKING}): {_excerpt(data)}")
    shape = (int, str, str, int, str, int)
    if len(fields) != len(shape) or any(type(value) is not kind for value, kind in zip(fields, shape, strict=True)):
        raise ValueError(
            "a packed meter event must be [1, event_name, customer, value, identifier, timestamp], "
            f"got {_excerpt(data)}"
        )
    _, event_name, customer, value, identifier, timestamp = fields
    return MeterEvent(event_name, customer, value, identifier, timestamp)


def _excerpt(data: object) -> str:
    text = repr(data)
    return text if len(text) <= 80 else text[:77] + "..."


class RedisUsage:
    """The flows of RedisCache's usage store (run by :meth:`RedisCache.call` / :meth:`RedisCache.acall`).

    Keys follow ``commands``' namespace (the livemode and account a binding sets) and its hash
    tags. Each flow raises :class:`~entitlegate.CacheUnavailable`, naming the keys' prefix, when
    Redis does not answer (or an outage is remembered): a count is never guessed.
    """

    def __init__(self, commands: RedisCommands) -> None:
        self._commands = commands
        self._named = ("\0", "", "")  # (the commands' namespace, usage prefix, index key)
        # On a cluster: customer -> monotonic time until which its adds need not index it again.
        # Real time, not an injected clock: it stands for Redis's TIME, which the grace is measured in.
        self._indexed: dict[str, float] = {}

    @property
    def namespace(self) -> str:
        """The prefix of the usage keys: ``prefix:usage:livemode:account:``."""
        return self._names()[0]

    @property
    def index_key(self) -> str:
        """The key of the index of customers with pending events."""
        return self._names()[1]

    def _names(self) -> tuple[str, str]:
        named = self._named
        namespace = self._commands.namespace
        if named[0] is not namespace:
            prefix = self._commands.prefix
            tail = namespace[len(prefix) + 1 :]
            named = self._named = (namespace, f"{prefix}:usage:{tail}", f"{prefix}:usage-pending:{tail}")
            self._indexed = {}  # another index key
        return named[1], named[2]

    def _customer(self, customer: str) -> str:
        return self._names()[0] + ("{" + customer + "}" if self._commands.tagged else customer)

    def counter_key(self, customer: str, meter: str, period: int) -> str:
        """The key of the counter of ``customer`` on ``meter`` in the period starting at ``period``."""
        return f"{self._customer(customer)}:n:{period}:{meter}"

    def _down(self, what: str) -> CacheUnavailable:
        return CacheUnavailable(f"Redis is unavailable: {what} under {self.namespace!r} cannot be reached now")

    # -- the request path ---------------------------------------------------------------------

    def add(
        self, customer: str, meter: str, period: int, value: int, event: MeterEvent, limit: int | None
    ) -> Flow[tuple[bool, int] | None]:
        """ADD: count ``value`` and queue ``event`` atomically, unless cold or past ``limit``."""
        base = self._customer(customer)
        index = self.index_key
        keys = [f"{base}:n:{period}:{meter}", base + ":events", base + ":leases"]
        if self._commands.tagged:
            now = time.monotonic()
            indexed = self._indexed
            if indexed.get(customer, 0.0) <= now:
                reply = yield _script(index, INDEX, [index], [customer])
                if reply is DOWN:
                    raise self._down("the usage counters")
                if len(indexed) >= _INDEXED_KEPT:
                    indexed.clear()
                indexed[customer] = now + _INDEX_SKIPPED_FOR
        else:
            keys.append(index)
        args = [value, "" if limit is None else limit, pack(event), event.identifier, customer]
        reply = yield _script(keys[0], ADD, keys, args)
        if reply is DOWN:
            raise self._down("the usage counters")
        if reply is None:
            return None
        return bool(reply[0]), int(reply[1])

    def total(self, customer: str, meter: str, period: int) -> Flow[int | None]:
        """The counter, or None when it is cold."""
        key = self.counter_key(customer, meter, period)
        reply = yield Keyed(key, lambda connection: connection.redis.get(key))
        if reply is DOWN:
            raise self._down("the usage counters")
        return None if reply is None else int(reply)

    def seed(self, customer: str, meter: str, period: int, total: int) -> Flow[int]:
        """SEED: set the counter to ``total`` if it is cold; the counter."""
        key = self.counter_key(customer, meter, period)
        reply = yield _script(key, SEED, [key], [total, period * 1000 + _COUNTER_KEPT_MS])
        if reply is DOWN:
            raise self._down("the usage counters")
        return int(reply)

    # -- the flusher's ------------------------------------------------------------------------

    def claim(self, n: int, lease_seconds: float) -> Flow[list[MeterEvent]]:
        """Up to ``n`` pending events of any customers, each leased for ``lease_seconds``.

        A customer whose node does not answer is skipped (its events wait for a later claim);
        the index not answering raises, unless some events were claimed already.
        """
        lease_ms = max(math.ceil(lease_seconds * 1000), 1)
        index, tagged = self.index_key, self._commands.tagged
        claimed: list[MeterEvent] = []
        offset = 0
        while len(claimed) < n:
            members = yield _range(index, offset, offset + _INDEX_PAGE - 1)
            if members is DOWN:
                if claimed:
                    break
                raise self._down("the pending meter events")
            if not members:
                break
            offset += len(members)
            for member in members:
                customer = member.decode() if isinstance(member, bytes) else str(member)
                base = self._customer(customer)
                keys = [base + ":events", base + ":leases"] if tagged else [base + ":events", base + ":leases", index]
                reply = yield _script(keys[0], CLAIM, keys, [n - len(claimed), lease_ms, customer])
                if reply is DOWN:
                    continue
                pending, packed = reply
                for data in packed:
                    try:
                        claimed.append(unpack(data))
                    except ValueError as error:
                        raise ValueError(f"a pending meter event at {keys[0]!r}: {error}") from None
                if int(pending) == 0:
                    if tagged:
                        yield _script(index, DROP, [index], [customer, _INDEX_GRACE])
                    else:
                        offset -= 1  # the script dropped it from the index: the next page starts earlier
                if len(claimed) >= n:
                    break
            if len(members) < _INDEX_PAGE:
                break
        return claimed

    def ack(self, events: Iterable[MeterEvent]) -> Flow[None]:
        """ACK: forget ``events``; raises once every customer's have been tried if some could not be."""
        by_customer: dict[str, list[str]] = {}
        for event in events:
            by_customer.setdefault(event.customer, []).append(event.identifier)
        index, tagged = self.index_key, self._commands.tagged
        missed = 0
        for customer, identifiers in by_customer.items():
            base = self._customer(customer)
            keys = [base + ":events", base + ":leases"] if tagged else [base + ":events", base + ":leases", index]
            reply = yield _script(keys[0], ACK, keys, [customer, *identifiers])
            if reply is DOWN:
                missed += len(identifiers)
                continue
            if int(reply) == 0 and tagged:
                yield _script(index, DROP, [index], [customer, _INDEX_GRACE])  # unanswered: a later claim drops it
        if missed:
            raise CacheUnavailable(
                f"Redis is unavailable: {missed} meter event(s) under {self.namespace!r} could not be acked; they stay "
                "pending and are sent again (Stripe de-duplicates them by identifier)"
            )


def _script(key: str, source: str, keys: list[str], args: list[Any]) -> Keyed:
    """Run the script ``source``: EVALSHA, and EVAL where the node lacks it (which caches it there).

    Not redis-py's ``Script``, whose fallback is a SCRIPT LOAD that a cluster client sends to every
    master: with one master down, that would fail the script on all the others too.
    """
    sha = _SHAS[source]

    def send(connection: Connection) -> Any:
        client = connection.redis
        try:
            reply = client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(source, len(keys), *keys, *args)
        if inspect.isawaitable(reply):
            return _aeval(reply, client, source, keys, args)
        return reply

    return Keyed(key, send)


async def _aeval(sent: Awaitable[Any], client: Any, source: str, keys: list[str], args: list[Any]) -> Any:
    try:
        return await sent
    except NoScriptError:
        return await client.eval(source, len(keys), *keys, *args)


_SHAS = {source: hashlib.sha1(source.encode()).hexdigest() for source in (ADD, SEED, INDEX, DROP, CLAIM, ACK)}


def _range(key: str, start: int, stop: int) -> Keyed:
    return Keyed(key, lambda connection: connection.redis.zrange(key, start, stop))
