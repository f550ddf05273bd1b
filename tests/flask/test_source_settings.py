"""The Stripe source's timeout and retries: ENTITLEGATE_* keys, checked at init_app by name."""

from __future__ import annotations

import pytest

from entitlegate import StripeSource
from tests.flask.conftest import AppFactory


@pytest.mark.parametrize(
    ("key", "wrong"),
    [("STRIPE_TIMEOUT", 0), ("STRIPE_TIMEOUT", "3 s"), ("STRIPE_MAX_RETRIES", -1), ("STRIPE_MAX_RETRIES", 2.5)],
)
def test_a_wrong_timeout_or_retry_count_fails_init_app_naming_the_key(
    make_app: AppFactory, key: str, wrong: object
) -> None:
    with pytest.raises(ValueError, match=f"^ENTITLEGATE_{key} "):
        make_app(**{f"ENTITLEGATE_{key}": wrong})


def test_the_timeout_and_retries_reach_the_source(make_app: AppFactory) -> None:
    app = make_app(ENTITLEGATE_STRIPE_TIMEOUT=1.5, ENTITLEGATE_STRIPE_MAX_RETRIES=0)
    source = app.extensions["entitlegate"].resolver.source
    assert isinstance(source, StripeSource)
    assert (source._timeout, source._max_retries) == (1.5, 0)
