"""``make bench-instructions``: what each gate adds to a request, in instructions rather than µs.

Timings on a shared VM move by tens of percent from one run to the next; instruction counts under
``valgrind --tool=callgrind`` do not (the same binary, inputs and ``PYTHONHASHSEED`` give the same
count whatever else the machine does). Each target is run twice in a child under callgrind, with
collection switched on (``callgrind_control -i on``) only around a loop of 2,000 and then 12,000
requests; the per-request figure is the slope between the two, so start-up and the switch itself
cancel. A gate's added cost is its target minus the ungated one beside it, as in ``make bench``'s
section 2, next to the same floors (an empty decorator, a pass-through middleware, the check by
hand, the check by hand keeping its answer for the request).

``--against CHECKOUT`` counts each gate again with another checkout's entitlegate (``git worktree
add ../old COMMIT``), beside this one's, so two commits compare exactly with the same floors;
``--run TARGET N`` is the child's side. Needs valgrind (Debian: ``apt-get
install valgrind``); about 30 s per target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SMALL, LARGE = 2_000, 12_000
ROOT = Path(__file__).resolve().parent.parent
_CHILD_ENV = "ENTITLEGATE_BENCH_CALLGRIND"  # set for a child under callgrind: switch collection around the loop

#: The rows: (what the gate is, the target it is, the ungated target it is held to, its floors).
ROWS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Django: @requires_feature on a RequestFactory request's view call",
        "django-gated",
        "django-plain",
        [
            ("an empty decorator", "django-empty"),
            ("the check by hand (the customer function, then has_feature)", "django-hand"),
            ("the check by hand, keeping its answer on the request", "django-memo"),
        ],
    ),
    (
        "Flask: @requires_feature on a view call in a request context",
        "flask-gated",
        "flask-plain",
        [
            ("an empty decorator", "flask-empty"),
            ("current_app, request.headers and g read once each", "flask-proxies"),
            ("the check by hand (the customer loader, then has_feature)", "flask-hand"),
        ],
    ),
    (
        "Starlette: EntitlementMiddleware with a rule, raw ASGI call",
        "asgi-middleware",
        "asgi-bare",
        [
            ("a pass-through ASGI middleware", "asgi-passthrough"),
            ("the check by hand (the customer, then ahas_feature)", "asgi-hand"),
            ("the check by hand, keeping its answer in a copy of the scope's state", "asgi-memo"),
        ],
    ),
    (
        "Starlette: @requires_feature on an endpoint (EntitlementMiddleware beneath, no rule)",
        "asgi-decorator",
        "asgi-beneath",
        [
            ("an empty async decorator", "asgi-decorator-empty"),
            ("the check by hand (the customer, then ahas_feature)", "asgi-decorator-hand"),
        ],
    ),
    (
        "The hit: MemoryCache has_feature over 1,000 customers in turn",
        "hit",
        "hit-loop",
        [("the floor: `k in d[c]` in a function", "hit-floor")],
    ),
]


def _django(name: str) -> Callable[[int], None]:
    import django
    from django.conf import settings

    from bench import django_site

    if not settings.configured:  # several Django targets in one child (the smoke test's)
        settings.configure(**django_site.SETTINGS)
        django.setup()
    from django.test import RequestFactory

    views = {
        "plain": django_site.view,
        "gated": django_site.gated_view,
        "empty": django_site.empty_view,
        "hand": django_site.hand_written_view,
        "memo": django_site.memo_view,
    }
    view = views[name]
    request = RequestFactory().get("/gated", HTTP_X_CUSTOMER=django_site.CUSTOMER)
    kept = request.__dict__

    def call() -> object:
        # One request object, its per-request answer dropped each time: a fresh request's cost
        # without a growing heap of live requests (which would make the collector's work grow too).
        # The status check is in every target alike, so it cancels out of each row.
        response = view(request)
        kept.pop("entitlements", None)
        kept.pop("memo", None)
        if response.status_code != 200:
            raise RuntimeError(f"Django {name} answered {response.status_code}: the bench is broken")
        return response

    return _repeating(call)


def _flask(name: str) -> Callable[[int], None]:
    from werkzeug.test import EnvironBuilder

    from bench import flask_views
    from bench.overhead import CUSTOMER

    app = flask_views.make_app()
    endpoint = {"plain": "plain", "gated": "gated", "empty": "empty", "proxies": "proxies", "hand": "hand"}[name]
    view = app.view_functions[endpoint]
    environ = EnvironBuilder(path=f"/{endpoint}", headers=[("X-Customer", CUSTOMER)]).get_environ()

    def call() -> object:
        with app.request_context(dict(environ)):
            answer = view()
        if answer != "ok":  # in every target alike: it cancels out of each row
            raise RuntimeError(f"Flask {name} answered {answer!r}, not ok: the bench is broken")
        return answer

    return _repeating(call)


def _asgi(name: str) -> Callable[[int], object]:
    from starlette.middleware import Middleware

    from bench import asgi_views as views
    from entitlegate_asgi import requires_feature

    beneath = [views.entitlegate_middleware({})]

    def memo() -> Any:
        return Middleware(views.HandWrittenMemoGate, resolver=views.cached_resolver(), prefix="/pro")

    apps: dict[str, Callable[[], Any]] = {
        "bare": lambda: views.starlette_app([], views.view),
        "middleware": lambda: views.make_app(gated=True),
        "passthrough": lambda: views.starlette_app([Middleware(views.PassThrough)], views.view),
        "hand": lambda: views.starlette_app(
            [Middleware(views.HandWrittenGate, resolver=views.cached_resolver(), prefix="/pro")], views.view
        ),
        "memo": lambda: views.starlette_app([memo()], views.view),
        "beneath": lambda: views.starlette_app(beneath, views.view),
        "decorator": lambda: views.starlette_app(beneath, requires_feature(views.FEATURE)(views.view)),
        "decorator-empty": lambda: views.starlette_app(beneath, views.empty_decorator(views.view)),
        "decorator-hand": lambda: views.starlette_app(
            beneath, views.hand_written_gate(views.cached_resolver())(views.view)
        ),
    }
    # One run_until_complete per batch, as make bench runs them (the loop's own start is then
    # in no request's figure); requests_of checks that the app answers 200.
    return views.requests_of(asyncio.new_event_loop(), apps[name]())


def _hit(name: str) -> Callable[[int], None]:
    from entitlegate import MemoryCache, Resolver, StaticSource

    customers = [f"cus_{index:014d}" for index in range(1_000)]
    features = ("seats-feature", "analytics", "export", "sso", "audit-log")
    resolver = Resolver(StaticSource(dict.fromkeys(customers, features)), MemoryCache())
    for customer in customers:
        resolver.features(customer)
    table = {customer: frozenset(features) for customer in customers}
    turn = iter(range(10**9))

    def floor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    check = {"hit": resolver.has_feature, "hit-floor": floor, "hit-loop": lambda customer, key: None}[name]
    return _repeating(lambda: check(customers[next(turn) % 1_000], "seats-feature"))


def _repeating(call: Callable[[], object]) -> Callable[[int], None]:
    def run(count: int) -> None:
        for _ in range(count):
            call()

    return run


def _target(target: str) -> Callable[[int], object]:
    """``run(count)``: ``count`` requests (or checks) of ``target``."""
    family, _, name = target.partition("-")
    if family == "hit":
        return _hit(target)
    makers = {"django": _django, "flask": _flask, "asgi": _asgi}
    if family not in makers:
        raise SystemExit(f"unknown target {target!r}: one of {', '.join(sorted(targets()))}")
    return makers[family](name)


def targets() -> list[str]:
    """Every target name, in the order the rows use them."""
    names: list[str] = []
    for _, gated, plain, floors in ROWS:
        names += [plain, gated, *(floor for _, floor in floors)]
    return list(dict.fromkeys(names))


def run_child(target: str, count: int) -> None:
    """The child's side: warm the target, then time ``count`` calls with collection switched on.

    ``all`` runs every target ``count`` times, not under callgrind: the test suite's check that
    each still works (and answers as the bench expects).
    """
    if target == "all":
        for name in targets():
            _target(name)(count)
        return
    run = _target(target)
    run(50)
    under_callgrind = os.environ.get(_CHILD_ENV) == "1"
    if under_callgrind:
        _collect("on")
    run(count)
    if under_callgrind:
        _collect("off")


def _collect(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def count(target: str, calls: int, against: Path | None = None) -> int:
    """Instructions callgrind counted over ``calls`` calls of ``target`` (collection on around the loop only).

    ``against``: another checkout whose ``entitlegate`` and adapters the child imports instead of
    this one's, with this checkout's ``bench`` (linked into a scratch folder the child starts in).
    """
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0", _CHILD_ENV: "1"}
        cwd = None
        if against is not None:
            (Path(scratch) / "bench").symlink_to(ROOT / "bench")
            env["PYTHONPATH"] = os.pathsep.join([scratch, str(against), str(against / "integrations")])
            cwd = scratch
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.instructions",
                "--run",
                target,
                str(calls),
            ],
            check=True,
            env=env,
            cwd=cwd,
            capture_output=True,
        )
        for line in out.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"callgrind wrote no totals for {target}")


def per_call(target: str, against: Path | None = None) -> int:
    """Instructions per call of ``target``: the slope between SMALL and LARGE calls."""
    return (count(target, LARGE, against) - count(target, SMALL, against)) // (LARGE - SMALL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", nargs=2, metavar=("TARGET", "N"), help="the child's side: N calls of TARGET (or of each, for all)"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also count each row's ungated and entitlegate targets with another checkout's entitlegate "
        "(a git worktree of an older commit), side by side",
    )
    parser.add_argument("rows", nargs="*", help="only the rows whose gated target is named (default: all)")
    args = parser.parse_args(argv)
    if args.run:
        run_child(args.run[0], int(args.run[1]))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench.instructions needs valgrind (callgrind): apt-get install valgrind", file=sys.stderr)
        return 2
    wanted = [row for row in ROWS if not args.rows or row[1] in args.rows]
    python = sys.version.split()[0]
    print(
        f"instructions per request (callgrind, PYTHONHASHSEED=0, slope {SMALL:,} to {LARGE:,} calls), Python {python}"
    )
    for what, gated, plain, floors in wanted:
        base = per_call(plain)
        print(f"\n{what}\n  {plain} (held to): {base:,} per call")
        for label, target in floors:
            print(f"  added by {label}: {per_call(target) - base:,}", flush=True)
        print(f"  added by entitlegate: {per_call(gated) - base:,}", flush=True)
        if args.against is not None:
            added = per_call(gated, args.against) - per_call(plain, args.against)
            print(f"  added by entitlegate in {args.against}: {added:,}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
