"""``make bench`` must keep working: every section runs with tiny counts (figures meaningless).

No timing is asserted here: only that each section runs to the end and reports its rows.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.redis  # the bench starts a redis-server of its own


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    assert main(["--quick", "--output", str(output)]) == 0
    return output.read_text()


@pytest.mark.parametrize(
    "section",
    [
        "| 1 hit |",
        "| 2 view |",
        "| 3 cold miss |",
        "| 4 propagation |",
        "| 5 memory |",
        "| 6 Redis outage |",
        "| 8 usage |",
    ],
)
def test_every_section_reports_rows(report: str, section: str) -> None:
    assert section in report


@pytest.mark.parametrize(
    "measurement",
    [
        "floor: `k in d[c]` inline",
        "MemoryCache `has_feature`",
        "MemoryCache `has_feature`, OpenTelemetry SDK meter provider set",
        "hit with OpenTelemetry / plain hit",
        "MemoryCache hit / floor in a function",
        "floor + a clock read and a hit count, in a function",
        "awaited hit / awaited floor",
        "MemoryCache `limit` (a cached customer)",
        "limit hit / has_feature hit",
        "limits of a cached customer (MemoryCache)",
        "django-waffle `flag_is_active`, flag holding the user (cached)",
        "Django test client: gated overhead",
        "Django RequestFactory + view call: gated overhead",
        "Flask test client: gated overhead",
        "Starlette, raw ASGI call: gated overhead",
    ],
)
def test_peer_floor_and_framework_rows_are_in_the_table(report: str, measurement: str) -> None:
    assert f"| {measurement} |" in report


@pytest.mark.parametrize(
    ("gate", "floors"),
    [
        (
            "Django RequestFactory + view call",
            [
                "an empty decorator (`functools.wraps` pass-through)",
                "a hand-written check (the customer function, then `has_feature`, in a decorator)",
            ],
        ),
        (
            "Flask view call in a request context",
            [
                "an empty decorator (`functools.wraps` pass-through)",
                "a decorator reading `current_app`, `request.headers` and `g` once each",
                "a hand-written check (the customer loader, then `has_feature`, in a decorator)",
            ],
        ),
        (
            "Starlette raw call, a middleware",
            ["a pass-through ASGI middleware", "a hand-written ASGI middleware (the customer, then `ahas_feature`)"],
        ),
        (
            "Starlette endpoint, a decorator",
            [
                "an empty async decorator (`functools.wraps`)",
                "a hand-written check (the customer, then `ahas_feature`, in a decorator)",
            ],
        ),
        ("FastAPI path operation, a dependency", ["a no-op dependency (`Depends(no_op)`)"]),
    ],
)
def test_each_adapter_is_timed_beside_the_floor_its_framework_sets(report: str, gate: str, floors: list[str]) -> None:
    for floor in floors:
        assert f"| 2 view | {gate}: added by {floor} | " in report
    assert f"| 2 view | {gate}: added by entitlegate | " in report


@pytest.mark.parametrize(
    ("measurement", "goal"),
    [
        ("MemoryCache hit / floor in a function", "<= 2.5x"),
        ("awaited hit / awaited floor", "<= 2x"),
        ("Django RequestFactory + view call: added by entitlegate", "<= 0.8 µs"),
        ("Flask view call in a request context: added by entitlegate", "<= 2 µs"),
        ("Starlette raw call, a middleware: added by entitlegate", "<= 1.5 µs"),
        ("Starlette endpoint, a decorator: added by entitlegate", "<= 1.5 µs"),
        ("Django test client: gated overhead", "<= 2 %"),
        ("Flask test client: gated overhead", "<= 2 %"),
    ],
)
def test_each_goal_of_issue_17_is_held_to_in_the_closing_notes(report: str, measurement: str, goal: str) -> None:
    notes = report.split("## Goals:")[1]
    assert f"- {measurement}: " in notes
    assert f" against {goal}: " in notes.split(f"- {measurement}: ")[1].splitlines()[0]


def test_the_hit_is_measured_over_a_thousand_customers(report: str) -> None:
    row = next(
        line for line in report.splitlines() if line.startswith("| 1 hit | MemoryCache hit / floor in a function |")
    )
    assert "over 1,000 customers" in row


def test_report_names_the_command_and_the_machine(report: str) -> None:
    first_line = report.splitlines()[2]
    assert first_line.startswith("`python -m bench --quick` on ")
    assert " cores, " in first_line


@pytest.mark.parametrize(
    "measurement",
    [
        "webhook to every process (4 on a 3-master cluster): p99",
        "PUBLISH to a subscriber on another master: p99",
        "SPUBLISH to a subscriber on its shard: p99",
        "in process (MemoryCache), 20,000 customers: `has_feature` hit",
        "in process (MemoryCache), 20,000 customers: bytes per customer",
        "Redis `used_memory` for 10,000 customers",
        "webhooks applied per second, 1 process",
        "webhooks applied per second, 4 processes",
    ],
)
def test_the_scale_section_reports_its_rows(report: str, measurement: str) -> None:
    assert f"| {measurement} |" in report


def test_every_instruction_count_target_runs_and_is_let_through() -> None:
    # make bench-instructions runs each target under callgrind; here each runs a few times
    # without it, in a child (Django's settings belong to a whole process), raising if a gate
    # or a floor refused its request.
    child = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--run", "all", "3"], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
