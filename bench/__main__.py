"""``make bench``: every benchmark side by side in one run; prints the table, writes RESULTS.md."""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

from bench import core
from bench._timing import Row, machine, table

SECTIONS = [("in-process hit", core.run)]


def main() -> int:
    started = time.monotonic()
    rows: list[Row] = []
    for title, run in SECTIONS:
        print(f"running: {title} …", file=sys.stderr, flush=True)
        rows.extend(run())
    elapsed = time.monotonic() - started
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join(
        [
            "# entitlegate benchmark results",
            "",
            f"`make bench` on {when}, {machine()}; {elapsed:.0f} s.",
            "Medians of repeated runs; spread is min-max of those runs (or p99 where noted).",
            "",
            table(rows),
            "",
        ]
    )
    print(report)
    Path(__file__).with_name("RESULTS.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
