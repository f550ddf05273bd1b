"""MemoryCache: bounded, thread-safe, newest write wins; the supersedes rule under hypothesis."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entitlegate import Entry, MemoryCache
from entitlegate.cache import supersedes


def entry(version: float, *keys: str) -> Entry:
    return Entry(frozenset(keys), version, math.inf, math.inf)


def test_peek_reads_what_put_stored() -> None:
    cache = MemoryCache()
    assert cache.put("cus_1", entry(10, "a"), event=False)
    assert cache.peek("cus_1") == entry(10, "a")
    assert cache.get("cus_1") == entry(10, "a")


def test_an_older_fetch_does_not_overwrite_a_newer_one() -> None:
    cache = MemoryCache()
    cache.put("cus_1", entry(10.7, "new"), event=False)
    assert not cache.put("cus_1", entry(10.2, "old"), event=False)
    assert cache.peek("cus_1") == entry(10.7, "new")


def test_an_event_in_the_same_second_as_the_entry_applies() -> None:
    cache = MemoryCache()
    cache.put("cus_1", entry(10.7, "fetched"), event=False)
    assert cache.put("cus_1", entry(10, "event"), event=True)


def test_invalidate_keeps_the_set_but_makes_the_entry_unfresh() -> None:
    cache = MemoryCache()
    cache.put("cus_1", Entry(frozenset({"a"}), 10, 100, 1000), event=False)
    cache.invalidate("cus_1", 20)
    held = cache.peek("cus_1")
    assert held is not None
    assert (held.features, held.version, held.expires, held.stale_until) == ({"a"}, 20, -math.inf, 1000)


def test_invalidating_an_unknown_customer_leaves_nothing_to_serve() -> None:
    cache = MemoryCache()
    cache.invalidate("cus_1", 20)
    held = cache.peek("cus_1")
    assert held is not None
    assert held.stale_until == -math.inf


def test_a_full_cache_evicts_the_least_recently_written_customer() -> None:
    cache = MemoryCache(maxsize=3)
    for customer in ("a", "b", "c"):
        cache.put(customer, entry(1), event=False)
    cache.put("a", entry(2), event=False)  # rewritten: now the newest
    cache.put("d", entry(1), event=False)
    assert cache.peek("b") is None
    assert {c for c in "acd" if cache.peek(c) is not None} == {"a", "c", "d"}
    assert len(cache) == 3


def test_concurrent_writers_never_leave_an_older_version_behind() -> None:
    cache = MemoryCache()
    versions = list(range(2000))

    def write(part: list[int]) -> None:
        for version in part:
            cache.put("cus_1", entry(version + 0.5, str(version)), event=False)

    threads = [threading.Thread(target=write, args=(versions[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.peek("cus_1") == entry(1999.5, "1999")


@pytest.mark.parametrize("maxsize", [0, -1, 1.5, True, "10"])
def test_a_bad_maxsize_is_a_value_error(maxsize: object) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        MemoryCache(maxsize)  # type: ignore[arg-type]


def test_clear_drops_everything() -> None:
    cache = MemoryCache()
    cache.put("cus_1", entry(1), event=False)
    cache.clear()
    assert cache.peek("cus_1") is None
    assert len(cache) == 0


_versions = st.floats(min_value=0, max_value=2e9, allow_nan=False)


@given(versions=st.lists(st.tuples(_versions, st.booleans()), min_size=1, max_size=30))
def test_the_newest_write_wins_whatever_the_order(versions: list[tuple[float, bool]]) -> None:
    cache = MemoryCache()
    for version, event in versions:
        cache.put("cus_1", entry(version), event=event)
    held = cache.peek("cus_1")
    assert held is not None
    # Nothing that arrived after the held entry was newer than it (by the supersedes rule).
    landed = max(i for i, (v, _) in enumerate(versions) if v == held.version)
    for version, event in versions[landed + 1 :]:
        assert not supersedes(version, held, event=event) or version == held.version


@given(created=st.integers(0, 2**40), fetched=_versions)
def test_an_event_is_stale_only_before_the_second_of_the_entry(created: int, fetched: float) -> None:
    held = entry(fetched)
    assert supersedes(float(created), held, event=True) == (created >= math.floor(fetched))
