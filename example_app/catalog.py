"""What the example apps gate, the plans and their seats, and the demo customers in ``customers.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entitlegate.catalog import Limit, parse_limit
from entitlegate.limits import LimitRequirement

__all__ = [
    "ADD_SEAT",
    "CUSTOMERS_FILE",
    "EXPORTS",
    "PAGES",
    "PLANS",
    "SEATS",
    "TEAM",
    "Page",
    "demo_customers",
    "grantable",
    "granted",
    "page_needing",
    "plan_seats",
    "shown",
    "upgrade_for",
]

#: The fixture every app reads (``StaticSource.from_file``): ``customers`` maps a Stripe customer
#: id to the lookup_keys of its active entitlements; ``features`` gives each Feature's metadata,
#: where a plan keeps its number of seats, as it would in Stripe.
CUSTOMERS_FILE = Path(__file__).with_name("customers.json")

#: The limit the team page shows and "add a seat" needs, read from the Features' metadata.
SEATS = "seats"
#: Every demo customer's team: three colleagues, one seat each (the demo stores nothing).
TEAM = ("Ada", "Grace", "Linus")
#: "Add a seat" needs one seat more than the team has: 4, which Starter (3) refuses and Pro (25) allows.
ADD_SEAT = LimitRequirement(SEATS, len(TEAM) + 1)
#: The meter the exports page counts against, and the limit (the plan's Feature metadata) it is
#: allowed while within: Starter 3 exports a period, Pro 100, Enterprise unlimited.
EXPORTS = "exports"
#: The plans, cheapest first: a plan is a Feature whose metadata says how many seats it gives.
PLANS = ("starter-plan", "pro-plan", "enterprise-plan")


@dataclass(frozen=True, slots=True)
class Page:
    """A gated page: its URL name (``/seats`` or Django's ``/seats/``) and the feature it needs."""

    name: str
    feature: str
    title: str
    blurb: str


PAGES = (
    Page("seats", "seats-feature", "Team seats", "Invite your team: one seat per colleague."),
    Page("analytics", "analytics", "Analytics", "Charts of everything your team did this month."),
)


def page_needing(feature: str) -> Page | None:
    """The page gated on ``feature``, or None when no page is (so no button may grant it)."""
    return next((page for page in PAGES if page.feature == feature), None)


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CUSTOMERS_FILE.read_text(encoding="utf-8"))
    return data


def demo_customers() -> dict[str, list[str]]:
    """The fixture's customers and their features, for the sign-in form and the walkthrough."""
    customers: dict[str, list[str]] = _fixture()["customers"]
    return customers


def plan_seats() -> dict[str, Limit]:
    """Each plan's seats, as the fixture's Feature metadata gives them (``math.inf``: unlimited)."""
    features = _fixture()["features"]
    return {plan: parse_limit(features[plan][SEATS]) or 0 for plan in PLANS}


def upgrade_for(feature: str, need: int | None = None) -> str | None:
    """What the upgrade button grants a customer denied ``feature``: the page's feature, or the
    cheapest plan with ``need`` seats when the denial is the seat limit; None when nothing would."""
    if need is None:
        page = page_needing(feature)
        return None if page is None else page.feature
    if feature != SEATS:
        return None
    return next((plan for plan, seats in plan_seats().items() if seats >= need), None)


def grantable(lookup_key: str) -> bool:
    """Whether the upgrade button may grant ``lookup_key``: a gated page's feature, or a plan."""
    return page_needing(lookup_key) is not None or lookup_key in PLANS


def granted(held: Iterable[str], lookup_key: str) -> list[str]:
    """The customer's features once the upgrade button grants ``lookup_key``: a plan replaces the plan held."""
    kept = {key for key in held if lookup_key not in PLANS or key not in PLANS}
    return sorted(kept | {lookup_key})


def shown(limit: Limit) -> str:
    """A limit as a page shows it: ``3``, or ``unlimited``."""
    return "unlimited" if limit == math.inf else str(int(limit))
