"""How an entry is kept in Redis: its bytes, and the Lua scripts that compare stamps on them.

A value is one byte of format, four big-endian doubles (the version, the wall-clock times the
entry expires and may be served stale until, and ``as_of``) and the lookup_keys, sorted and joined
by newlines: ``\\x02 <version> <expires> <stale_until> <as_of> key\\nkey...``. Doubles keep Stripe
and host times exact, so the scripts compare exactly what
:func:`~entitlegate.cache._base.supersedes` compares; they are 32 bytes where decimal text takes
58, which keeps a customer with five features under 200 bytes of Redis memory. A lookup_key
holding a newline or ``%`` is percent-escaped. A value of another format (format 1 had no
``as_of``) reads as absent: after an upgrade, each customer is fetched once.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterable

from entitlegate.cache._base import Entry

__all__ = ["FORMAT", "INVALIDATE", "LEASE", "PUT", "RELEASE", "decode", "dump", "encode", "load", "pack_version"]

FORMAT = 2
_HEADER = struct.Struct(">Bdddd")
_VERSION = struct.Struct(">d")


def encode(features: Iterable[str], version: float, expires: float, stale_until: float, as_of: float) -> bytes:
    """The stored bytes of a set stamped ``version``/``as_of``; ``expires``/``stale_until`` are epoch seconds."""
    keys = sorted(_escape(key) if ("\n" in key or "%" in key) else key for key in features)
    return _HEADER.pack(FORMAT, version, expires, stale_until, as_of) + "\n".join(keys).encode()


def decode(data: bytes) -> tuple[frozenset[str], float, float, float, float] | None:
    """``(features, version, expires, stale_until, as_of)`` from stored bytes, or None if not ours."""
    if len(data) < _HEADER.size or data[0] != FORMAT:
        return None
    _, version, expires, stale_until, as_of = _HEADER.unpack_from(data)
    body = data[_HEADER.size :].decode()
    if not body:
        return frozenset(), version, expires, stale_until, as_of
    keys = body.split("\n")
    if "%" in body:
        keys = [_unescape(key) for key in keys]
    # Interned, as the resolver does: customers holding a feature share one copy of its key.
    return frozenset(map(sys.intern, keys)), version, expires, stale_until, as_of


def dump(entry: Entry, offset: float) -> bytes:
    """The stored bytes of ``entry``; ``offset`` (wall clock less monotonic) makes its times epoch seconds.

    Redis is shared by machines: monotonic readings mean nothing there, so it keeps epoch times.
    """
    return encode(entry.features, entry.version, entry.expires + offset, entry.stale_until + offset, entry.as_of)


def load(data: object, offset: float) -> Entry | None:
    """The entry in ``data`` read from Redis, or None if it is none of ours; the inverse of :func:`dump`."""
    decoded = decode(data) if isinstance(data, bytes) else None
    if decoded is None:
        return None
    features, version, expires, stale_until, as_of = decoded
    return Entry(features, version, expires - offset, stale_until - offset, as_of)


def pack_version(version: float) -> bytes:
    """A version (or an ``as_of``) as the scripts read it: the same double, byte for byte."""
    return _VERSION.pack(version)


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("\n", "%0A")


def _unescape(key: str) -> str:
    return key.replace("%0A", "\n").replace("%25", "%")


# Offsets (Lua strings count from 1): format at 1, version at 2, expires at 10, stale_until at 18,
# as_of at 26, lookup_keys from 34. A value of another format is treated as absent.
_LUA_READ = f"""
local FORMAT = {FORMAT}
local KEYS_AT = {_HEADER.size + 1}
local function ours(value) return value and string.byte(value, 1) == FORMAT end
local function version_of(value) return (struct.unpack('>d', value, 2)) end
local function as_of_of(value) return (struct.unpack('>d', value, 26)) end
"""

# KEYS[1] entry. ARGV: value, "1" for an event (else a fetch), key TTL in ms (0: none), channel.
# Returns 1 when stored as given, {1, stored value} when stored with a held stamp kept, else the
# held value (which is newer).
PUT = (
    _LUA_READ
    + """
local value, event = ARGV[1], ARGV[2] == '1'
local current = redis.call('GET', KEYS[1])
if not ours(current) then current = nil end
local kept = false
if current then
  -- Which write wins, and the stamps it keeps: the rule of entitlegate.cache._base.replacement,
  -- kept in step with it (a property test checks they agree). An event is older only when its
  -- version falls before the second the held version lies in (Stripe's `created` is whole
  -- seconds: a tie applies it). A fetch is older when it started (as_of, host time) before the
  -- held entry was learnt: before a webhook was received or an invalidation happened.
  local version, as_of = version_of(value), as_of_of(value)
  local held, held_as_of = version_of(current), as_of_of(current)
  if event then
    if version < math.floor(held) then return current end
    if as_of < held_as_of then
      value = string.sub(value, 1, 25) .. struct.pack('>d', held_as_of) .. string.sub(value, KEYS_AT)
      kept = true
    end
  else
    if as_of < held_as_of then return current end
    if version < held then
      value = string.sub(value, 1, 1) .. struct.pack('>d', held) .. string.sub(value, 10)
      kept = true
    end
  end
end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], value) else redis.call('SET', KEYS[1], value, 'PX', ARGV[3]) end
-- Other processes drop their local copies: always after a webhook, and after a fetch that found
-- a different set than the one held (a refetch of a truncated event, or a missed webhook).
if event or (current and string.sub(current, KEYS_AT) ~= string.sub(value, KEYS_AT)) then
  redis.call('PUBLISH', ARGV[4], KEYS[1])
end
if kept then return {1, value} end
return 1
"""
)

# KEYS[1] entry. ARGV: packed version, minimum key TTL in ms, channel, "1" when access may have
# ended, packed as_of. Returns the stored value. The rule of entitlegate.cache._base.invalidated:
# never fresh, the old set kept for outages (none of it when access ended), and stamps at least
# the old ones, so an invalidation is never stale.
INVALIDATE = (
    _LUA_READ
    + """
local version, as_of = struct.unpack('>d', ARGV[1]), struct.unpack('>d', ARGV[5])
local ttl = tonumber(ARGV[2])
local ended = ARGV[4] == '1'
local current = redis.call('GET', KEYS[1])
local value
if ours(current) then
  local stale_until, keys = struct.unpack('>d', current, 18), string.sub(current, KEYS_AT)
  if ended then stale_until, keys = -math.huge, '' end
  version, as_of = math.max(version, version_of(current)), math.max(as_of, as_of_of(current))
  value = string.char(FORMAT) .. struct.pack('>dddd', version, -math.huge, stale_until, as_of) .. keys
  local left = redis.call('PTTL', KEYS[1])
  if left == -1 then ttl = 0 else ttl = math.max(ttl, left) end  -- -1: a key kept for ever stays so
else
  value = string.char(FORMAT) .. struct.pack('>dddd', version, -math.huge, -math.huge, as_of)
end
if ttl == 0 then redis.call('SET', KEYS[1], value) else redis.call('SET', KEYS[1], value, 'PX', ttl) end
redis.call('PUBLISH', ARGV[3], KEYS[1])
return value
"""
)

# KEYS[1] entry, KEYS[2] lease. ARGV: token, lease TTL in ms, now (epoch seconds).
# Returns the entry's value when it is fresh, 1 when this caller now holds the lease, else 0.
LEASE = (
    _LUA_READ
    + """
local value = redis.call('GET', KEYS[1])
if ours(value) and struct.unpack('>d', value, 10) > tonumber(ARGV[3]) then return value end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
)

# KEYS[1] lease. ARGV: token. Lets the lease go only if this caller still holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

NEVER = -math.inf
