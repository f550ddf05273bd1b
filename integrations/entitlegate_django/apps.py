"""The Django app: label ``entitlegate``; the settings' keys checked at start-up, checks registered."""

from __future__ import annotations

from django.apps import AppConfig


class EntitlegateConfig(AppConfig):
    """Checks the ``ENTITLEGATE`` keys and registers the system checks. Builds nothing else yet.

    ``ready`` runs wherever Django starts (``manage.py``, uvicorn, gunicorn: servers never run
    ``manage.py check``), so an unknown key, which would silently turn a setting off, stops the
    site there with ``ImproperlyConfigured``. The values are read when first used (or when the
    middleware loads), so nothing talks to Stripe or Redis here.
    """

    name = "entitlegate_django"
    label = "entitlegate"
    verbose_name = "entitlegate"

    def ready(self) -> None:
        from entitlegate_django import checks, conf  # noqa: F401 - checks registers the checks

        conf.read_keys(conf.raw_settings())
