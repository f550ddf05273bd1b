"""``make bench``: every benchmark side by side in one run; prints the table, writes RESULTS.md.

``python -m bench`` from the repository root. It starts what the sections need itself — the fake
Stripe (``tests/fake_stripe.py``) and a redis-server (``tests/redis_server.py``) — and runs the
Django rows in a child process, since Django's settings belong to a whole process.
``--quick`` runs every section with tiny counts (a smoke test, figures meaningless) and writes
no RESULTS.md unless ``--output`` names a file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

from bench import asgi_views, cold, core, flask_views, limits, memory, otel, redis_rows, scale, usage
from bench._timing import Row, machine, table
from tests import fake_stripe
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
GOAL_WAFFLE = 100.0  # a hit at least 100x faster than waffle's cached flag check


def main(argv: Sequence[str] | None = None) -> int:
    """Run every section, print the report, and write it to RESULTS.md (or ``--output``)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: check that every section runs")
    parser.add_argument("--output", type=Path, help=f"where to write the report (default: {RESULTS.name})")
    args = parser.parse_args(argv)
    output: Path | None = args.output or (None if args.quick else RESULTS)
    quick: bool = args.quick

    started = time.monotonic()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows: list[Row] = []
    with _fake_stripe() as fake, _redis() as redis_url:
        sections: list[tuple[str, Callable[[], list[Row]]]] = [
            ("1 has_feature on a hit, in process", lambda: core.run(quick=quick)),
            ("1 limit on a hit, in process", lambda: limits.hit(quick=quick)),
            ("1 has_feature on a hit, RedisCache", lambda: redis_rows.hits(redis_url, quick=quick)),
            ("1+2 Django: waffle's flag check, gated views (child process)", lambda: _django_rows(quick)),
            ("2 Flask gated view", lambda: flask_views.run(quick=quick)),
            ("2 Starlette gated view", lambda: asgi_views.run(quick=quick)),
            ("3 cold misses", lambda: cold.run(fake, quick=quick)),
            ("4 webhook to every process", lambda: redis_rows.propagation(redis_url, quick=quick)),
            ("5 memory in process", lambda: memory.run(quick=quick)),
            ("5 memory in process, RedisCache", lambda: redis_rows.local_tier_memory(redis_url, quick=quick)),
            ("5 memory of limits in process", lambda: limits.memory(quick=quick)),
            ("5 memory in Redis", lambda: redis_rows.memory(redis_url, quick=quick)),
            ("6 Stripe calls with Redis down", lambda: redis_rows.outage(fake, quick=quick)),
            ("7 scale: in process", lambda: scale.in_process(quick=quick)),
            ("7 scale: Redis memory", lambda: scale.redis_memory(redis_url, quick=quick)),
            ("7 scale: webhooks per second", lambda: scale.webhooks_per_second(redis_url, fake, quick=quick)),
            ("7 scale: Redis Cluster", lambda: _cluster_rows(fake, quick)),
            ("8 usage meters", lambda: usage.run(fake, redis_url, quick=quick)),
            # Last: it sets the process's meter provider, which the other sections run without.
            ("1 has_feature on a hit, OpenTelemetry on", lambda: otel.run(quick=quick)),
        ]
        for title, run in sections:
            began = time.monotonic()
            print(f"running: {title} …", file=sys.stderr, end=" ", flush=True)
            rows.extend(run())
            print(f"{time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    rows.extend(_held_to_waffle(rows))
    rows.sort(key=lambda row: row.section)  # stable: each section's rows stay in the order measured

    elapsed = time.monotonic() - started
    command = "python -m bench --quick" if quick else "make bench (python -m bench)"
    report = _report(rows, command=command, elapsed=elapsed, load=load)
    print(report)
    if output is not None:
        output.write_text(report)
        print(f"written: {output}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _fake_stripe() -> Iterator[fake_stripe.FakeStripe]:
    fake, server = fake_stripe.start()
    # The fake answers in two writes (headers, then body). With Nagle's algorithm on, the second
    # waits for the client's delayed ACK, about 40 ms on Linux: no part of Stripe's latency, and
    # it would swamp the latency the cold-miss section sets. So its sockets are TCP_NODELAY here.
    handler = cast(type, server.RequestHandlerClass)
    server.RequestHandlerClass = type("NoDelayHandler", (handler,), {"disable_nagle_algorithm": True})
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _cluster_rows(fake: fake_stripe.FakeStripe, quick: bool) -> list[Row]:
    with scale.cluster() as made:
        return scale.cluster_propagation(made, fake, quick=quick) + scale.publish_against_spublish(made, quick=quick)


def _django_rows(quick: bool) -> list[Row]:
    """Waffle's and the Django views' rows, from ``python -m bench.django_site`` in a child process."""
    command = [sys.executable, "-m", "bench.django_site", *(["--quick"] if quick else [])]
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return [Row.from_json(row) for row in json.loads(done.stdout)]


def _held_to_waffle(rows: Sequence[Row]) -> list[Row]:
    """The hit against waffle's per-account flag check: how many times faster."""
    hit = _find(rows, "MemoryCache `has_feature`")
    waffle = _find(rows, "django-waffle `flag_is_active`, flag holding the user (cached)")
    cheapest = _find(rows, "django-waffle `flag_is_active`, flag on for everyone (cached)")
    times = waffle.median / hit.median
    return [
        Row(
            core.SECTION,
            "waffle's per-account check / MemoryCache hit",
            times,
            f"{_low(waffle) / _high(hit):.0f}..{_high(waffle) / _low(hit):.0f}",
            "x",
            f"medians, timed in two processes; waffle's everyone-flag: {cheapest.median / hit.median:.0f}x",
            goal=f">= {GOAL_WAFFLE:g}x",
            met=times >= GOAL_WAFFLE,
            why="waffle's check is faster than its ~30 µs on this machine, or the hit slower",
        )
    ]


def _find(rows: Sequence[Row], name: str) -> Row:
    for row in rows:
        if row.name == name:
            return row
    raise LookupError(f"no row {name!r}: a section did not run")


def _low(row: Row) -> float:
    return float(row.spread.split("-")[0])


def _high(row: Row) -> float:
    return float(row.spread.split("-")[-1])


def _report(rows: Sequence[Row], *, command: str, elapsed: float, load: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    goals = [row for row in rows if row.met is not None]
    missed = [row for row in goals if not row.met]
    lines = [
        "# entitlegate benchmark results",
        "",
        f"`{command}` on {when}, {machine()}, load average {load:.2f} at the start; {elapsed:.0f} s.",
        "",
        "Spread is the min-max of repeated runs (for a p50 or p99 row, of that percentile over the",
        "runs), or the interquartile range of paired rounds where it says IQR. The machine is a shared",
        "VM: read medians, and the A/A control rows for how far the paired method can be trusted here.",
        "",
        table(rows),
        "",
        f"## Goals: {len(goals) - len(missed)} of {len(goals)} met",
        "",
    ]
    for row in goals:
        verdict = "met" if row.met else "**missed**"
        line = f"- {row.name}: {_value(row)} against {row.goal}: {verdict}."
        if not row.met and row.why:
            line += f" Why: {row.why}."
        lines.append(line)
    lines += ["", *_METHOD, ""]
    return "\n".join(lines)


def _value(row: Row) -> str:
    return table([row]).splitlines()[-1].split("|")[3].strip()


_METHOD = [
    "## How it was measured",
    "",
    "- **1 hit**: `timeit` loops (the loop's own cost is in every figure, the floor's too). The",
    "  floor is `lookup_key in table[customer]` on a dict of frozensets, inline and as a function",
    "  call. A hit and its floor run in alternated batches and their ratio is taken batch by batch.",
    "  waffle: django-waffle's `flag_is_active` in a minimal Django (sqlite in memory, waffle's cache",
    "  on locmem), warmed, for a flag that holds the user and for a flag on for everyone.",
    "- **2 view**: one app per framework, the same trivial view served gated and ungated, a",
    "  resolver on a StaticSource with the customer cached, the customer read from a header.",
    "  Django: no middleware, every URL resolved by one pattern; the test client, and a",
    "  RequestFactory request passed to the view. Flask: the test client. Starlette: a raw ASGI call",
    "  (scope, receive, send) into the app, with `EntitlementMiddleware` and a rule, and without it.",
    "  Ungated and gated run in small batches alternated ABBA; the overhead is the median of the",
    "  rounds' paired differences. Garbage collection is paused inside the batches. The A/A control",
    "  compares the ungated view at two URLs the same way: it should be 0, and shows the error.",
    "- **3 cold miss**: the real StripeSource and stripe SDK over HTTP to the fake Stripe, which",
    "  answers after 50 ms; a burst of concurrent `has_feature` checks for a customer never asked",
    "  for, on a fresh resolver, from threads (one barrier) and from asyncio tasks (one gather).",
    "  The fake's sockets are TCP_NODELAY here: it writes headers and body apart, and Nagle's",
    "  algorithm would add a delayed ACK (~40 ms) that is no part of Stripe's latency.",
    "- **4 propagation**: `bench/redis_bench.py`: 4 spawned processes, each a resolver on its own",
    "  RedisCache with local copies good for an hour, so only the pub/sub invalidation can change",
    "  their answer; one handles a signed summary event while the other 3 poll `features` every",
    "  0.2 ms. A sample runs from the start of the webhook's handling (before its 200) to the last",
    "  of the 3 answering the new set.",
    "- **limits**: `limit` on a cached customer, in batches alternated with `has_feature` on the same",
    "  resolver, ratio batch by batch; its memory is tracemalloc's growth while every cached customer",
    "  (on 5 plan sets) asks its first limit, the catalog's fetch included, per customer.",
    "- **5 memory**: in process, tracemalloc while customers are written through the resolver's own",
    "  path (`apply_event`), each with its own lookup_key strings as decoded from Stripe's JSON; in",
    "  Redis, `MEMORY USAGE` of a customer's key, written by RedisCache.",
    "- **6 Redis outage**: `bench/redis_bench.py`: a redis-server of its own, a resolver on a",
    "  RedisCache over the real StripeSource to the fake Stripe; every customer read once, then",
    "  redis-server killed and 4 threads asking for every customer in turn. The count is the",
    "  resolver's source calls in the window. `ttl` and `local_ttl` are scaled down (4 s, 0.4 s) so a",
    '  window of two ttls is short; the row "as it was" runs the same with `ttl` = `local_ttl`, what',
    "  a copy cut to `local_ttl` cost before (the old listener also forgot every copy on each failed",
    "  reconnect, which cost more still).",
]


if __name__ == "__main__":
    raise SystemExit(main())
