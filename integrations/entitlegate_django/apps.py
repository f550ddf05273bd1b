"""The Django app: label ``entitlegate``, system checks registered on ready."""

from __future__ import annotations

from django.apps import AppConfig


class EntitlegateConfig(AppConfig):
    """Registers entitlegate's system checks. Nothing is built until a request needs it."""

    name = "entitlegate_django"
    label = "entitlegate"
    verbose_name = "entitlegate"

    def ready(self) -> None:
        from entitlegate_django import checks  # noqa: F401 - registers the checks
