"""The Stripe source's timeout and retries: ENTITLEGATE keys, checked by the system checks by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import checks

from entitlegate import StripeSource
from entitlegate_django.conf import get_resolver


@pytest.mark.parametrize(
    ("key", "wrong"),
    [("STRIPE_TIMEOUT", 0), ("STRIPE_TIMEOUT", "3 s"), ("STRIPE_MAX_RETRIES", -1), ("STRIPE_MAX_RETRIES", True)],
)
def test_a_wrong_timeout_or_retry_count_is_reported_naming_the_key(
    configure: Callable[..., None], key: str, wrong: Any
) -> None:
    configure(**{key: wrong})
    errors = [m for m in checks.run_checks() if (m.id or "").startswith("entitlegate.")]
    assert [m.id for m in errors] == ["entitlegate.E010"]
    assert f"ENTITLEGATE['{key}']" in errors[0].msg


def test_the_timeout_and_retries_reach_the_source(configure: Callable[..., None]) -> None:
    configure(STRIPE_TIMEOUT=1.5, STRIPE_MAX_RETRIES=0)
    source = get_resolver().source
    assert isinstance(source, StripeSource)
    assert (source._timeout, source._max_retries) == (1.5, 0)
