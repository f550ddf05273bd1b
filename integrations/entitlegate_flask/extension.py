"""``Entitlements``: the Flask extension object, in the Flask-Login / Flask-Caching pattern."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any, TypeVar

from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from entitlegate import CacheUnavailable, Resolver, SourceUnavailable
from entitlegate.gate import customer_failed, read_customer
from entitlegate.resolver import answer_in_outage
from entitlegate_flask import per_request, templating
from entitlegate_flask.cli import entitlegate_group
from entitlegate_flask.config import read_settings
from entitlegate_flask.gating import watch_decorator_order
from entitlegate_flask.portal import makes_portal_sessions, portal_redirect
from entitlegate_flask.state import EXTENSION_KEY, State, state_of
from entitlegate_flask.webhook import make_blueprint

__all__ = ["Entitlements"]

CustomerLoader = Callable[[], str | None]
DeniedHandler = Callable[[str], Any]
_Loader = TypeVar("_Loader", bound=CustomerLoader)
_Handler = TypeVar("_Handler", bound=DeniedHandler)


class Entitlements:
    """Gates a Flask app's views on Stripe entitlements.

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
        self._customer_loader: CustomerLoader | None = None
        self._customer_loader_name = "the customer_loader"  # how log lines name it
        self._denied_handler: DeniedHandler | None = None
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
        if self._denied_handler is portal_redirect:
            _check_portal(settings.resolver)
        app.extensions[EXTENSION_KEY] = State(
            extension=self,
            resolver=settings.resolver,
            webhook=settings.webhook,
            webhook_url=settings.webhook_url,
            login_view=settings.login_view,
        )
        app.teardown_request(per_request.forget)
        watch_decorator_order(app)
        app.register_error_handler(SourceUnavailable, _unavailable)
        app.register_error_handler(CacheUnavailable, _unavailable)
        app.add_template_global(templating.has_feature, "has_feature")
        app.add_template_global(templating.features, "features")
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
        answers = per_request.current()
        if answers.customer is None:
            return frozenset()
        return answers.features(answers.customer)

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the current request's customer holds ``lookup_key`` (False without a customer).

        In an outage it answers as ``ENTITLEGATE_ON_UNAVAILABLE`` says: under ``"raise"`` it raises
        :class:`~entitlegate.SourceUnavailable`, which a view that leaves it unhandled answers 503.
        """
        answers = per_request.current()
        if answers.customer is None:
            return False
        try:
            return answers.has_feature(answers.customer, lookup_key)
        except SourceUnavailable as error:
            return answer_in_outage(answers.on_unavailable, error)

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
        self._customer_loader = loader
        self._customer_loader_name = f"the customer_loader {_qualified_name(loader)}"
        return loader

    def denied_handler(self, handler: _Handler) -> _Handler:
        """Register ``handler(feature) -> response`` for a customer lacking a feature (sync or async).

        ``feature`` is the lookup_key the denial names (``"a | b"`` for an ``any_of`` requirement).
        ``entitlegate_flask.portal_redirect`` is the built-in upgrade redirect. Without a handler a
        denial is a 403. Usable as a decorator.
        """
        if not callable(handler):
            raise TypeError(f"denied_handler needs a callable, got {type(handler).__name__}")
        self._denied_handler = handler
        return handler

    def load_customer(self) -> str | None:
        """The current request's customer id from the registered loader (None: no customer).

        Raises ``RuntimeError`` when no loader is registered. A loader with a bug counts as no
        customer, as :meth:`customer_loader` says.
        """
        loader = self._customer_loader
        if loader is None:
            raise RuntimeError(
                "entitlegate_flask has no customer loader: decorate a function returning the current "
                "Stripe customer id (or None) with @entitlements.customer_loader"
            )
        try:
            answer: object = loader()
        except HTTPException:
            raise
        except Exception as error:
            customer_failed(self._customer_loader_name, error)
            return None
        return read_customer(answer, self._customer_loader_name)


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
