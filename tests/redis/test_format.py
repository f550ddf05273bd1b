"""How an entry is stored in Redis: exact, compact, and safe for any lookup_key."""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from entitlegate.cache import _redis_format as stored

lookup_keys = st.frozensets(st.text(min_size=1, max_size=30), max_size=12)
times = st.floats(allow_nan=False, min_value=-1e12, max_value=1e12) | st.just(-math.inf) | st.just(math.inf)


stamps = st.floats(allow_nan=False, allow_infinity=False)


@given(lookup_keys, stamps, times, times, stamps)
def test_an_entry_decodes_to_exactly_what_was_encoded(
    features: frozenset[str], version: float, expires: float, stale: float, as_of: float
) -> None:
    encoded = stored.encode(features, version, expires, stale, as_of)
    assert stored.decode(encoded) == (features, version, expires, stale, as_of)


def test_lookup_keys_with_newlines_or_percent_signs_survive() -> None:
    features = frozenset({"a\nb", "100%", "%0A", "plain"})
    decoded = stored.decode(stored.encode(features, 1.0, 2.0, 3.0, 4.0))
    assert decoded is not None
    assert decoded[0] == features


def test_an_empty_set_is_stored_as_a_header_alone() -> None:
    data = stored.encode(frozenset(), 1.5, 2.5, 3.5, 4.5)
    assert len(data) == 33
    assert stored.decode(data) == (frozenset(), 1.5, 2.5, 3.5, 4.5)


def test_a_value_of_another_format_reads_as_absent() -> None:
    assert stored.decode(b"") is None
    assert stored.decode(b'{"features": ["a"]}') is None
    assert stored.decode(b"\x03" + stored.encode({"a"}, 1, 2, 3, 4)[1:]) is None
    # Format 1, before as_of: a version and two times, then the lookup_keys.
    assert stored.decode(b"\x01" + struct.pack(">ddd", 1, 2, 3) + b"a") is None


def test_the_same_set_always_encodes_to_the_same_bytes() -> None:
    # The put script compares the stored lookup_keys byte for byte to decide whether to publish.
    assert stored.encode({"b", "a", "c"}, 1, 2, 3, 4) == stored.encode(["c", "a", "b"], 1, 2, 3, 4)
