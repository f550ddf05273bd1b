"""Gate Django views on the Stripe entitlements a customer holds.

Add ``"entitlegate_django"`` to ``INSTALLED_APPS``, configure the ``ENTITLEGATE`` settings dict,
and decorate views with :func:`requires_feature` (or use :class:`FeatureRequiredMixin`),
:func:`requires_limit` and :func:`requires_usage`.
"""

try:
    import django  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a Django-less environment
    raise ImportError(
        'entitlegate_django needs Django, which is not installed: pip install "entitlegate[django]"'
    ) from error

from entitlegate_django.conf import get_resolver
from entitlegate_django.decorators import requires_feature, requires_limit, requires_usage
from entitlegate_django.denied import FeatureDenied
from entitlegate_django.mixins import FeatureRequiredMixin

__all__ = [
    "FeatureDenied",
    "FeatureRequiredMixin",
    "get_resolver",
    "requires_feature",
    "requires_limit",
    "requires_usage",
]
