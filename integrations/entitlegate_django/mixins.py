"""``FeatureRequiredMixin``: gate a class-based view on features, like ``PermissionRequiredMixin``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from entitlegate.gate import Requirement
from entitlegate_django.responses import aenforce, enforce

__all__ = ["FeatureRequiredMixin"]

if TYPE_CHECKING:
    from django.views import View

    _Base = View
else:
    _Base = object


class FeatureRequiredMixin(_Base):
    """Deny a class-based view to customers without ``required_features`` (all of them).

    Set ``required_features = ("a", "b")`` and/or ``any_of_features = ("c", "d")`` (at least one),
    or override :meth:`get_feature_requirement`. Put the mixin first among the bases. Denials
    behave as for :func:`~entitlegate_django.requires_feature`; async views (every handler
    ``async def``) are checked without leaving the event loop on a cache hit.
    """

    required_features: Sequence[str] = ()
    any_of_features: Sequence[str] = ()
    # Per class, decided on the first request: whether the view is async, and the requirement
    # built from the two attributes (rebuilt only when they are other objects, e.g. as_view(...)).
    _features_async: ClassVar[bool | None] = None
    _features_built: ClassVar[tuple[object, object, Requirement] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Built when the class is defined, so its lookup_keys are in entitlegate.registry before
        # any request: `manage.py check --deploy` (W020) and `python -m entitlegate check` see CBVs.
        # A wrong value is left for the first request to report (ImproperlyConfigured), as before.
        super().__init_subclass__(**kwargs)
        required, any_of = cls.required_features, cls.any_of_features
        if (required or any_of) and not isinstance(required, str) and not isinstance(any_of, str):
            with contextlib.suppress(TypeError, ValueError):
                cls._features_built = (required, any_of, Requirement.of(*required, any_of=any_of))

    def get_feature_requirement(self) -> Requirement:
        """The features this view needs; by default from the two attributes."""
        cls = type(self)
        built = cls.__dict__.get("_features_built")
        if built is not None and built[0] is self.required_features and built[1] is self.any_of_features:
            requirement: Requirement = built[2]
            return requirement
        if isinstance(self.required_features, str) or isinstance(self.any_of_features, str):
            raise ImproperlyConfigured(
                f"{cls.__name__}.required_features and any_of_features must be lists of lookup_keys, not strings"
            )
        try:
            requirement = Requirement.of(*self.required_features, any_of=self.any_of_features)
        except ValueError as error:
            raise ImproperlyConfigured(f"{cls.__name__}: {error}") from None
        cls._features_built = (self.required_features, self.any_of_features, requirement)
        return requirement

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        cls = type(self)
        is_async = cls.__dict__.get("_features_async")
        if is_async is None:
            # Once per class, as View.as_view decides whether the view is async.
            is_async = cls._features_async = bool(self.view_is_async)
        if is_async:
            return self._adispatch(request, *args, **kwargs)
        denial = enforce(request, self.get_feature_requirement())
        if denial is not None:
            return denial
        return super().dispatch(request, *args, **kwargs)

    async def _adispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        denial = await aenforce(request, self.get_feature_requirement())
        if denial is not None:
            return denial
        # An async view's handlers return coroutines, which View.dispatch passes on.
        handled: Any = super().dispatch(request, *args, **kwargs)
        response: HttpResponseBase = await handled
        return response
