"""``entitlegate warm``: fill the shared cache before a launch, at a rate Stripe allows, resumably.

Each customer is fetched from Stripe and stored (``Resolver.refresh``), at most ``--rate``
customers a second (default 10: Stripe allows 25 requests a second in a sandbox and 100 live,
and the app itself needs some). Every customer warmed is appended to a state file as it is done,
so a run stopped by Ctrl-C (exit 130) or a crash continues, when run again, with the customers it
had not done; a run that warmed everyone removes the file. Failures are listed at the end (exit
1) and stay in the state's "to do", so the next run tries them again.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import stripe

from entitlegate._cli_context import (
    FINDING,
    INTERRUPTED,
    OK,
    Context,
    UsageError,
    Verb,
    cache_option,
    redis_cache_of,
    stripe_failure,
)
from entitlegate.cache.memory import MemoryCache
from entitlegate.errors import SourceUnavailable

__all__ = ["WARM"]

DEFAULT_RATE = 10.0
_MAX_RATE = 100.0  # Stripe's live-mode limit: more is refused with 429s
_PAGE = 100
_BAR = 30


def _arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--customers",
        metavar="FILE",
        help="the customers to warm: one id a line (# comments allowed), or a .json list or object of ids",
    )
    which.add_argument("--all-customers", action="store_true", help="every customer of the account (GET /v1/customers)")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        metavar="N",
        help=f"at most N Stripe requests a second (default {DEFAULT_RATE:g}; Stripe allows 25 in a sandbox, 100 live)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="where progress is kept for a rerun to continue (default: FILE.warm-state, or "
        "entitlegate-warm.state with --all-customers)",
    )
    parser.add_argument("--progress", action="store_true", help="draw the progress bar on stderr even when not a TTY")
    cache_option(parser)


class _Pace:
    """At most ``rate`` calls a second: each :meth:`wait` returns no sooner than 1/rate after the last."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)  # a rate limit, not a wait for a condition
            now = self._next
        self._next = now + self._interval


class _Bar:
    """A one-line progress bar redrawn in place on a stream (a TTY, or when asked for)."""

    def __init__(self, stream: TextIO, total: int, *, shown: bool) -> None:
        self._stream, self._total, self._shown = stream, total, shown
        self._drawn = False

    def draw(self, done: int, customer: str) -> None:
        if not self._shown:
            return
        filled = _BAR * done // self._total if self._total else _BAR
        bar = "#" * filled + "-" * (_BAR - filled)
        self._stream.write(f"\rwarming [{bar}] {done}/{self._total} {customer:<24}")
        self._stream.flush()
        self._drawn = True

    def end(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _warm(context: Context) -> int:
    args = context.args
    if not 0 < args.rate <= _MAX_RATE:
        raise UsageError(f"--rate must be more than 0 and at most {_MAX_RATE:g} requests a second, got {args.rate:g}")
    resolver = context.resolver()
    if isinstance(resolver.cache, MemoryCache) or (context.given is None and context.cache() is None):
        raise UsageError(
            "warm fills a shared cache, and this one lives and dies with this process: give --cache redis://… "
            "(or $ENTITLEGATE_CACHE), or set the project's cache to Redis"
        )
    pace = _Pace(args.rate)
    context.catalog()  # one cheap request first: a wrong key or Stripe down stops here, exit 2
    state = Path(args.state or (f"{args.customers}.warm-state" if args.customers else "entitlegate-warm.state"))
    customers = _read_file(Path(args.customers)) if args.customers else list(_all_customers(context, pace))
    done = _read_state(state)
    todo = [customer for customer in customers if customer not in done]
    if len(todo) < len(customers):
        print(
            f"resuming: {len(customers) - len(todo)} of {len(customers)} customers warmed by an earlier run "
            f"(state {state})",
            file=context.err,
        )
    redis_cache = redis_cache_of(resolver.cache)
    failures: list[tuple[str, str]] = []
    bar = _Bar(context.err, len(todo), shown=args.progress or context.err.isatty())
    started = time.monotonic()
    warmed = 0
    try:
        with state.open("a", encoding="utf-8") as record:
            for customer in todo:
                pace.wait()
                try:
                    resolver.refresh(customer)
                except SourceUnavailable as error:
                    failures.append((customer, str(error)))
                else:
                    if redis_cache is not None and redis_cache._breaker.down:
                        failures.append((customer, f"Redis at {redis_cache.location} did not take it"))
                    else:
                        record.write(customer + "\n")
                        record.flush()  # a Ctrl-C or a crash right after still counts it as done
                        warmed += 1
                bar.draw(warmed + len(failures), customer)
    except KeyboardInterrupt:
        bar.end()
        print(
            f"interrupted: {warmed} warmed, {len(todo) - warmed} to go; run the same command again to continue "
            f"(state {state})",
            file=context.err,
        )
        return INTERRUPTED
    bar.end()
    took = time.monotonic() - started
    print(f"warmed {warmed} customers in {took:.1f} s ({len(customers) - len(todo)} done before)", file=context.out)
    if failures:
        print(f"{len(failures)} failed (run the same command again to retry them):", file=context.out)
        for customer, reason in failures:
            print(f"  {customer}: {reason}", file=context.out)
        return FINDING
    state.unlink(missing_ok=True)
    return OK


def _read_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --customers {path}: {error.strerror}") from None
    if path.suffix == ".json":
        try:
            data: Any = json.loads(text)
        except ValueError:
            raise UsageError(f"--customers {path} is not JSON") from None
        ids: Iterable[object] = data if isinstance(data, list) else data.keys() if isinstance(data, dict) else ()
    else:
        ids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    customers = [customer for customer in ids if isinstance(customer, str) and customer.strip()]
    if not customers:
        raise UsageError(f"--customers {path} names no customer")
    return list(dict.fromkeys(customers))  # in order, each once


def _read_state(path: Path) -> set[str]:
    try:
        return {line for line in path.read_text(encoding="utf-8").splitlines() if line}
    except FileNotFoundError:
        return set()
    except OSError as error:
        raise UsageError(f"cannot read --state {path}: {error.strerror}") from None


def _all_customers(context: Context, pace: _Pace) -> Iterator[str]:
    client, options = context.stripe()
    params: dict[str, Any] = {"limit": _PAGE}
    try:
        while True:
            pace.wait()
            page = client.v1.customers.list(params, options)  # type: ignore[arg-type]
            yield from (customer.id for customer in page.data)
            if not page.has_more or not page.data:
                return
            params["starting_after"] = page.data[-1].id
    except stripe.StripeError as error:
        raise stripe_failure("list the customers", error) from None


WARM = Verb(
    "warm",
    "prefetch customers' entitlements into the shared cache, at a bounded rate, resumably",
    _arguments,
    _warm,
)
