"""``@requires_feature``: translate a request into a customer and a requirement, render the verdict.

The decision itself is ``entitlegate.gate.check``'s; this module only turns its verdict into what
Flask expects. Denials raise werkzeug HTTP exceptions, so the app's own error handlers render them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from inspect import iscoroutinefunction
from typing import Any, TypeVar, cast

from flask import abort, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.routing import BuildError

from entitlegate.gate import Outcome, Requirement, Verdict, check
from entitlegate_flask import per_request
from entitlegate_flask.state import state_of

__all__ = ["requires_feature"]

_View = TypeVar("_View", bound=Callable[..., Any])
_ALLOWED = Outcome.ALLOWED


def requires_feature(*features: str, any_of: Iterable[str] = ()) -> Callable[[_View], _View]:
    """Let a view run only for a customer holding every one of ``features`` (and one of ``any_of``).

    Works on sync and ``async def`` views (with ``flask[async]``); which kind is decided once, at
    decoration. The check runs before the view, in the request's own thread, so an async view is
    only started for a request that is let through. Without a customer: a redirect to
    ``ENTITLEGATE_LOGIN_VIEW``, Flask-Login's ``unauthorized()`` when Flask-Login is set up, or 401
    (403 for a Flask-Login user who is signed in but has no Stripe customer). Without the feature:
    the denied handler's response, or 403. Source unavailable: 503 (or the
    ``ENTITLEGATE_ON_UNAVAILABLE`` policy). Raises ``ValueError`` at decoration for no or blank
    lookup_keys.
    """
    requirement = Requirement.of(*features, any_of=any_of)

    def decorate(view: _View) -> _View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            def gated_async(*args: Any, **kwargs: Any) -> Any:
                verdict = _check(requirement)
                if verdict.outcome is _ALLOWED:
                    return current_app.ensure_sync(view)(*args, **kwargs)
                return _deny(verdict)

            return cast(_View, gated_async)

        @functools.wraps(view)
        def gated(*args: Any, **kwargs: Any) -> Any:
            verdict = _check(requirement)
            if verdict.outcome is _ALLOWED:
                return view(*args, **kwargs)
            return _deny(verdict)

        return cast(_View, gated)

    return decorate


def _check(requirement: Requirement) -> Verdict:
    answers = per_request.current()
    return check(answers, answers.customer, requirement)


def _deny(verdict: Verdict) -> ResponseReturnValue:
    outcome = verdict.outcome
    if outcome is Outcome.UNAVAILABLE:
        abort(503)
    if outcome is Outcome.NO_CUSTOMER:
        return _unauthorized()
    handler = state_of(current_app).extension._denied_handler
    if handler is None:
        abort(403)
    assert verdict.feature is not None
    response: ResponseReturnValue = current_app.ensure_sync(handler)(verdict.feature)
    return response


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
    try:
        return url_for(login_view, next=here)
    except BuildError:
        raise RuntimeError(f"ENTITLEGATE_LOGIN_VIEW is {login_view!r}, which is not an endpoint of this app") from None
