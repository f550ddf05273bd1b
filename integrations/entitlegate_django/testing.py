"""Helpers for the tests of Django sites that use entitlegate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from entitlegate import testing
from entitlegate_django.conf import get_resolver

__all__ = ["override_features"]


def override_features(features: Mapping[str, Iterable[str]]) -> testing.override_features:
    """Pin customers' features on the site's resolver: ``@override_features({"cus_1": {"x"}})``.

    :func:`entitlegate.testing.override_features` on the resolver the settings build, found when
    it is entered, so it works as a decorator on sync and async tests and inside
    ``override_settings`` (enter it after any ``override_settings`` that changes ``ENTITLEGATE``:
    a settings change builds a new resolver, without the pins).
    """
    return testing.override_features(get_resolver, features)
