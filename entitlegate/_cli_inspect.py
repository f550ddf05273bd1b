"""``entitlegate inspect CUSTOMER``: what every tier holds for a customer, what Stripe says now, and the difference.

Read-only: it asks Stripe directly (not through the resolver) and writes nothing to the cache,
so looking at a customer never changes what a check answers. The tiers are this process's copy
(a local copy of a Redis entry, or a :class:`~entitlegate.MemoryCache` entry) and the Redis
entry. Exit 1 when a tier that answers checks now (a fresh one) differs from Stripe, or Redis
does not answer; exit 2 when Stripe does not (the tiers are shown all the same).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from entitlegate._cli_context import FINDING, OK, Context, UsageError, Verb, cache_option, redis_cache_of
from entitlegate.cache._base import Entry
from entitlegate.catalog import Limit
from entitlegate.errors import SourceUnavailable
from entitlegate.resolver import Resolver

__all__ = ["INSPECT"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer", metavar="CUSTOMER", help="the Stripe customer id (cus_…)")
    parser.add_argument(
        "--feature",
        metavar="KEY",
        help="also say whether each tier holds this lookup_key, and what a check would answer now",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    cache_option(parser)


def _inspect(context: Context) -> int:
    customer = context.args.customer
    if not customer.strip():
        raise UsageError("CUSTOMER must be a Stripe customer id (cus_…)")
    resolver = context.resolver()
    cache = resolver.cache
    tiers: dict[str, dict[str, Any] | None] = {}
    local = cache.peek(customer)  # before get: reading Redis keeps a local copy
    redis_cache = redis_cache_of(cache)
    if redis_cache is not None:
        tiers["local"] = _tier(local)
        held = cache.get(customer)
        if redis_cache._breaker.down:  # get() answers from the local copy when Redis fails
            tiers["redis"] = {"error": f"Redis at {redis_cache.location} did not answer"}
        else:
            tiers["redis"] = _tier(held)
    elif context.given is not None or context.cache() is not None:
        tiers["local"] = _tier(local)
    stripe_now = _stripe_now(resolver, customer)
    limits = _limits_of(resolver, tiers, stripe_now)
    report: dict[str, Any] = {
        "customer": customer,
        "tiers": tiers,
        "stripe": stripe_now,
        "difference": _differences(tiers, stripe_now),
    }
    if limits is not None:
        report["limits"] = limits
    feature = context.args.feature
    if feature is not None:
        report["feature"] = feature
        report["check"] = _check_now(resolver, tiers, stripe_now, feature)
    if context.args.json:
        print(json.dumps(report, sort_keys=True), file=context.out)
    else:
        _print(context, report, cache_named=bool(tiers))
    if "error" in stripe_now:
        raise UsageError(f"cannot ask Stripe about {customer}: {stripe_now['error']}")
    wrong = any(
        tier is not None and ("error" in tier or (tier["fresh"] and name in report["difference"]))
        for name, tier in tiers.items()
    )
    return FINDING if wrong else OK


def _tier(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    now, wall = time.monotonic(), time.time()
    return {
        "features": sorted(entry.features),
        "version": _utc(entry.version),
        "age": _seconds(wall - entry.version),
        "fresh": entry.expires > now,
        "ttl_left": _seconds(entry.expires - now) if entry.expires > now else 0.0,
        "stale_left": _seconds(entry.stale_until - now) if entry.stale_until > now else 0.0,
    }


def _stripe_now(resolver: Resolver, customer: str) -> dict[str, Any]:
    try:
        return {"features": sorted(resolver.source.fetch(customer))}
    except SourceUnavailable as error:
        return {"error": str(error)}


def _limits_of(
    resolver: Resolver, tiers: Mapping[str, dict[str, Any] | None], stripe_now: Mapping[str, Any]
) -> dict[str, dict[str, str]] | None:
    """Each tier's limits (and Stripe's), when the account's features carry any; else None."""
    sets = {name: tier["features"] for name, tier in tiers.items() if tier is not None and "features" in tier}
    if "features" in stripe_now:
        sets["stripe"] = stripe_now["features"]
    try:
        catalog = resolver.catalog
        shown = {name: _shown(catalog.limits_for(frozenset(keys))) for name, keys in sets.items()}
    except (TypeError, SourceUnavailable):  # a source without a catalog, or Stripe down
        return None
    return shown if any(shown.values()) else None


def _shown(limits: Mapping[str, Limit]) -> dict[str, str]:
    return {name: "unlimited" if value == math.inf else str(int(value)) for name, value in sorted(limits.items())}


def _differences(tiers: Mapping[str, dict[str, Any] | None], stripe_now: Mapping[str, Any]) -> dict[str, Any]:
    if "features" not in stripe_now:
        return {}
    truth = set(stripe_now["features"])
    differences: dict[str, Any] = {}
    for name, tier in tiers.items():
        if tier is None or "features" not in tier:
            continue
        held = set(tier["features"])
        if held != truth:
            differences[name] = {"only_here": sorted(held - truth), "only_at_stripe": sorted(truth - held)}
    return differences


def _check_now(
    resolver: Resolver, tiers: Mapping[str, dict[str, Any] | None], stripe_now: Mapping[str, Any], feature: str
) -> dict[str, Any]:
    """What ``explain`` would answer now, worked out without asking through the resolver."""
    for name in ("local", "redis"):
        tier = tiers.get(name)
        if tier is not None and "features" in tier and tier["fresh"]:
            return {"allowed": feature in tier["features"], "source": "cache", "from": name}
    if "features" in stripe_now:
        return {"allowed": feature in stripe_now["features"], "source": "source", "from": "stripe"}
    for name in ("local", "redis"):
        tier = tiers.get(name)
        if tier is not None and "features" in tier and (tier["stale_left"] is None or tier["stale_left"] > 0):
            return {"allowed": feature in tier["features"], "source": "stale", "from": name}
    if resolver.on_unavailable == "raise":
        return {"allowed": None, "source": "policy", "from": "on_unavailable='raise': SourceUnavailable (503)"}
    return {"allowed": resolver.on_unavailable == "allow", "source": "policy", "from": resolver.on_unavailable}


def _print(context: Context, report: Mapping[str, Any], *, cache_named: bool) -> None:
    out = context.out
    feature = report.get("feature")
    limits = report.get("limits") or {}
    print(f"customer {report['customer']}", file=out)
    names = {"local": "local copy (this process)", "redis": "Redis entry"}
    if not cache_named:
        print("\nno cache to look at (--cache URL or $ENTITLEGATE_CACHE): only what Stripe says", file=out)
    for name, tier in report["tiers"].items():
        print(f"\n{names[name]}:", file=out)
        if tier is None:
            print("  none", file=out)
            continue
        if "error" in tier:
            print(f"  {tier['error']}", file=out)
            continue
        _print_set(context, tier["features"], limits.get(name), feature)
        print(f"  version     {tier['version']}  (age {_duration(tier['age'])})", file=out)
        if tier["fresh"]:
            print(f"  fresh for   {_duration(tier['ttl_left'])}", file=out)
        else:
            print("  fresh for   0 s (expired or invalidated: the next check asks Stripe)", file=out)
        print(f"  stale window {_duration(tier['stale_left'])} left (served while Stripe is down)", file=out)
    print("\nStripe now:", file=out)
    stripe_now = report["stripe"]
    if "error" in stripe_now:
        print(f"  did not answer: {stripe_now['error']}", file=out)
    else:
        _print_set(context, stripe_now["features"], limits.get("stripe"), feature)
    differences = report["difference"]
    if "features" in stripe_now:
        if not differences:
            print("\ndifference: none", file=out)
        for name, difference in differences.items():
            parts = [f"{key} only in the {names[name].split(' (')[0]}" for key in difference["only_here"]]
            parts += [f"{key} only at Stripe" for key in difference["only_at_stripe"]]
            print(f"\ndifference ({names[name]}): " + "; ".join(parts), file=out)
    check = report.get("check")
    if check is not None:
        answer = {True: "allowed", False: "denied", None: "SourceUnavailable (503)"}[check["allowed"]]
        print(f"\na check of {feature!r} now: {answer} (source {check['source']!r}, from {check['from']})", file=out)


def _print_set(context: Context, features: list[str], limits: Mapping[str, str] | None, feature: str | None) -> None:
    print(f"  features    {', '.join(features) or '(none)'}", file=context.out)
    if limits:
        print(f"  limits      {', '.join(f'{k}={v}' for k, v in limits.items())}", file=context.out)
    if feature is not None:
        print(f"  {feature}: {'yes' if feature in features else 'no'}", file=context.out)


def _utc(version: float) -> str | None:
    if not math.isfinite(version):
        return None
    return datetime.fromtimestamp(version, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float) -> float | None:
    """Seconds to one decimal; None for ever (JSON has no infinity)."""
    return round(value, 1) if math.isfinite(value) else None if value > 0 else 0.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "for ever"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


INSPECT = Verb(
    "inspect",
    "show what every cache tier and Stripe hold for a customer, and the difference",
    _arguments,
    _inspect,
)
