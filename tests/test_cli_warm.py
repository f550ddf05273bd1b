"""``entitlegate warm``, as a real subprocess against the fake Stripe and a real Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests import test_cli_inspect
from tests.fake_stripe import ACTIVE_ENTITLEMENTS, CUSTOMERS, FakeStripe
from tests.polling import wait_for
from tests.test_cli import ROOT, environment, run

redis_url = test_cli_inspect.redis_url  # the fixture: the session's redis-server, empty
PREFIX = b"entitlegate:test:-:"


def cached(url: str) -> set[str]:
    with redis.Redis.from_url(url) as client:
        return {key.removeprefix(PREFIX).decode() for key in client.keys(PREFIX + b"cus_*")}


def customers_file(tmp_path: Path, fake: FakeStripe, count: int) -> Path:
    names = [f"cus_{number:04d}" for number in range(count)]
    for name in names:
        fake.set_customer(name, ["analytics"])
    path = tmp_path / "customers.txt"
    path.write_text("# launch list\n" + "\n".join(names) + "\n\n")
    return path


def test_warm_stores_every_customer_of_the_file_and_forgets_its_state(
    fake_stripe: FakeStripe, redis_url: str, tmp_path: Path
) -> None:
    path = customers_file(tmp_path, fake_stripe, 5)
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cached(redis_url) == {f"cus_{number:04d}" for number in range(5)}
    assert "warmed 5 customers" in done.stdout
    assert not Path(f"{path}.warm-state").exists()


def test_warm_all_customers_pages_through_the_account(fake_stripe: FakeStripe, redis_url: str, tmp_path: Path) -> None:
    for number in range(130):
        fake_stripe.set_customer(f"cus_{number:04d}", [])
    done = run(fake_stripe, "warm", "--all-customers", "--cache", redis_url, "--rate", "100", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(cached(redis_url)) == 130
    assert fake_stripe.calls(CUSTOMERS) == 2


def test_warm_keeps_to_its_rate(fake_stripe: FakeStripe, redis_url: str, tmp_path: Path) -> None:
    path = customers_file(tmp_path, fake_stripe, 6)
    started = time.monotonic()
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "10")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 0.5  # six at 10/s: five intervals of 0.1 s at least


def test_warm_draws_a_progress_bar_on_stderr_when_asked(
    fake_stripe: FakeStripe, redis_url: str, tmp_path: Path
) -> None:
    path = customers_file(tmp_path, fake_stripe, 3)
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100", "--progress")
    assert "warming [##########--------------------] 1/3 cus_0000" in done.stderr  # \r read as a newline
    assert "] 3/3 " in done.stderr
    quiet = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100")
    assert "warming [" not in quiet.stderr  # not a TTY


def test_warm_reports_failures_at_the_end_and_retries_them_next_time(
    fake_stripe: FakeStripe, redis_url: str, tmp_path: Path
) -> None:
    path = customers_file(tmp_path, fake_stripe, 3)
    fake_stripe.set_customer("cus_0001", [42])  # an answer no lookup_key can be read from
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100")
    assert done.returncode == 1
    assert "1 failed" in done.stdout
    assert "  cus_0001: " in done.stdout
    assert cached(redis_url) == {"cus_0000", "cus_0002"}
    fake_stripe.set_customer("cus_0001", ["analytics"])
    fake_stripe.requests.clear()
    again = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100")
    assert again.returncode == 0, again.stdout
    assert fake_stripe.count_by_customer() == {"cus_0001": 1}


def test_a_ctrl_c_stops_warm_and_a_rerun_continues_where_it_stopped(
    fake_stripe: FakeStripe, redis_url: str, tmp_path: Path
) -> None:
    path = customers_file(tmp_path, fake_stripe, 30)
    state = Path(f"{path}.warm-state")
    command = [sys.executable, "-m", "entitlegate", "warm", "--customers", str(path), "--cache", redis_url]
    process = subprocess.Popen(
        [*command, "--rate", "20"],
        cwd=ROOT,
        env=environment(fake_stripe),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: state.exists() and len(state.read_text().split()) >= 5, timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted: " in stderr
    assert "run the same command again to continue" in stderr
    warmed_first = set(state.read_text().split())
    assert 5 <= len(warmed_first) < 30

    fake_stripe.requests.clear()
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, "--rate", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming: {len(warmed_first)} of 30 customers warmed" in done.stderr
    asked_again = set(fake_stripe.count_by_customer())
    assert not asked_again & warmed_first
    assert asked_again | warmed_first == {f"cus_{number:04d}" for number in range(30)}
    assert len(cached(redis_url)) == 30
    assert not state.exists()


def test_warm_without_a_shared_cache_is_a_usage_error(fake_stripe: FakeStripe, tmp_path: Path) -> None:
    path = customers_file(tmp_path, fake_stripe, 1)
    done = run(fake_stripe, "warm", "--customers", str(path))
    assert done.returncode == 2
    assert "warm fills a shared cache" in done.stderr


def test_warm_with_a_rejected_key_stops_at_once_without_echoing_it(
    fake_stripe: FakeStripe, redis_url: str, tmp_path: Path
) -> None:
    path = customers_file(tmp_path, fake_stripe, 3)
    wrong = "sk_test_wrong_0123456789abcdef"
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url, env={"STRIPE_API_KEY": wrong})
    assert done.returncode == 2
    assert "Stripe rejected the API key" in done.stderr
    assert "0123456789" not in done.stdout + done.stderr
    assert fake_stripe.calls(ACTIVE_ENTITLEMENTS) == 0


def test_warm_with_stripe_down_says_so(fake_stripe: FakeStripe, redis_url: str, tmp_path: Path) -> None:
    path = customers_file(tmp_path, fake_stripe, 3)
    fake_stripe.always_fail = 503
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", redis_url)
    assert done.returncode == 2
    assert "Stripe did not" in done.stderr


@pytest.mark.parametrize("rate", ["0", "101", "-3"])
def test_a_rate_out_of_stripes_limits_is_a_usage_error(fake_stripe: FakeStripe, tmp_path: Path, rate: str) -> None:
    path = customers_file(tmp_path, fake_stripe, 1)
    done = run(fake_stripe, "warm", "--customers", str(path), "--rate", rate, "--cache", "redis://127.0.0.1:1")
    assert done.returncode == 2
    assert "--rate must be" in done.stderr


def test_warm_has_help(fake_stripe: FakeStripe) -> None:
    done = run(fake_stripe, "warm", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: entitlegate warm")
    assert "--rate" in done.stdout


def test_warm_with_redis_down_reports_every_customer_as_not_stored(fake_stripe: FakeStripe, tmp_path: Path) -> None:
    path = customers_file(tmp_path, fake_stripe, 2)
    done = run(fake_stripe, "warm", "--customers", str(path), "--cache", "redis://127.0.0.1:1/0", "--rate", "100")
    assert done.returncode == 1
    assert "2 failed" in done.stdout
    assert "cus_0000: Redis at redis://127.0.0.1:1/0 did not take it" in done.stdout
    assert Path(f"{path}.warm-state").read_text() == ""  # nothing counted as done
