"""This request's :class:`entitlegate.entitlements.Entitlements`, memoised on ``g``.

As Flask-Login's ``current_user`` is the request's user, :data:`current_entitlements` is the
request's entitlements: made at the first read, with the app's resolver and the registered
customer loader (called only when something needs the customer), and dropped when the request
ends. Every check of the request goes through it (``@requires_feature``, ``@requires_limit``, the
Jinja globals, ``ext.has_feature()``), so a request looks its customer up once and asks the
resolver once, an outage included.
"""

from __future__ import annotations

from flask import g
from flask.globals import app_ctx
from werkzeug.exceptions import HTTPException
from werkzeug.local import LocalProxy

from entitlegate.entitlements import CustomerLookup, Entitlements
from entitlegate_flask._state import EXTENSION_KEY, State, state_of

__all__ = ["current_entitlements", "forget", "request_entitlements"]

_G_KEY = "_entitlegate"  # the attribute of g that holds the request's Entitlements
# A loader's abort(401) / abort(403) is Flask's own answer, not a bug to log and ignore.
_FLASK_ANSWERS = (HTTPException,)
# Read once: a classmethod through its class makes a bound method.
_for_request = Entitlements.for_request
_answered = Entitlements.answered


def request_entitlements(answered: bool = False) -> Entitlements:
    """This request's :class:`~entitlegate.entitlements.Entitlements`, made on first use.

    ``answered``: made with the customer looked up and the resolver asked at once
    (:meth:`~entitlegate.entitlements.Entitlements.answered`), as a gate that checks it at once
    wants; else those wait for the first read. Needs a request context. Raises ``RuntimeError``
    when the extension is not set up on the current app or has no customer loader.
    """
    # Each pass through a context-local proxy costs about a microsecond (callgrind: ~5,500
    # instructions, a sixth of a gated view call): one pass, to the app context, which holds
    # both g and the app. g keeps its attributes in its __dict__ (as its own get() reads them);
    # reading that dict directly spares a Python call on every check.
    context = app_ctx._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    request_globals = vars(context.g)
    entitlements: Entitlements | None = request_globals.get(_G_KEY)
    if entitlements is None:
        app = context.app
        state: State | None = app.extensions.get(EXTENSION_KEY)
        if state is None:
            state = state_of(app)  # raises, saying how to set the extension up
        hooks = state.hooks
        loader = hooks.customer_loader
        if loader is None:
            raise RuntimeError(
                "entitlegate_flask has no customer loader: decorate a function returning the current "
                "Stripe customer id (or None) with @entitlements.customer_loader"
            )
        lookup = state.lookups.get(loader)
        if lookup is None:
            lookup = CustomerLookup(state.resolver, loader, None, hooks.customer_loader_name, _FLASK_ANSWERS)
            state.lookups[loader] = lookup
        # The loader takes no argument: it reads Flask's context.
        entitlements = _answered(lookup) if answered else _for_request(lookup)
        request_globals[_G_KEY] = entitlements
    return entitlements


def forget(error: BaseException | None = None) -> None:
    """Drop the request's entitlements when it ends (``g`` can outlive it in a pushed app context)."""
    g.pop(_G_KEY, None)


#: The current request's :class:`~entitlegate.entitlements.Entitlements` (``current_entitlements.
#: has_feature("x")``, ``.limit("seats")``, ``.customer``), as ``current_user`` is its user.
current_entitlements: LocalProxy[Entitlements] = LocalProxy(request_entitlements)
