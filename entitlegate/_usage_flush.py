"""Sending queued meter events to Stripe, off the request path.

A daemon thread, started at the first event a process queues (and again in a forked child that
queues one), wakes every ``interval`` seconds or once ``batch`` events were queued, claims the
pending events in batches (leased, so another process does not send them meanwhile) and sends
each through the source; what Stripe took is acked. An outage (``SourceUnavailable``) backs off
exponentially, capped and jittered, and keeps the rest pending; a refusal (``MeterRejected``)
logs one error per meter, keeps the events and leaves that meter and customer alone for a while.
At interpreter exit the pending events get a few seconds to go out.
"""

from __future__ import annotations

import atexit
import functools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from entitlegate._fork import reset_after_fork
from entitlegate._meters import MeterEvent, MeterRejected, UsageSource
from entitlegate.errors import CacheUnavailable, SourceUnavailable

__all__ = ["SENDERS", "Claiming", "Flusher"]

logger = logging.getLogger("entitlegate")

EXIT_SECONDS = 3.0  # what the interpreter's exit waits for pending events, at most (plus a send in flight)
REJECTED_RETRY_SECONDS = 60.0  # how long a (meter, customer) Stripe refused is left alone
SENDERS = 8  # meter events sent at once (Stripe takes one per request)
_BACKOFF_FIRST = 0.1
# An event refused this many times in a row while others got through is held and backed off for,
# as in an outage: what always fails must not be retried in a tight loop.
_RETRIES_IN_A_ROW = 3
_BACKOFF_CAP = 30.0
_LOGGED_MAX = 1000  # meters whose refusal was logged; past that the set starts again


class Claiming(Protocol):
    """Where pending events are claimed from: a UsageStore, or the engine's in-process fallback."""

    def claim(self, n: int, lease_seconds: float) -> list[MeterEvent]: ...

    def ack(self, events: list[MeterEvent]) -> None: ...


class Flusher:
    """Sends the events pending in ``stores`` through ``source``; see the module's notes.

    ``owner`` is what the flusher works for (the usage engine): once it is gone the thread sends
    what is left and ends. ``clock`` (monotonic seconds, the resolver's) times the leases held and
    the refusals' pauses; the thread's waits are real time. Thread-safe: one drain runs at a time,
    in the thread or in a caller of :meth:`flush`.
    """

    def __init__(
        self,
        source: UsageSource,
        stores: Sequence[Claiming],
        *,
        owner: object,
        batch: int,
        interval: float,
        lease: float,
        clock: Callable[[], float],
    ) -> None:
        self._source = source
        self._stores = tuple(stores)
        self._owner = weakref.ref(owner)
        self.batch = batch
        self.interval = interval
        self.lease = lease
        self._clock = clock
        self._atexit: Callable[[], None] | None = None
        self._fresh()
        reset_after_fork(self._fresh)

    def _fresh(self) -> None:
        # Also the child's reset after a fork: the parent's thread is not here, a lock it held
        # would never be released, and the events it claimed are the parent's to send.
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's own: set, that thread ends
        self._queued = 0
        self._held: list[tuple[Claiming, MeterEvent, float]] = []  # claimed, not yet sent: (store, event, when)
        self._failures = 0  # consecutive outages
        self._resume_at = 0.0  # time.monotonic(): the thread sends nothing before (backing off)
        self._skipped: dict[tuple[str, str], float] = {}  # (meter, customer) → left alone until (clock)
        self._logged: set[str] = set()
        self._unreachable: list[Claiming] = []  # stores whose claim failed (logged once until one succeeds)
        self._pool: ThreadPoolExecutor | None = None  # the senders, made at the first batch of two

    def __repr__(self) -> str:
        running = self._thread is not None and self._thread.is_alive()
        return f"Flusher(batch={self.batch}, interval={self.interval}, running={running})"

    @property
    def running(self) -> bool:
        """Whether the thread is running in this process."""
        return self._thread is not None and self._thread.is_alive()

    # -- the request path ---------------------------------------------------------------------

    def queued(self) -> None:
        """One more event queued: start the thread if needed, wake it once a batch is waiting."""
        if self._thread is None:
            self._start()
        # A plain count: a lost update under contention only delays a wake-up to the interval.
        self._queued += 1
        if self._queued >= self.batch:
            self._queued = 0
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(self._stop,), name="entitlegate-usage-flush", daemon=True)
            self._thread = thread
            if self._atexit is None:
                # Held weakly: the hook keeps no flusher (so no resolver) alive.
                self._atexit = functools.partial(_flush_at_exit, weakref.ref(self))
                atexit.register(self._atexit)
            thread.start()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        while True:
            wait = self.interval
            resume = self._resume_at - time.monotonic()
            if resume > 0:  # backing off: no sooner (a past resume is no reason to hurry)
                wait = resume
            self._wake.wait(wait)
            self._wake.clear()
            if stop.is_set():
                return
            if self._owner() is None:  # the resolver is gone: send what is left, then end
                self.flush(deadline=time.monotonic() + EXIT_SECONDS)
                return
            if time.monotonic() < self._resume_at:
                continue
            try:
                self.flush(background=True)
            except Exception:  # the thread must outlive any surprise; the events stay pending
                logger.exception("entitlegate: sending usage events failed; they stay pending and are retried")
                self._backoff()

    def stop(self, timeout: float) -> None:
        """End the thread (waiting at most ``timeout`` seconds); the next queued event starts it again."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    # -- draining -----------------------------------------------------------------------------

    def flush(self, *, deadline: float | None = None, background: bool = False) -> int:
        """Send what is pending now; answer how many events Stripe took.

        Stops at the first outage (the rest stay pending) or at ``deadline`` (``time.monotonic()``).
        """
        if deadline is None:
            self._lock.acquire()
        elif not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return 0
        try:
            self._queued = 0
            return self._drain(deadline, background)
        finally:
            self._lock.release()

    def _drain(self, deadline: float | None, background: bool) -> int:
        taken = 0
        # What an outage left unsent first, while its lease holds (past half of it, another
        # process may have claimed it since: it is claimed again when the lease lapses).
        held, self._held = self._held, []
        fresh = self._clock() - self.lease / 2
        for number, store in enumerate(self._stores):
            mine = [(event, when) for owner, event, when in held if owner is store and when > fresh]
            if mine:
                # Held again as of their first claim, never later: their lease runs from then.
                sent, down = self._send(store, [event for event, _ in mine], min(w for _, w in mine), deadline)
                taken += sent
                if down:
                    later = self._stores[number + 1 :]
                    self._held.extend(entry for entry in held if any(entry[0] is other for other in later))
                    return taken
        for store in self._stores:
            while deadline is None or time.monotonic() < deadline:
                try:
                    batch = store.claim(self.batch, self.lease)
                except CacheUnavailable as error:
                    if background:
                        self._backoff()
                    if store not in self._unreachable:  # once per outage of that store
                        self._unreachable.append(store)
                        logger.warning("entitlegate: cannot claim pending usage events (%s); retrying later", error)
                    break
                if store in self._unreachable:
                    self._unreachable.remove(store)
                    logger.info("entitlegate: pending usage events can be claimed again")
                if not batch:
                    break
                sent, down = self._send(store, batch, self._clock(), deadline)
                taken += sent
                if down:
                    return taken
                if len(batch) < self.batch:
                    break
        return taken

    def _send(
        self, store: Claiming, batch: list[MeterEvent], claimed: float, deadline: float | None
    ) -> tuple[int, bool]:
        """Send ``batch``, ``SENDERS`` at a time; ack what Stripe took. (taken, whether Stripe is down)."""
        taken: list[MeterEvent] = []
        tries: dict[str, int] = {}  # identifier → failed sends in this batch, when others got through
        try:
            todo = [event for event in batch if not self._skipping(event)]  # the skipped stay leased
            position = 0
            while position < len(todo):
                if deadline is not None and time.monotonic() >= deadline:
                    self._held.extend((store, rest, claimed) for rest in todo[position:])
                    return len(taken), False
                # Not those whose meter Stripe refused earlier in this batch.
                window = todo[position : position + SENDERS]
                position += len(window)  # not SENDERS: retries appended to todo start right after it
                chunk = [event for event in window if not self._skipping(event)]
                failed: list[MeterEvent] = []
                outage: Exception | None = None
                for event, error in zip(chunk, self._send_all(chunk), strict=True):
                    if error is None:
                        taken.append(event)
                    elif isinstance(error, MeterRejected):
                        self._rejected((event.event_name, event.customer), error)
                    else:
                        failed.append(event)
                        outage = outage or error
                if self._failures and len(failed) < len(chunk):
                    self._recovered()  # Stripe took some: up again, so the next outage backs off from the start
                if outage is not None and len(failed) < len(chunk):
                    # Stripe took some of the chunk: it is up, refusing a few calls (a 500 here, a
                    # 429 there). Those go to the back of this batch and are tried again at once;
                    # backing off for each would cut the throughput to a chunk per back-off.
                    again = [event for event in failed if tries.get(event.identifier, 0) < _RETRIES_IN_A_ROW]
                    if len(again) == len(failed):
                        for event in again:
                            tries[event.identifier] = tries.get(event.identifier, 0) + 1
                        todo.extend(again)
                        continue
                if outage is not None:
                    # The failed and the rest are tried again after the back-off (a chunk that got
                    # some through backs off the least: Stripe is up, refusing some calls).
                    self._outage(outage, grow=len(failed) == len(chunk))
                    self._held.extend((store, rest, claimed) for rest in (*failed, *todo[position:]))
                    return len(taken), True
            return len(taken), False
        finally:
            if taken:
                try:
                    store.ack(taken)
                except CacheUnavailable as error:
                    # Sent but still pending there: sent again later, and Stripe takes each identifier once.
                    logger.warning("entitlegate: cannot ack %d sent usage events (%s)", len(taken), error)

    def _skipping(self, event: MeterEvent) -> bool:
        skipped = self._skipped
        if not skipped:
            return False
        key = (event.event_name, event.customer)
        until = skipped.get(key)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del skipped[key]
        logger.info("entitlegate: retrying the usage events of meter %r Stripe refused", event.event_name)
        return False

    def _send_all(self, chunk: list[MeterEvent]) -> list[Exception | None]:
        """Each event's failure (``None``: Stripe took it), sent at once from the pool's threads."""
        if len(chunk) > 1:
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="entitlegate-usage-send")
            try:
                futures = [pool.submit(self._send_one, event) for event in chunk]
            except RuntimeError:  # the interpreter is exiting: no new threads, send from this one
                pass
            else:
                return [future.result() for future in futures]
        # One at a time: stop at the first outage (the rest are not tried, so they are held too).
        results: list[Exception | None] = []
        for event in chunk:
            error = self._send_one(event)
            results.append(error)
            if error is not None and not isinstance(error, MeterRejected):
                results.extend(error for _ in range(len(chunk) - len(results)))
                break
        return results

    def _send_one(self, event: MeterEvent) -> Exception | None:
        try:
            self._source.send_meter_event(event)
        except MeterRejected as error:
            return error
        except SourceUnavailable as error:
            return error
        except Exception as error:  # a user's source: kept and retried as an outage, and said
            logger.exception("entitlegate: the usage source failed to send a meter event; it is kept and retried")
            return error
        return None

    def _rejected(self, key: tuple[str, str], error: MeterRejected) -> None:
        meter, customer = key
        self._skipped[key] = self._clock() + REJECTED_RETRY_SECONDS
        if meter in self._logged:
            return
        if len(self._logged) >= _LOGGED_MAX:
            self._logged.clear()
        self._logged.add(meter)
        # The message names the meter, the customer and Stripe's code; never the key.
        logger.error(
            "entitlegate: Stripe refused usage events of meter %r for customer %r: %s. They are kept, not sent, "
            "and retried every %.0f s (create the meter, or fix the customer, in the Stripe Dashboard)",
            meter,
            customer,
            error,
            REJECTED_RETRY_SECONDS,
        )

    def _outage(self, error: Exception, *, grow: bool) -> None:
        if not self._failures:
            logger.warning(
                "entitlegate: Stripe is unavailable for usage events (%s); they stay pending and are retried "
                "with back-off",
                error,
            )
        self._backoff(grow=grow)

    def _backoff(self, *, grow: bool = True) -> None:
        self._failures = self._failures + 1 if grow else max(self._failures, 1)
        delay = min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** min(self._failures - 1, 16))
        self._resume_at = time.monotonic() + delay * random.uniform(0.5, 1.0)

    def _recovered(self) -> None:
        logger.info("entitlegate: Stripe takes usage events again after %d failed tries", self._failures)
        self._failures = 0
        self._resume_at = 0.0


def _flush_at_exit(ref: weakref.ref[Flusher]) -> None:
    flusher = ref()
    if flusher is None:
        return
    try:
        flusher.flush(deadline=time.monotonic() + EXIT_SECONDS)
    except Exception:  # at exit nothing is left to handle it
        logger.exception("entitlegate: sending usage events at exit failed")
    flusher.stop(timeout=0.0)
