"""Section 1a: ``has_feature`` on an in-process hit, beside the floor."""

from __future__ import annotations

import asyncio

from bench._timing import Row, batch_row, ns_row
from entitlegate import MemoryCache, Resolver, StaticSource

FEATURES = ["seats-feature", "analytics", "export", "sso", "audit-log"]
_CALLS = 200_000


def run() -> list[Row]:
    """The floor (a dict lookup + frozenset membership), inline and in a function, beside hits."""
    table = {"cus_1": frozenset(FEATURES)}

    def floor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    async def afloor(customer: str, lookup_key: str) -> bool:
        return lookup_key in table[customer]

    resolver = Resolver(StaticSource({"cus_1": FEATURES}), MemoryCache())
    resolver.features("cus_1")
    names = {"d": table, "floor": floor, "has": resolver.has_feature, "c": "cus_1", "k": "analytics"}

    async def awaited(check: object) -> None:
        for _ in range(_CALLS):
            await check("cus_1", "analytics")  # type: ignore[operator]

    return [
        ns_row("1 hit", "floor: `k in d[c]` inline", "k in d[c]", globals_=names, number=1_000_000),
        ns_row("1 hit", "floor: the same in a function", "floor(c, k)", globals_=names, number=1_000_000),
        ns_row("1 hit", "MemoryCache `has_feature`", "has(c, k)", globals_=names, number=1_000_000),
        batch_row("1 hit", "floor: the same in an awaited `async def`", lambda: asyncio.run(awaited(afloor)), _CALLS),
        batch_row(
            "1 hit", "MemoryCache `ahas_feature` (awaited)", lambda: asyncio.run(awaited(resolver.ahas_feature)), _CALLS
        ),
    ]
