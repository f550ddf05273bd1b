"""Section 2, Django: a trivial view through the test client and through RequestFactory, gated and not.

Runs in the child process :mod:`bench.django_site` sets up.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse, HttpResponseBase
from django.test import Client, RequestFactory

from bench._timing import Row
from bench.django_site import empty_view, gated_view, hand_written_view, memo_view, require_get_view, view
from bench.overhead import CUSTOMER, added_cost_rows, overhead_rows

HAND_WRITTEN = "a hand-written check (the customer function, then `has_feature`, in a decorator)"
MEMO_WRITTEN = (
    "a hand-written check that keeps its answer on the request (the customer function and "
    "`features` once per request, as `request.entitlements` promises)"
)
GOAL_DECORATOR_US = 0.8  # requires_feature adds at most 0.8 µs to a RequestFactory view call
WHY_DECORATOR = (
    "the floors are timed beside it: an empty decorator; Django's own `require_GET`, whose wrapper "
    "passes the URL's arguments on as every view decorator must; the hand-written check (CUSTOMER, "
    "then `has_feature`); and the hand-written check that keeps its answer on the request, as "
    "entitlegate promises (one CUSTOMER call and one lookup per request however many checks), "
    "which alone costs more than the goal. What the decorator adds beyond that memo row is its own "
    "work (the settings-built config, the entitlements object's lookup bookkeeping, the gate's verdict)"
)
WHY = (
    "the decorator's own work (the settings-built config, the CUSTOMER call, a resolver hit, the gate's "
    "verdict: the RequestFactory rows show it alone, in a tight loop) costs more inside a whole request, "
    "and a request through a project with no middleware at all is short"
)


def run(*, quick: bool = False) -> list[Row]:
    """µs per request through the test client, and per RequestFactory request + direct view call."""
    client = Client(HTTP_X_CUSTOMER=CUSTOMER)
    factory = RequestFactory(HTTP_X_CUSTOMER=CUSTOMER)

    def through_client(url: str) -> Callable[[int], object]:
        _expect_ok(client.get(url), url)

        def batch(count: int) -> None:
            for _ in range(count):
                client.get(url)

        return batch

    def called(target: Callable[..., HttpResponse], url: str) -> Callable[[int], object]:
        _expect_ok(target(factory.get(url)), url)

        def batch(count: int) -> None:
            for _ in range(count):
                target(factory.get(url))

        return batch

    return (
        overhead_rows(
            "Django test client",
            through_client("/plain"),
            through_client("/gated"),
            number=5 if quick else 20,
            rounds=4 if quick else 1_500,
            goal=True,
            control=through_client("/other"),
            why=WHY,
        )
        + overhead_rows(
            "Django RequestFactory + view call",
            called(view, "/plain"),
            called(gated_view, "/gated"),
            number=20 if quick else 200,
            rounds=4 if quick else 300,
            goal=False,
        )
        + added_cost_rows(
            "Django RequestFactory + view call",
            called(view, "/plain"),
            [
                ("an empty decorator (`functools.wraps` pass-through)", called(empty_view, "/empty")),
                (
                    "Django's own `require_GET` (a wrapper passing on the URL's arguments, one check)",
                    called(require_get_view, "/get"),
                ),
                (HAND_WRITTEN, called(hand_written_view, "/hand")),
                (MEMO_WRITTEN, called(memo_view, "/memo")),
            ],
            called(gated_view, "/gated"),
            number=20 if quick else 200,
            rounds=4 if quick else 300,
            goal_us=GOAL_DECORATOR_US,
            why=WHY_DECORATOR,
        )
    )


def _expect_ok(response: HttpResponseBase, url: str) -> None:
    if response.status_code != 200 or getattr(response, "content", None) != b"ok":
        raise RuntimeError(f"Django {url} answered {response.status_code}, not 200 ok: the bench is broken")
