"""Helpers for the tests of Django sites that use entitlegate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.test.utils import TestContextDecorator

from entitlegate import testing
from entitlegate_django.conf import get_resolver

__all__ = ["override_features"]


class override_features(TestContextDecorator):  # noqa: N801 - reads like Django's override_settings
    """Pin customers' features on the site's resolver: ``@override_features({"cus_1": {"x"}})``.

    :func:`entitlegate.testing.override_features` on the resolver the settings build, found when
    it is entered. Like ``override_settings`` it is a context manager, a decorator of sync and
    async tests, and a class decorator of a ``TestCase`` (each test runs with the pins, set in
    ``setUp`` and undone after it). Enter it after any ``override_settings`` that changes
    ``ENTITLEGATE``: a settings change builds a new resolver, without the pins.
    """

    def __init__(self, features: Mapping[str, Iterable[str]]) -> None:
        super().__init__()
        self._pins = testing.override_features(get_resolver, features)
        self.features = self._pins.features

    def enable(self) -> testing.override_features:
        """Pin the features (what ``with`` and each decorated test do first)."""
        return self._pins.__enter__()

    def disable(self) -> None:
        """Undo the innermost :meth:`enable`."""
        self._pins.__exit__(None, None, None)
