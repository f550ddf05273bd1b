"""``make bench`` must keep working: every section runs with tiny counts (figures meaningless).

No timing is asserted here: only that each section runs to the end and reports its rows.
"""

from __future__ import annotations

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.redis  # the bench starts a redis-server of its own


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    assert main(["--quick", "--output", str(output)]) == 0
    return output.read_text()


@pytest.mark.parametrize(
    "section", ["| 1 hit |", "| 2 view |", "| 3 cold miss |", "| 4 propagation |", "| 5 memory |", "| 6 Redis outage |"]
)
def test_every_section_reports_rows(report: str, section: str) -> None:
    assert section in report


@pytest.mark.parametrize(
    "measurement",
    [
        "floor: `k in d[c]` inline",
        "MemoryCache `has_feature`",
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
