"""What the example apps gate, and the demo customers in ``customers.json`` they gate it for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CUSTOMERS_FILE", "PAGES", "Page", "demo_customers", "page_needing"]

#: The fixture every app reads: Stripe customer id -> the lookup_keys of its active entitlements.
CUSTOMERS_FILE = Path(__file__).with_name("customers.json")


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


def demo_customers() -> dict[str, list[str]]:
    """The fixture's customers and their features, for the sign-in form and the walkthrough."""
    data: dict[str, list[str]] = json.loads(CUSTOMERS_FILE.read_text(encoding="utf-8"))
    return data
