"""entitlegate.registry: every lookup_key and limit name a requirement was built with, in this process."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest

from entitlegate import registry
from entitlegate.gate import Requirement, Rules
from entitlegate.limits import LimitRequirement


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # the registry is per process: names no other test uses


def test_a_requirement_registers_its_lookup_keys_when_built() -> None:
    needed, either, other = _name("reports"), _name("export"), _name("sso")
    Requirement.of(needed, any_of=(either, other))
    assert {needed, either, other} <= registry.names()
    assert {needed, either, other} <= registry.lookup_keys()


def test_path_rules_register_their_lookup_keys() -> None:
    key = _name("pro")
    Rules({"/pro": key})
    assert key in registry.lookup_keys()


def test_a_limit_requirement_registers_its_limit_name() -> None:
    name = _name("seats")
    requirement = LimitRequirement(name, 3)
    assert name in registry.limit_names()
    assert name in registry.names()
    assert name not in registry.lookup_keys()
    assert requirement.needed() == 3


def test_a_limit_requirement_takes_a_need_computed_per_request() -> None:
    requirement = LimitRequirement(_name("seats"), lambda request: len(request))
    assert requirement.needed([1, 2]) == 2
    assert requirement.missing({requirement.name: 1}, 2)
    assert not requirement.missing({requirement.name: 2}, 2)


@pytest.mark.parametrize("need", [-1, True, 1.5, "2"])
def test_a_limit_requirement_refuses_a_need_that_is_not_a_whole_number(need: object) -> None:
    with pytest.raises(ValueError, match="need"):
        LimitRequirement("seats", need)  # type: ignore[arg-type]


def test_a_need_callable_returning_a_bad_value_is_refused() -> None:
    requirement = LimitRequirement("seats", lambda: -3)
    with pytest.raises(ValueError, match="need"):
        requirement.needed()


def test_a_blank_limit_name_is_refused_and_not_registered() -> None:
    with pytest.raises(ValueError, match="limit name"):
        LimitRequirement(" ", 1)
    assert " " not in registry.names()


def test_a_refused_requirement_registers_nothing() -> None:
    good = _name("good")
    with pytest.raises(ValueError, match="non-blank"):
        Requirement.of(good, "")
    assert good not in registry.names()


def test_threads_registering_at_once_lose_no_name() -> None:
    names = [[_name(f"t{thread}") for _ in range(200)] for thread in range(8)]
    start = threading.Barrier(8)

    def build(mine: list[str]) -> None:
        start.wait()
        for key in mine:
            Requirement.of(key)

    threads = [threading.Thread(target=build, args=(mine,)) for mine in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {key for mine in names for key in mine} <= registry.lookup_keys()


def test_the_registry_imports_no_web_framework() -> None:
    code = (
        "import sys, entitlegate.registry, entitlegate.limits, entitlegate.gate;"
        "print(sorted({'django', 'flask', 'starlette', 'fastapi'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_framework_decorator_registers_through_its_requirement() -> None:
    from entitlegate_flask import requires_feature

    key = _name("flask-gated")

    @requires_feature(key)
    def view() -> str:
        return "ok"

    assert key in registry.names()
