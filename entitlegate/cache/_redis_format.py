"""How an entry is kept in Redis: its bytes, and the Lua scripts that compare versions on them.

A value is one byte of format, three big-endian doubles (the version, and the wall-clock times the
entry expires and may be served stale until) and the lookup_keys, sorted and joined by newlines:
``\\x01 <version> <expires> <stale_until> key\\nkey...``. Doubles keep Stripe and fetch times exact,
so the scripts compare exactly what :func:`~entitlegate.cache._base.supersedes` compares; they
are 24 bytes where decimal text takes 44, which keeps a customer with five features under 200
bytes of Redis memory. A lookup_key holding a newline or ``%`` is percent-escaped.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterable

__all__ = ["FORMAT", "INVALIDATE", "LEASE", "PUT", "RELEASE", "decode", "encode", "pack_version"]

FORMAT = 1
_HEADER = struct.Struct(">Bddd")
_VERSION = struct.Struct(">d")


def encode(features: Iterable[str], version: float, expires: float, stale_until: float) -> bytes:
    """The stored bytes of a set versioned ``version``; ``expires``/``stale_until`` are epoch seconds."""
    keys = sorted(_escape(key) if ("\n" in key or "%" in key) else key for key in features)
    return _HEADER.pack(FORMAT, version, expires, stale_until) + "\n".join(keys).encode()


def decode(data: bytes) -> tuple[frozenset[str], float, float, float] | None:
    """``(features, version, expires, stale_until)`` from stored bytes, or None if not ours."""
    if len(data) < _HEADER.size or data[0] != FORMAT:
        return None
    _, version, expires, stale_until = _HEADER.unpack_from(data)
    body = data[_HEADER.size :].decode()
    if not body:
        return frozenset(), version, expires, stale_until
    keys = body.split("\n")
    if "%" in body:
        keys = [_unescape(key) for key in keys]
    # Interned, as the resolver does: customers holding a feature share one copy of its key.
    return frozenset(map(sys.intern, keys)), version, expires, stale_until


def pack_version(version: float) -> bytes:
    """A version as the scripts read it: the same double, byte for byte."""
    return _VERSION.pack(version)


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("\n", "%0A")


def _unescape(key: str) -> str:
    return key.replace("%0A", "\n").replace("%25", "%")


# Offsets (Lua strings count from 1): format at 1, version at 2, expires at 10, stale_until at 18,
# lookup_keys from 26. A value of another format is treated as absent.
_LUA_READ = f"""
local FORMAT = {FORMAT}
local function ours(value) return value and string.byte(value, 1) == FORMAT end
local function version_of(value) return (struct.unpack('>d', value, 2)) end
"""

# KEYS[1] entry. ARGV: value, "1" for an event (else a fetch), key TTL in ms (0: none), channel.
# Returns 1 when stored, else the held value (which is newer).
PUT = (
    _LUA_READ
    + """
local value, event = ARGV[1], ARGV[2] == '1'
local version = version_of(value)
local current = redis.call('GET', KEYS[1])
if not ours(current) then current = nil end
if current then
  -- Which write wins: the rule of entitlegate.cache._base.supersedes, kept in step with it (a
  -- property test checks they agree). Stripe's `created` has one-second resolution, so an event
  -- is older only when it falls before the second the held version lies in (a tie applies it);
  -- other writes compare exactly. An event's version is the end of its second and a fetch's the
  -- moment it started less the clock skew, so a fetch never overwrites an event it may predate.
  local held = version_of(current)
  if event then
    if version < math.floor(held) then return current end
  elseif version < held then
    return current
  end
end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], value) else redis.call('SET', KEYS[1], value, 'PX', ARGV[3]) end
-- Other processes drop their local copies: always after a webhook, and after a fetch that found
-- a different set than the one held (a refetch of a truncated event, or a missed webhook).
if event or (current and string.sub(current, 26) ~= string.sub(value, 26)) then
  redis.call('PUBLISH', ARGV[4], KEYS[1])
end
return 1
"""
)

# KEYS[1] entry. ARGV: packed version, minimum key TTL in ms, channel, "1" when access may have
# ended. Returns the stored value. The rule of entitlegate.cache._base.invalidated: never fresh,
# the old set kept for outages (none of it when access ended), and a version at least the old
# one, so an invalidation is never stale.
INVALIDATE = (
    _LUA_READ
    + """
local version = struct.unpack('>d', ARGV[1])
local ttl = tonumber(ARGV[2])
local ended = ARGV[4] == '1'
local current = redis.call('GET', KEYS[1])
local value
if ours(current) then
  local held = version_of(current)
  local stale_until, keys = struct.unpack('>d', current, 18), string.sub(current, 26)
  if ended then stale_until, keys = -math.huge, '' end
  value = string.char(FORMAT) .. struct.pack('>ddd', math.max(version, held), -math.huge, stale_until) .. keys
  local left = redis.call('PTTL', KEYS[1])
  if left == -1 then ttl = 0 else ttl = math.max(ttl, left) end  -- -1: a key kept for ever stays so
else
  value = string.char(FORMAT) .. struct.pack('>ddd', version, -math.huge, -math.huge)
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
