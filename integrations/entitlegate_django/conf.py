"""The ``ENTITLEGATE`` settings dict: its defaults, how each key is read, and what it builds.

The resolver, the webhook handler and the rest are built once, on first use, and rebuilt when
the setting changes (``override_settings`` in tests), so nothing touches Stripe or Redis at
import time. System checks (``checks.py``) read the same keys with the same readers, so a wrong
value is reported alike at ``manage.py check`` and at first use. The keys that build the resolver
follow the rules of ``entitlegate._settings``, the same as Flask's ``ENTITLEGATE_*`` keys.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, SynchronousOnlyOperation
from django.core.signals import setting_changed
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from entitlegate import _settings
from entitlegate.entitlements import CustomerLookup
from entitlegate.gate import Rules
from entitlegate.resolver import OnUnavailable, Resolver
from entitlegate.webhooks import WebhookHandler

__all__ = ["DEFAULTS", "Config", "Invalid", "current", "get_resolver"]

#: Every key of the ``ENTITLEGATE`` dict and its default.
DEFAULTS: Final[Mapping[str, Any]] = {
    **_settings.DEFAULTS,  # STRIPE_API_KEY (required unless RESOLVER is set) … ON_UNAVAILABLE: the resolver
    "WEBHOOK_SECRET": None,  # the webhook endpoint's signing secret (whsec_…)
    "CUSTOMER": None,  # dotted path of callable(request) -> Stripe customer id | None; required
    "RULES": {},  # URL path prefix -> lookup_key or list of lookup_keys (EntitlementMiddleware)
    "DENIED": None,  # dotted path of callable(request, FeatureDenied) -> response; None: 403
    "RESOLVER": None,  # dotted path of a ready Resolver or a zero-argument factory of one
}

#: The keys RESOLVER takes the place of.
RESOLVER_REPLACES: Final = _settings.RESOLVER_KEYS
_OR_RESOLVER: Final = "or set ENTITLEGATE['RESOLVER']"

CustomerFunc = Callable[[HttpRequest], "str | None"]
ACustomerFunc = Callable[[HttpRequest], Awaitable["str | None"]]
DeniedHandler = Callable[[HttpRequest, Any], HttpResponseBase]

#: Django answers these itself (a 404, the site's 403): a CUSTOMER function may raise them.
DJANGO_ANSWERS: Final = (Http404, PermissionDenied)
_T = TypeVar("_T")


class Invalid(ImproperlyConfigured):
    """A key of ``ENTITLEGATE`` has a wrong value. The message names the key and never a secret."""

    def __init__(self, key: str | None, problem: str) -> None:
        # No key: the message names what it is about (the whole dict, or a key the core named).
        super().__init__(f"{name(key)} {problem}" if key else problem)


@dataclass(frozen=True, slots=True)
class Config:
    """What the settings build: one resolver, webhook handler, customer function, rules, handler."""

    resolver: Resolver
    customer: CustomerFunc
    acustomer: ACustomerFunc  # CUSTOMER from the event loop: called there, in a thread only if it must be
    customer_name: str  # how log lines name the CUSTOMER function: the setting and its dotted path
    rules: Rules
    denied: DeniedHandler | None
    webhook_handler: WebhookHandler | None
    owns_cache: bool = False  # built from CACHE (not handed in by RESOLVER): closed on a settings change
    #: The CUSTOMER function with the resolver, as each request's ``request.entitlements`` uses them.
    lookup: CustomerLookup = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup = CustomerLookup(self.resolver, self.customer, self.acustomer, self.customer_name, DJANGO_ANSWERS)
        object.__setattr__(self, "lookup", lookup)  # a frozen dataclass: set once, here


# -- reading one key ----------------------------------------------------------------------------


def name(key: str) -> str:
    """How ``key`` is written in settings.py, for messages: ``ENTITLEGATE['TTL']``."""
    return f"ENTITLEGATE[{key!r}]"


def raw_settings() -> Mapping[str, Any]:
    """The ``ENTITLEGATE`` dict; raises :class:`Invalid` when it is not a dict."""
    raw = getattr(settings, "ENTITLEGATE", {})
    if not isinstance(raw, Mapping):
        raise Invalid(None, f"ENTITLEGATE must be a dict, not {type(raw).__name__}")
    return raw


def read_keys(raw: Mapping[str, Any]) -> None:
    """Raise :class:`Invalid` for a key of ``ENTITLEGATE`` that is not one of :data:`DEFAULTS`.

    An ignored typo would silently turn a setting off (``RULSE``: no rule enforced, paid pages
    served to everyone), so it is an error, with the closest real key.
    """
    unknown = [key for key in raw if key not in DEFAULTS]
    if not unknown:
        return
    named = ", ".join(f"{key!r}{_closest(key)}" for key in unknown)
    noun = "an unknown key" if len(unknown) == 1 else "unknown keys"
    raise Invalid(None, f"ENTITLEGATE has {noun} {named}; the keys are: {', '.join(DEFAULTS)}")


def _closest(key: object) -> str:
    matches = difflib.get_close_matches(str(key).upper(), DEFAULTS, n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def value(raw: Mapping[str, Any], key: str) -> Any:
    return raw.get(key, DEFAULTS[key])


def _core(read: Callable[[], _T]) -> _T:
    # The rules are entitlegate._settings', shared with Flask; its errors name the key already.
    try:
        return read()
    except (ValueError, ImportError) as error:
        raise Invalid(None, str(error)) from None


def _read(reader: Callable[[Any, str], _T], raw: Mapping[str, Any], key: str) -> _T:
    return _core(lambda: reader(value(raw, key), name(key)))


def read_api_key(raw: Mapping[str, Any]) -> str:
    return _read(partial(_settings.read_api_key, alternative=_OR_RESOLVER), raw, "STRIPE_API_KEY")


def read_account(raw: Mapping[str, Any]) -> str | None:
    return _read(_settings.read_stripe_account, raw, "STRIPE_ACCOUNT")


def read_api_base(raw: Mapping[str, Any]) -> str | None:
    return _read(_settings.read_api_base, raw, "STRIPE_API_BASE")


def read_stripe_timeout(raw: Mapping[str, Any]) -> float:
    return _read(_settings.read_timeout, raw, "STRIPE_TIMEOUT")


def read_stripe_max_retries(raw: Mapping[str, Any]) -> int:
    return _read(_settings.read_max_retries, raw, "STRIPE_MAX_RETRIES")


def read_webhook_secret(raw: Mapping[str, Any]) -> str | None:
    if value(raw, "WEBHOOK_SECRET") is None:
        return None  # no webhook: check_secrets warns (W001), the webhook view answers 503
    return _read(_settings.read_webhook_secret, raw, "WEBHOOK_SECRET")


def read_cache(raw: Mapping[str, Any]) -> str:
    return _read(_settings.read_cache, raw, "CACHE")


def read_ttls(raw: Mapping[str, Any]) -> tuple[float, float]:
    return _core(
        lambda: _settings.read_ttls(value(raw, "TTL"), value(raw, "STALE_TTL"), name("TTL"), name("STALE_TTL"))
    )


def read_policy(raw: Mapping[str, Any]) -> OnUnavailable:
    return _read(_settings.read_on_unavailable, raw, "ON_UNAVAILABLE")


def read_customer(raw: Mapping[str, Any]) -> CustomerFunc:
    path = value(raw, "CUSTOMER")
    if path is None:
        raise Invalid("CUSTOMER", "is required: the dotted path of a function(request) -> Stripe customer id or None")
    func = _import(raw, "CUSTOMER")
    if not callable(func):
        raise Invalid("CUSTOMER", f"({path!r}) must name a function(request) -> Stripe customer id or None")
    if iscoroutinefunction(func):
        raise Invalid("CUSTOMER", f"({path!r}) must be a plain function, not async: it is called on every check")
    customer: CustomerFunc = func
    return customer


async def _acustomer(customer: CustomerFunc, request: HttpRequest) -> str | None:
    # A CUSTOMER function that reads what is loaded already costs nothing here; one that touches
    # the database (request.user not loaded yet) makes Django raise SynchronousOnlyOperation in
    # the event loop, and is then called again in a worker thread, as Django runs sync code.
    try:
        return customer(request)
    except SynchronousOnlyOperation:
        found: str | None = await sync_to_async(customer)(request)
        return found


def read_denied(raw: Mapping[str, Any]) -> DeniedHandler | None:
    path = value(raw, "DENIED")
    if path is None:
        return None
    handler = _import(raw, "DENIED")
    if not callable(handler) or iscoroutinefunction(handler):
        raise Invalid("DENIED", f"({path!r}) must name a plain function(request, exception) -> response")
    denied: DeniedHandler = handler
    return denied


def read_rules(raw: Mapping[str, Any]) -> Rules:
    rules = value(raw, "RULES")
    if isinstance(rules, (str, bytes)) or not isinstance(rules, (Mapping, list, tuple)):
        raise Invalid("RULES", f"must be a dict of URL path prefix to lookup_key(s), not {type(rules).__name__}")
    try:
        return Rules(rules)
    except (TypeError, ValueError) as error:
        raise Invalid("RULES", f"is malformed: {error}") from None


def read_resolver_path(raw: Mapping[str, Any]) -> object | None:
    """What RESOLVER names (a Resolver or a factory), imported but not called; None when unset."""
    if value(raw, "RESOLVER") is None:
        return None
    target = _import(raw, "RESOLVER")
    if not isinstance(target, Resolver) and not callable(target):
        raise Invalid("RESOLVER", "must name a Resolver or a zero-argument function that returns one")
    named: object = target
    return named


def _import(raw: Mapping[str, Any], key: str) -> Any:
    path = value(raw, key)
    if not isinstance(path, str):
        raise Invalid(key, f"must be a dotted path string, got {type(path).__name__}")
    try:
        return import_string(path)
    except ImportError as error:
        raise Invalid(key, f"({path!r}) does not import: {error}") from None


# -- building -----------------------------------------------------------------------------------


def build(raw: Mapping[str, Any]) -> Config:
    """Read every key and build the objects. Raises :class:`Invalid` naming the first bad key."""
    # Everything that cannot fail late is read before the resolver opens any connection.
    read_keys(raw)
    customer, rules, denied, secret = read_customer(raw), read_rules(raw), read_denied(raw), read_webhook_secret(raw)
    resolver = _build_resolver(raw)
    return Config(
        resolver=resolver,
        customer=customer,
        acustomer=partial(_acustomer, customer),
        customer_name=f"{name('CUSTOMER')} ({value(raw, 'CUSTOMER')})",
        rules=rules,
        denied=denied,
        webhook_handler=WebhookHandler(resolver, secret) if secret is not None else None,
        owns_cache=value(raw, "RESOLVER") is None,
    )


def _build_resolver(raw: Mapping[str, Any]) -> Resolver:
    target = read_resolver_path(raw)
    if target is not None:
        resolver = target if isinstance(target, Resolver) else target()  # type: ignore[operator]
        if not isinstance(resolver, Resolver):
            raise Invalid("RESOLVER", f"must give a Resolver, its factory returned {type(resolver).__name__}")
        return resolver
    return _core(lambda: _settings.build_resolver(raw, name, alternative=_OR_RESOLVER))


# -- the one current Config ---------------------------------------------------------------------

_lock = threading.Lock()
#: The Config of the current settings once :func:`current` has built it, else None (a settings
#: change empties it). Read-only: the gated path reads it without a call, then calls current().
built: Config | None = None


def current() -> Config:
    """The Config of the current settings, built on first use; raises :class:`Invalid` if wrong."""
    config = built
    if config is None:
        config = _build_current()
    return config


def _build_current() -> Config:
    global built
    with _lock:
        if built is None:
            built = build(raw_settings())
        return built


def get_resolver() -> Resolver:
    """The :class:`~entitlegate.Resolver` the ``ENTITLEGATE`` settings build (built on first use).

    Use it for checks outside a view, and with :func:`entitlegate.testing.override_features`.
    Rebuilt when the setting changes, so look it up again after ``override_settings``.
    """
    return current().resolver


def _reset(*, setting: str, **kwargs: object) -> None:
    global built
    if setting != "ENTITLEGATE":
        return
    with _lock:
        old, built = built, None
    # A Redis cache built from CACHE has connections and a listener thread of its own.
    close = getattr(old.resolver.cache, "close", None) if old is not None and old.owns_cache else None
    if close is not None:
        close()


setting_changed.connect(_reset, dispatch_uid="entitlegate_django.conf.reset")
