"""``Entitlements`` (alias ``EntitlementsExtension``): the Flask extension, in the Flask-Login pattern.

The extension only configures: it builds each app's :class:`~entitlegate_flask._state.State` and
registers the site's callables. The per-request answers are
:data:`~entitlegate_flask.current.current_entitlements`, a core
:class:`entitlegate.entitlements.Entitlements`; the extension's reads delegate to it.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import TypeVar

from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from entitlegate import CacheUnavailable, Resolver, SourceUnavailable
from entitlegate.catalog import Limit
from entitlegate_flask._state import EXTENSION_KEY, CustomerLoader, DeniedHandler, Hooks, State, state_of
from entitlegate_flask.cli import entitlegate_group
from entitlegate_flask.config import read_settings
from entitlegate_flask.current import forget, request_entitlements
from entitlegate_flask.gating import watch_decorator_order
from entitlegate_flask.portal import back_from_portal, is_portal_handler, makes_portal_sessions
from entitlegate_flask.templating import TEMPLATE_GLOBALS
from entitlegate_flask.webhook import make_blueprint

__all__ = ["Entitlements", "EntitlementsExtension"]

_Loader = TypeVar("_Loader", bound=CustomerLoader)
_Handler = TypeVar("_Handler", bound=DeniedHandler)


class Entitlements:
    """The Flask extension that gates an app's views on Stripe entitlements (``EntitlementsExtension``).

    Not to be confused with the per-request :class:`entitlegate.entitlements.Entitlements`
    (:data:`entitlegate_flask.current_entitlements`): this object configures apps; that one
    answers one request. The name is the extension's for compatibility; the alias
    ``EntitlementsExtension`` says which it is.

    ``Entitlements(app)``, or ``entitlements = Entitlements()`` then ``entitlements.init_app(app)``
    in an app factory; one object can serve several apps, each configured by its own
    ``ENTITLEGATE_*`` keys, and it keeps no reference to any of them. ``resolver``, when given,
    answers for every app the object serves, in place of the key/cache settings.

    Register where the customer comes from with :meth:`customer_loader` and, optionally, what a
    denial looks like with :meth:`denied_handler`.
    """

    def __init__(self, app: Flask | None = None, *, resolver: Resolver | None = None) -> None:
        if resolver is not None and not isinstance(resolver, Resolver):
            raise TypeError(f"Entitlements(resolver=...) needs an entitlegate.Resolver, got {type(resolver).__name__}")
        self._resolver = resolver
        self._hooks = Hooks()  # shared with every app's State, so a later registration reaches them
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        resolver = "" if self._resolver is None else f"resolver={self._resolver!r}"
        return f"Entitlements({resolver})"

    def init_app(self, app: Flask) -> None:
        """Read the app's ``ENTITLEGATE_*`` config and set the extension up on it.

        Raises ``ValueError`` naming the key for a missing or wrong setting, ``ImportError`` when
        ``ENTITLEGATE_CACHE`` is a Redis URL without the redis extra, and ``RuntimeError`` when the
        app already has an entitlegate extension. Call it before the app serves its first request.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("this app already has an entitlegate Entitlements extension set up")
        settings = read_settings(app.config, self._resolver)
        if is_portal_handler(self._hooks.denied_handler):
            _check_portal(settings.resolver)
        app.extensions[EXTENSION_KEY] = State(
            extension=self,
            resolver=settings.resolver,
            hooks=self._hooks,
            webhook=settings.webhook,
            webhook_url=settings.webhook_url,
            login_view=settings.login_view,
        )
        app.teardown_request(forget)
        app.before_request(back_from_portal)  # coming back from the Customer Portal: refresh once
        watch_decorator_order(app)
        app.register_error_handler(SourceUnavailable, _unavailable)
        app.register_error_handler(CacheUnavailable, _unavailable)
        for name, template_global in TEMPLATE_GLOBALS.items():
            app.add_template_global(template_global, name)
        app.cli.add_command(entitlegate_group)  # flask entitlegate VERB …
        if settings.webhook_url is not None:
            app.register_blueprint(make_blueprint(settings.webhook_url))

    @property
    def resolver(self) -> Resolver:
        """The current app's resolver (needs an app context); ``RuntimeError`` before ``init_app``."""
        return state_of(current_app).resolver

    def features(self) -> frozenset[str]:
        """The current request's customer's lookup_keys (the empty set without a customer).

        Asked of the resolver once per request, like every check the request makes. Raises
        :class:`~entitlegate.SourceUnavailable` in an outage; left unhandled in a view, that is
        answered 503 (through the app's own 503 handler, if it has one).
        """
        return request_entitlements().features

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the current request's customer holds ``lookup_key`` (False without a customer).

        In an outage it answers as ``ENTITLEGATE_ON_UNAVAILABLE`` says: under ``"raise"`` it raises
        :class:`~entitlegate.SourceUnavailable`, which a view that leaves it unhandled answers 503.
        """
        return request_entitlements().has_feature(lookup_key)

    def limit(self, name: str, default: Limit = 0) -> Limit:
        """The current request's customer's limit ``name`` (``math.inf`` for ``"unlimited"``).

        The highest ``metadata[name]`` over the customer's features; ``default`` when none carries
        it, or without a customer. Raises :class:`~entitlegate.SourceUnavailable` in an outage (a
        limit is never guessed), which a view that leaves it unhandled answers 503.
        """
        return request_entitlements().limit(name, default)

    def customer_loader(self, loader: _Loader) -> _Loader:
        """Register ``loader() -> customer id | None``, the Stripe customer of the current request.

        Called at most once per request, and only when something checks a feature. Return None (or
        ``""``) when there is no customer. A loader that raises (other than an HTTP error such as
        ``abort(401)``, which Flask answers as usual) or returns a blank or padded string or a
        non-string is logged and counts as no customer (``entitlegate.gate.read_customer``): a 401
        or the login view, never a 500. It must be a plain function: it also answers the Jinja
        globals, which run in sync code. Usable as a decorator.
        """
        if not callable(loader):
            raise TypeError(f"customer_loader needs a callable, got {type(loader).__name__}")
        if iscoroutinefunction(loader):
            raise TypeError(
                "customer_loader must be a plain (not async) function: templates call it too, from sync code"
            )
        self._hooks.customer_loader = loader
        self._hooks.customer_loader_name = f"the customer_loader {_qualified_name(loader)}"
        return loader

    def denied_handler(self, handler: _Handler) -> _Handler:
        """Register ``handler(feature) -> response`` for a customer lacking a feature (sync or async).

        ``feature`` is the lookup_key the denial names (``"a | b"`` for an ``any_of`` requirement), or
        the limit's name for ``@requires_limit``, or the meter's for ``@requires_usage``: an
        ``entitlegate.gate.DeniedFeature``, whose ``entitlegate.gate.denial_body(feature)`` is the
        JSON an API client gets without a handler. ``entitlegate_flask.portal_redirect`` is the
        built-in upgrade redirect. Without a handler a denial is a 403. Usable as a decorator.
        """
        if not callable(handler):
            raise TypeError(f"denied_handler needs a callable, got {type(handler).__name__}")
        self._hooks.denied_handler = handler
        return handler


#: The extension's other name, saying which ``Entitlements`` it is (the per-request one is
#: :class:`entitlegate.entitlements.Entitlements`).
EntitlementsExtension = Entitlements


def _qualified_name(func: Callable[..., object]) -> str:
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}" if module else name


def _unavailable(error: SourceUnavailable | CacheUnavailable) -> ResponseReturnValue:
    # A view that met an outage (Stripe's, or a shared cache's on a change) and left the error
    # unhandled: 503, never a 500, rendered by the app's own 503 handler when it has one.
    response: ResponseReturnValue = current_app.handle_http_exception(ServiceUnavailable())
    return response


def _check_portal(resolver: Resolver) -> None:
    if not makes_portal_sessions(resolver):
        raise ValueError(
            f"the denied handler portal_redirect needs Stripe Customer Portal sessions, which "
            f"{resolver.source!r} cannot make: use a StripeSource (ENTITLEGATE_STRIPE_API_KEY)"
        )
