"""The account's Features, and the limits their metadata carries, kept fresh like entitlements.

A Stripe Feature (``entitlements.feature``) may carry numbers in its ``metadata``:
``{"seats": "10"}``. A customer's limit ``name`` is the highest ``metadata[name]`` over the
features the customer holds: a whole number >= 0, or ``"unlimited"`` (``math.inf``). Anything
else is ignored for limits and kept as a finding for ``python -m entitlegate check``.

The summary webhook names features by lookup_key and id only, so the numbers come from a small
catalog of the account's features (``GET /v1/entitlements/features``, active and archived),
fetched once per ``ttl`` and again when a customer holds a lookup_key it does not know. Limits
depend only on a customer's *set* of lookup_keys, and most customers share a handful of plan
sets: each catalog memoises the limits of every set it has been asked about, so a cached
customer's limit is two dict lookups.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from entitlegate._fork import reset_after_fork
from entitlegate.errors import SourceUnavailable

__all__ = [
    "NOT_CARRIED",
    "NO_CATALOG",
    "UNLIMITED",
    "Catalog",
    "CatalogSnapshot",
    "CatalogSource",
    "CatalogStore",
    "Feature",
    "Finding",
    "Limit",
    "audit",
    "parse_limit",
]

logger = logging.getLogger("entitlegate")

Limit = int | float  # a whole number, or math.inf for "unlimited"
UNLIMITED = "unlimited"

_WHOLE = re.compile(r"[0-9]+")
# What a person who meant a number might have written instead: "10.5", "-1", "1,000", " 5", "Unlimited".
_NUMBERISH = re.compile(r"\s*[-+]?[0-9][0-9.,_\s]*(?:[eE][-+]?[0-9]+)?\s*")
_INFINITY_WORDS = ("unlimited", "infinite", "infinity", "inf", "none", "no limit")
NOT_CARRIED: Limit = -1  # in a snapshot's memo: no feature of the set carries the limit (limits are >= 0)
_MEMO_MAX = 4096  # distinct plan sets a catalog remembers the limits of (a plan set is a handful of keys)


def parse_limit(value: object) -> Limit | None:
    """A metadata value as a limit: ``"10"`` → 10, ``"unlimited"`` → ``math.inf``; None if neither."""
    if not isinstance(value, str):
        return None
    if value == UNLIMITED:
        return math.inf
    if _WHOLE.fullmatch(value):
        return int(value)
    return None


def _looks_like_a_limit(value: str) -> bool:
    """Whether a value that is not a limit was probably meant as one (a finding, not just a note)."""
    if _NUMBERISH.fullmatch(value):
        return True
    word = value.strip().lower()
    return bool(word) and any(
        difflib.SequenceMatcher(None, word, infinity).ratio() >= 0.8 for infinity in _INFINITY_WORDS
    )


@dataclass(frozen=True, slots=True)
class Feature:
    """One Stripe Feature: its id, lookup_key, name, whether it is active, and its metadata.

    ``limits`` holds the metadata values that are limits; ``malformed`` the ones that look meant
    as a number but are not a whole number >= 0 or ``"unlimited"`` (ignored for limits).
    """

    id: str
    lookup_key: str
    name: str = ""
    active: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    limits: Mapping[str, Limit] = field(init=False, repr=False, compare=False)
    malformed: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"a feature id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.lookup_key, str) or not self.lookup_key.strip():
            raise ValueError(f"feature {self.id}: lookup_key must be a non-blank string, got {self.lookup_key!r}")
        metadata = {str(key): value for key, value in dict(self.metadata).items() if isinstance(value, str)}
        limits: dict[str, Limit] = {}
        malformed: dict[str, str] = {}
        for key, value in metadata.items():
            if not key.strip():
                continue
            number = parse_limit(value)
            if number is not None:
                limits[key] = number
            elif _looks_like_a_limit(value):
                malformed[key] = value
        object.__setattr__(self, "metadata", MappingProxyType(metadata))
        object.__setattr__(self, "limits", MappingProxyType(limits))
        object.__setattr__(self, "malformed", MappingProxyType(malformed))

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> Feature:
        """A Feature from Stripe's JSON object (a ``to_dict()`` of the SDK's ``Feature``)."""
        metadata = data.get("metadata") or {}
        return cls(
            id=data["id"],
            lookup_key=data["lookup_key"],
            name=data.get("name") or "",
            active=bool(data.get("active", True)),
            metadata={key: value for key, value in dict(metadata).items() if isinstance(value, str)},
        )


@runtime_checkable
class CatalogSource(Protocol):
    """A source that can list the account's features (active and archived), sync and async.

    Both raise :class:`~entitlegate.SourceUnavailable` when they cannot answer.
    """

    def list_features(self) -> tuple[Feature, ...]:
        """Every feature of the account, active and archived."""
        ...

    async def alist_features(self) -> tuple[Feature, ...]:
        """Async twin of :meth:`list_features`; must not block the event loop."""
        ...


@runtime_checkable
class CatalogStore(Protocol):
    """Where catalogs of several processes share what one of them fetched (e.g. Redis).

    ``load`` returns the features and the wall-clock time (epoch seconds) they were fetched at,
    or None; ``save`` keeps them unless the stored ones were fetched later. Both may raise: a
    failing store is logged and the catalog asks the source itself.
    """

    def load(self) -> tuple[tuple[Feature, ...], float] | None: ...

    def save(self, features: tuple[Feature, ...], fetched_at: float) -> None: ...

    async def aload(self) -> tuple[tuple[Feature, ...], float] | None: ...

    async def asave(self, features: tuple[Feature, ...], fetched_at: float) -> None: ...


@runtime_checkable
class CatalogStoring(Protocol):
    """A cache that can share the catalog too (RedisCache): the Resolver gives its catalog that store."""

    def catalog_store(self, keep: float) -> CatalogStore:
        """A store that keeps a shared catalog for ``keep`` seconds."""
        ...


class CatalogSnapshot:
    """The catalog as fetched once: features by lookup_key and by id, and a memo of plan limits.

    ``expires`` and ``stale_until`` are readings of the catalog's monotonic clock. The memo maps
    a customer's set of lookup_keys to its limits; it belongs to this snapshot, so a new catalog
    starts with an empty one. Thread-safe: the memo's writes are single dict stores.
    """

    __slots__ = ("by_id", "by_key", "expires", "features", "fetched_at", "limit_names", "memo", "stale_until", "views")

    def __init__(self, features: Iterable[Feature], fetched_at: float, expires: float, stale_until: float) -> None:
        self.features = tuple(features)
        by_key: dict[str, Feature] = {}
        for feature in self.features:
            # Lookup_keys are unique per account; should an archived copy share one with an active
            # feature, the active one is the one customers can hold.
            if feature.lookup_key not in by_key or feature.active:
                by_key[feature.lookup_key] = feature
        self.by_key: Mapping[str, Feature] = by_key
        self.by_id: Mapping[str, Feature] = {feature.id: feature for feature in self.features}
        self.fetched_at = fetched_at
        self.expires = expires
        self.stale_until = stale_until
        self.limit_names = frozenset(name for feature in self.features for name in feature.limits)
        # memo: set -> every limit name of the catalog, NOT_CARRIED where none of the set's
        # features carries it, so a hit is two subscripts (see Resolver.limit); views: the same
        # without NOT_CARRIED, read-only, for Resolver.limits.
        self.memo: dict[frozenset[str], dict[str, Limit]] = {}
        self.views: dict[frozenset[str], Mapping[str, Limit]] = {}

    def knows(self, lookup_keys: Iterable[str]) -> bool:
        """Whether every one of ``lookup_keys`` is a feature of this catalog."""
        return all(key in self.by_key for key in lookup_keys)

    def limits_of(self, lookup_keys: frozenset[str]) -> Mapping[str, Limit]:
        """The highest value of each limit over the features ``lookup_keys`` name (read-only), memoised."""
        view = self.views.get(lookup_keys)
        if view is None:
            limits: dict[str, Limit] = dict.fromkeys(self.limit_names, NOT_CARRIED)
            for key in lookup_keys:
                feature = self.by_key.get(key)
                if feature is None:
                    continue
                for name, value in feature.limits.items():
                    if value > limits[name]:
                        limits[name] = value
            view = MappingProxyType({name: value for name, value in limits.items() if value is not NOT_CARRIED})
            if len(self.memo) >= _MEMO_MAX:
                # An account with this many plan sets pays a recomputation now and then.
                self.memo.clear()
                self.views.clear()
            self.views[lookup_keys] = view
            self.memo[lookup_keys] = limits
        return view


#: The snapshot of a catalog never read: never fresh, never servable.
NO_CATALOG = CatalogSnapshot((), -math.inf, -math.inf, -math.inf)


class _Flight:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class Catalog:
    """The account's features from ``source``, cached for ``ttl`` seconds, served stale in an outage.

    A refresh happens when the catalog is older than ``ttl``, or when it is asked about a
    lookup_key (or told of a feature id, :meth:`notice`) it does not know, at most once per
    ``refresh_interval`` seconds for the latter (and, in an outage, for retries: the stale
    catalog is served in between). Concurrent refreshes make one source call,
    across threads and across the tasks of an event loop; with a ``store``, processes share what
    one of them fetched. When the source fails, a catalog younger than ``stale_ttl`` is served;
    with none, :class:`~entitlegate.SourceUnavailable` is raised. Thread-safe.
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        ttl: float = 300.0,
        stale_ttl: float = 86400.0,
        refresh_interval: float = 10.0,
        store: CatalogStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(source, CatalogSource):
            raise TypeError(f"Catalog source must have list_features() and alist_features(), got {source!r}")
        for name, value in (("ttl", ttl), ("stale_ttl", stale_ttl), ("refresh_interval", refresh_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Catalog {name} must be a number of seconds >= 0, got {value!r}")
        if stale_ttl < ttl:
            raise ValueError(f"Catalog stale_ttl ({stale_ttl!r}) must be at least ttl ({ttl!r})")
        self.source = source
        self.store = store
        self.ttl = float(ttl)
        self.stale_ttl = float(stale_ttl)
        self.refresh_interval = float(refresh_interval)
        self._clock = clock
        self._wall_clock = wall_clock
        #: The snapshot in use, or None before the first fetch. Read without a lock (hot path).
        self.current: CatalogSnapshot = NO_CATALOG
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._aflights: dict[asyncio.AbstractEventLoop, asyncio.Task[CatalogSnapshot]] = {}
        self._last_attempt = -math.inf
        self.fetches = 0  # source calls made, for tests and stats
        self._followers: list[weakref.WeakMethod[Callable[[CatalogSnapshot], None]]] = []
        reset_after_fork(self._after_fork)

    def _after_fork(self) -> None:
        # A refresh a parent's thread had in flight never lands in the child: forget it and its lock.
        self._lock = threading.Lock()
        self._flight = None
        self._aflights = {}

    def __repr__(self) -> str:
        size = "never read" if self.current is NO_CATALOG else f"{len(self.current.features)} features"
        return f"Catalog({self.source!r}, {size}, ttl={self.ttl})"

    # -- decisions both twins share --------------------------------------------------------------

    def _usable(self, lookup_keys: frozenset[str] | None) -> CatalogSnapshot | None:
        """The current snapshot if it may answer without a refresh; None when one is due."""
        snapshot = self.current
        now = self._clock()
        if snapshot.expires <= now:
            if snapshot.stale_until > now and not self._may_refresh():
                return snapshot  # a refresh failed moments ago: the stale catalog, without asking again
            return None
        if lookup_keys is not None and lookup_keys not in snapshot.memo and not snapshot.knows(lookup_keys):
            return None if self._may_refresh() else snapshot
        return snapshot

    def _may_refresh(self) -> bool:
        # Never less often than the ttl asks for, however long the interval.
        return self._clock() - self._last_attempt >= min(self.refresh_interval, self.ttl)

    def _snapshot_of(self, features: Iterable[Feature], fetched_at: float) -> CatalogSnapshot:
        now = self._clock()
        age = max(0.0, self._wall_clock() - fetched_at)
        return CatalogSnapshot(features, fetched_at, now + self.ttl - age, now + self.stale_ttl - age)

    def _adopt(self, snapshot: CatalogSnapshot) -> CatalogSnapshot:
        with self._lock:
            current = self.current
            if snapshot.fetched_at < current.fetched_at:
                return current
            self.current = snapshot
            followers = [follower() for follower in self._followers]
            self._followers = [
                ref for ref, follower in zip(self._followers, followers, strict=True) if follower is not None
            ]
        for follower in followers:
            if follower is not None:
                follower(snapshot)
        return snapshot

    def follow(self, adopt: Callable[[CatalogSnapshot], None]) -> None:
        """Call the bound method ``adopt`` with every new snapshot (held weakly; no I/O in it, please).

        A :class:`~entitlegate.Resolver` follows its catalog so that a limit hit reads the
        current snapshot from itself, in one attribute.
        """
        with self._lock:
            self._followers.append(weakref.WeakMethod(adopt))

    def _stored_is_fresh(self, stored: tuple[tuple[Feature, ...], float] | None) -> bool:
        if stored is None:
            return False
        current = self.current
        newer = stored[1] > current.fetched_at
        return newer and self._wall_clock() - stored[1] < self.ttl

    def _fallback(self, error: SourceUnavailable) -> CatalogSnapshot:
        current = self.current
        if current.stale_until > self._clock():
            return current
        raise error

    def _failed(self, error: Exception) -> SourceUnavailable:
        if isinstance(error, SourceUnavailable):
            return error
        logger.error("entitlegate catalog source %r failed", self.source, exc_info=error)
        failure = SourceUnavailable(f"the feature catalog could not be read: {type(error).__name__}")
        failure.__cause__ = error
        return failure

    # -- sync ------------------------------------------------------------------------------------

    def snapshot(self, lookup_keys: frozenset[str] | None = None) -> CatalogSnapshot:
        """A catalog that may answer now, refreshing it first when it is due.

        ``lookup_keys`` (a customer's set) makes a catalog that does not know one of them due.
        Raises :class:`~entitlegate.SourceUnavailable` when a refresh fails and no catalog
        younger than ``stale_ttl`` exists.
        """
        snapshot = self._usable(lookup_keys)
        if snapshot is not None:
            return snapshot
        try:
            return self._coalesced_refresh()
        except SourceUnavailable as error:
            return self._fallback(error)

    def limits_for(self, lookup_keys: frozenset[str]) -> Mapping[str, Limit]:
        """The limits of a customer holding ``lookup_keys`` (read-only). Raises as :meth:`snapshot`."""
        return self.snapshot(lookup_keys).limits_of(lookup_keys)

    def refresh(self) -> CatalogSnapshot:
        """Ask the source now (coalesced with a refresh in flight). Raises ``SourceUnavailable``."""
        return self._coalesced_refresh()

    def _coalesced_refresh(self) -> CatalogSnapshot:
        with self._lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
                self._last_attempt = self._clock()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return self.current
        try:
            return self._refresh_once()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()

    def _refresh_once(self) -> CatalogSnapshot:
        if self.store is not None:
            try:
                stored = self.store.load()
            except Exception:
                logger.warning("entitlegate catalog store %r could not be read", self.store, exc_info=True)
                stored = None
            if stored is not None and self._stored_is_fresh(stored):
                return self._adopt(self._snapshot_of(*stored))
        fetched_at = self._wall_clock()
        self.fetches += 1
        try:
            features = tuple(self.source.list_features())
        except Exception as error:
            failure = self._failed(error)
        else:
            if self.store is not None:
                try:
                    self.store.save(features, fetched_at)
                except Exception:
                    logger.warning("entitlegate catalog store %r could not be written", self.store, exc_info=True)
            return self._adopt(self._snapshot_of(features, fetched_at))
        raise failure

    # -- async -----------------------------------------------------------------------------------

    async def asnapshot(self, lookup_keys: frozenset[str] | None = None) -> CatalogSnapshot:
        """Async twin of :meth:`snapshot`."""
        snapshot = self._usable(lookup_keys)
        if snapshot is not None:
            return snapshot
        try:
            return await self._acoalesced_refresh()
        except SourceUnavailable as error:
            return self._fallback(error)

    async def alimits_for(self, lookup_keys: frozenset[str]) -> Mapping[str, Limit]:
        """Async twin of :meth:`limits_for`."""
        return (await self.asnapshot(lookup_keys)).limits_of(lookup_keys)

    async def arefresh(self) -> CatalogSnapshot:
        """Async twin of :meth:`refresh`."""
        return await self._acoalesced_refresh()

    async def _acoalesced_refresh(self) -> CatalogSnapshot:
        loop = asyncio.get_running_loop()
        with self._lock:
            flight = self._aflights.get(loop)
            if flight is None:
                self._last_attempt = self._clock()
                # A task of its own, so a caller that is cancelled does not cancel it for the rest.
                flight = self._aflights[loop] = loop.create_task(self._arefresh_once())
                flight.add_done_callback(lambda task: self._land(loop, task))
        return await asyncio.shield(flight)

    def _land(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[CatalogSnapshot]) -> None:
        with self._lock:
            if self._aflights.get(loop) is task:
                del self._aflights[loop]
        if not task.cancelled():
            task.exception()  # retrieved, so a refresh every caller left is not reported as lost

    async def _arefresh_once(self) -> CatalogSnapshot:
        if self.store is not None:
            try:
                stored = await self.store.aload()
            except Exception:
                logger.warning("entitlegate catalog store %r could not be read", self.store, exc_info=True)
                stored = None
            if stored is not None and self._stored_is_fresh(stored):
                return self._adopt(self._snapshot_of(*stored))
        fetched_at = self._wall_clock()
        self.fetches += 1
        try:
            features = tuple(await self.source.alist_features())
        except Exception as error:
            failure = self._failed(error)
        else:
            if self.store is not None:
                try:
                    await self.store.asave(features, fetched_at)
                except Exception:
                    logger.warning("entitlegate catalog store %r could not be written", self.store, exc_info=True)
            return self._adopt(self._snapshot_of(features, fetched_at))
        raise failure

    # -- changes ---------------------------------------------------------------------------------

    def notice(self, *, lookup_keys: Iterable[str] = (), feature_ids: Iterable[str] = ()) -> bool:
        """Mark the catalog due for a refresh if it does not know one of these; no I/O.

        For a webhook that names features: the refresh happens on the next limit asked for, once
        however many events noticed, and at most once per ``refresh_interval``. Returns whether
        the catalog was marked.
        """
        snapshot = self.current
        if snapshot is NO_CATALOG:
            return False
        unknown = any(key not in snapshot.by_key for key in lookup_keys) or any(
            feature_id not in snapshot.by_id for feature_id in feature_ids
        )
        if not unknown or not self._may_refresh():
            return False
        snapshot.expires = -math.inf
        return True


# -- check: the app's names against the catalog -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem ``check`` reports: its kind, the name it is about, and a sentence for people.

    ``kind`` is ``"unknown_lookup_key"``, ``"archived_feature"``, ``"malformed_limit"`` or
    ``"unknown_limit"``; ``suggestions`` the closest real names, for an unknown one.
    """

    kind: str
    name: str
    message: str
    suggestions: tuple[str, ...] = ()


def audit(features: Iterable[Feature], lookup_keys: Iterable[str], limit_names: Iterable[str] = ()) -> list[Finding]:
    """Compare the names an app gates on with the account's features; the findings, sorted.

    An unknown lookup_key (with the closest real ones), a lookup_key of an archived feature, a
    limit name no feature's metadata carries, and malformed limit metadata on any feature (a
    value under a limit name the app uses that is not a limit, or a value that looks meant as a
    number) are findings.
    """
    features = tuple(features)
    by_key = {feature.lookup_key: feature for feature in sorted(features, key=lambda f: f.active)}
    limit_names = frozenset(limit_names)
    findings: list[Finding] = []
    for key in sorted(frozenset(lookup_keys)):
        feature = by_key.get(key)
        if feature is None:
            close = tuple(difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.6))
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            findings.append(
                Finding("unknown_lookup_key", key, f"lookup_key {key!r} is not a feature of this account{hint}", close)
            )
        elif not feature.active:
            findings.append(
                Finding(
                    "archived_feature",
                    key,
                    f"lookup_key {key!r} is feature {feature.id}, which is archived: no new customer gets it",
                )
            )
    carried = {name for feature in features for name in feature.limits}
    for name in sorted(limit_names - carried):
        close = tuple(difflib.get_close_matches(name, sorted(carried), n=3, cutoff=0.6))
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        findings.append(
            Finding(
                "unknown_limit",
                name,
                f"limit {name!r} is in no feature's metadata (every customer gets the default){hint}",
                close,
            )
        )
    for feature in sorted(features, key=lambda f: f.lookup_key):
        for name, value in sorted(feature.metadata.items()):
            if name in feature.limits:
                continue
            if name in feature.malformed or name in limit_names:
                findings.append(
                    Finding(
                        "malformed_limit",
                        name,
                        f"feature {feature.lookup_key!r} ({feature.id}) has metadata {name}={value!r}, which is "
                        f"not a whole number >= 0 or {UNLIMITED!r}: ignored for limits",
                    )
                )
    return findings
