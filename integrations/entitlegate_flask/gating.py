"""``@requires_feature``, ``@requires_limit``, ``@requires_usage``: a request's verdict, rendered the Flask way.

The decision is the request's :class:`entitlegate.entitlements.Entitlements`' (``check`` /
``check_limit`` / ``check_usage``); this module only turns the verdict into what Flask expects. Denials raise
werkzeug HTTP exceptions, so the app's own error handlers render them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from inspect import iscoroutinefunction
from typing import Any, TypeVar, cast

from flask import Flask, abort, current_app, jsonify, redirect, request, request_started, url_for
from flask.typing import ResponseReturnValue
from werkzeug.routing import BuildError

from entitlegate.entitlements import Entitlements
from entitlegate.gate import Outcome, Requirement, Verdict, denial_body, prefers_json
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate_flask._state import state_of
from entitlegate_flask.current import request_entitlements

__all__ = ["requires_feature", "requires_limit", "requires_usage", "watch_decorator_order"]

logger = logging.getLogger("entitlegate")

_View = TypeVar("_View", bound=Callable[..., Any])
_ALLOWED = Outcome.ALLOWED
_NO_CUSTOMER = Verdict(Outcome.NO_CUSTOMER)


def requires_feature(*features: str, any_of: Iterable[str] = ()) -> Callable[[_View], _View]:
    """Let a view run only for a customer holding every one of ``features`` (and one of ``any_of``).

    Works on sync and ``async def`` views (with ``flask[async]``); which kind is decided once, at
    decoration. The check runs before the view, in the request's own thread, so an async view is
    only started for a request that is let through. Without a customer: a redirect to
    ``ENTITLEGATE_LOGIN_VIEW``, Flask-Login's ``unauthorized()`` when Flask-Login is set up, or 401
    (403 for a Flask-Login user who is signed in but has no Stripe customer). Without the feature:
    the denied handler's response, or 403 (a JSON client gets ``entitlegate.gate.denial_body``).
    Source unavailable: 503 (or the ``ENTITLEGATE_ON_UNAVAILABLE`` policy). Raises ``ValueError``
    at decoration for no or blank lookup_keys. Put it below the route decorator: above it, it
    wraps a function Flask never calls; the extension then gates the view at the first request and
    logs an error naming it.
    """
    return _gate(Entitlements.check, Requirement.of(*features, any_of=any_of), answered=True)


def requires_limit(name: str, need: int | Callable[[], int] = 1) -> Callable[[_View], _View]:
    """Let a view run only for a customer whose limit ``name`` is at least ``need``.

    ``need`` is a whole number >= 0, or a callable of no arguments that computes it for the
    request (``lambda: len(request.form.getlist("member"))``), called only for a request with a
    customer. The limit is the highest ``metadata[name]`` over the customer's features (see
    ``Resolver.limit``). Everything else is as :func:`requires_feature`: sync and async views, the
    same denial path (the denied handler receives the limit's name, a JSON client gets
    ``{"error": "limit_exceeded", "limit": ..., "allowed": ..., "need": ...}``), 401/login without
    a customer, 503 in an outage. Raises ``ValueError`` at decoration for a blank name or a bad
    ``need``, and at request time for a callable that returns no whole number >= 0.
    """
    return _gate(_check_limit, LimitRequirement(name, need))


def _check_limit(entitlements: Entitlements, requirement: LimitRequirement) -> Verdict:
    # The need may read the request (its form, its JSON): only for a request that has a customer.
    if entitlements.customer is None:
        return _NO_CUSTOMER
    return entitlements.check_limit(requirement, requirement.needed())


def requires_usage(meter: str, limit: str | int, value: int = 1) -> Callable[[_View], _View]:
    """Let a view run while the customer's use of the meter ``meter`` stays within their limit.

    ``limit`` names the customer's limit in Feature metadata (``@requires_usage("exports",
    limit="exports")``: the highest ``metadata["exports"]`` of the features they hold, 0 without
    one), or is a whole number for everyone. Each request let through counts ``value`` at once
    (``Resolver.consume_usage``, atomic: concurrent requests never pass the limit) and reports it
    to Stripe, before the view runs. Everything else is as :func:`requires_feature`: sync and
    async views, the same denial path (the denied handler receives the meter's name, a JSON
    client gets ``{"error": "usage_exceeded", "meter": ..., "usage": ..., "limit": ...}``),
    401/login without a customer, 503 when the counter cannot be read (or the
    ``ENTITLEGATE_ON_UNAVAILABLE`` policy). Raises ``ValueError`` at decoration for a blank meter
    or limit name, or a bad limit or value.
    """
    return _gate(Entitlements.check_usage, UsageRequirement(meter, limit, value))


_Requirement = TypeVar("_Requirement", Requirement, LimitRequirement, UsageRequirement)


def _gate(
    judge: Callable[[Entitlements, _Requirement], Verdict], requirement: _Requirement, *, answered: bool = False
) -> Callable[[_View], _View]:
    # judge is called with the request's Entitlements and the requirement, not wrapped in a
    # closure: for a feature it is Entitlements.check itself, one Python call fewer per check.
    # answered: judge reads the features at once, so a request's first object is made with them.
    def decorate(view: _View) -> _View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            def gated_async(*args: Any, **kwargs: Any) -> Any:
                verdict = judge(request_entitlements(answered), requirement)
                if verdict.outcome is _ALLOWED:
                    return current_app.ensure_sync(view)(*args, **kwargs)
                return _deny(verdict)

            _remember(view, gated_async)
            return cast(_View, gated_async)

        @functools.wraps(view)
        def gated(*args: Any, **kwargs: Any) -> Any:
            verdict = judge(request_entitlements(answered), requirement)
            if verdict.outcome is _ALLOWED:
                # A URL without variables (the common gated page) calls the view without packing them again.
                return view(*args, **kwargs) if args or kwargs else view()
            return _deny(verdict)

        _remember(view, gated)
        return cast(_View, gated)

    return decorate


# -- @requires_feature (or @requires_limit, @requires_usage) above @app.route ----------------------------------------
# The route decorator registers the function it is given, so a @requires_feature above it wraps a
# function that is never called, and the page is served to everyone. Each wrapped view carries its
# wrapper (an attribute: it lives exactly as long as the view, in an app factory too); at an app's
# first request, after which Flask allows no new route, a registered view whose wrapper the app
# registered nowhere is replaced by its outermost wrapper.

_WRAPPER = "_entitlegate_gated_by"


def _remember(view: Callable[..., Any], gated: Callable[..., Any]) -> None:
    # functools.wraps copied the view's attributes, and with them a wrapper of an earlier wrap.
    vars(gated).pop(_WRAPPER, None)
    # A view that takes no attributes (a builtin) cannot be found misordered either.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(view, _WRAPPER, gated)


def watch_decorator_order(app: Flask) -> None:
    """At ``app``'s first request, gate the views ``@requires_feature`` was written above the route of.

    Each one is logged as an error naming the endpoint. Costs nothing after the first request.
    """
    lock = threading.Lock()

    def first_request(sender: Flask, **extra: object) -> None:
        with lock:
            request_started.disconnect(first_request, sender)
            _gate_misordered_views(sender)

    request_started.connect(first_request, app, weak=False)


def _gate_misordered_views(app: Flask) -> None:
    registered = {id(view) for view in app.view_functions.values()}
    for endpoint, view in list(app.view_functions.items()):
        gated = getattr(view, _WRAPPER, None)
        if gated is None or id(gated) in registered:
            continue  # not gated, or the app registered its wrapper too (used both ways)
        while getattr(gated, _WRAPPER, None) is not None:  # stacked: @requires_feature twice
            gated = getattr(gated, _WRAPPER)
        app.view_functions[endpoint] = gated
        logger.error(
            "entitlegate: @requires_feature (or @requires_limit) is above the route decorator of the view %r, "
            "which so served it ungated; it is gated now, but put @requires_feature below the route decorator "
            "(@app.get(...) first, then @requires_feature(...))",
            endpoint,
        )


def _deny(verdict: Verdict) -> ResponseReturnValue:
    outcome = verdict.outcome
    if outcome is Outcome.UNAVAILABLE:
        abort(503)
    if outcome is Outcome.NO_CUSTOMER:
        return _unauthorized()
    feature = verdict.feature
    assert feature is not None  # a denial names its feature or limit
    handler = state_of(current_app).hooks.denied_handler
    if handler is not None:
        response: ResponseReturnValue = current_app.ensure_sync(handler)(feature)
        return response
    if not _prefers_json():
        abort(403)
    return jsonify(denial_body(feature)), 403, {"Vary": "Accept"}


def _prefers_json() -> bool:
    return prefers_json(", ".join(request.headers.getlist("Accept")))


def _unauthorized() -> ResponseReturnValue:
    login_manager = getattr(current_app, "login_manager", None)
    if login_manager is not None and _signed_in():
        # Signed in, but the account has no Stripe customer: a login page would not help.
        abort(403)
    login_view = state_of(current_app).login_view
    if login_view is not None:
        return redirect(_login_url(login_view))
    if login_manager is None:
        abort(401)
    response: ResponseReturnValue = login_manager.unauthorized()
    return response


def _signed_in() -> bool:
    # Flask-Login is installed (the app has a login_manager); imported here so it stays optional.
    current_user = importlib.import_module("flask_login").current_user
    return bool(current_user.is_authenticated)


def _login_url(login_view: str) -> str:
    here = request.full_path if request.query_string else request.path
    # A login page under the same URL values as the gated page (/<lang>/login for /<lang>/seats)
    # takes them from this request; url_for fills in only what the app's url_defaults give.
    rules = list(current_app.url_map.iter_rules(login_view)) if login_view in current_app.view_functions else []
    view_args = request.view_args or {}
    values = {name: view_args[name] for rule in rules for name in rule.arguments if name in view_args}
    try:
        return url_for(login_view, **values, next=here)
    except BuildError as error:
        failure = error
    if not rules:
        raise RuntimeError(f"ENTITLEGATE_LOGIN_VIEW is {login_view!r}, which is not an endpoint of this app")
    missing = sorted({name for rule in rules for name in rule.arguments} - set(values))
    if not missing:
        raise RuntimeError(f"ENTITLEGATE_LOGIN_VIEW is {login_view!r}, whose URL cannot be built: {failure}")
    named = ", ".join(repr(name) for name in missing)
    raise RuntimeError(
        f"ENTITLEGATE_LOGIN_VIEW is {login_view!r}, whose URL needs the URL value{'s' if len(missing) > 1 else ''} "
        f"{named}, which the request {request.path!r} does not have: name a login endpoint without URL values, "
        f"or give them with app.url_defaults"
    )
