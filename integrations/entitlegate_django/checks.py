"""System checks for the ``ENTITLEGATE`` settings (``manage.py check``).

Each key is read by the same reader that builds it at runtime (``conf.py``), so a value these
checks pass builds. Ids are stable: E001 the dict itself; E002 STRIPE_API_KEY; E003 CACHE;
E004 CUSTOMER; E005 RESOLVER; E006 DENIED; E007 RULES; E008 TTL/STALE_TTL; E009 ON_UNAVAILABLE;
E010 STRIPE_ACCOUNT/STRIPE_API_BASE/STRIPE_TIMEOUT/STRIPE_MAX_RETRIES; E011 RULES without the middleware;
E012 WEBHOOK_SECRET; E013 unknown keys; W001 no WEBHOOK_SECRET; W003 keys RESOLVER replaces; W004
middleware order; W020 (``check --deploy`` only: it asks Stripe) a lookup_key or limit name the
site gates on that the account's catalog does not have. (W002, unknown keys as a warning, is
retired: an ignored typo turned a setting off silently.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from entitlegate import registry
from entitlegate.catalog import CatalogSource, audit
from entitlegate.errors import SourceUnavailable
from entitlegate_django import conf
from entitlegate_django.middleware import before_authentication

__all__ = ["check_catalog", "check_secrets", "check_settings"]

_MIDDLEWARE = "entitlegate_django.middleware.EntitlementMiddleware"
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"

_Reader = Callable[[Mapping[str, Any]], object]
_READERS: Sequence[tuple[str, _Reader, str]] = (
    ("CACHE", conf.read_cache, "entitlegate.E003"),
    ("CUSTOMER", conf.read_customer, "entitlegate.E004"),
    ("DENIED", conf.read_denied, "entitlegate.E006"),
    ("RULES", conf.read_rules, "entitlegate.E007"),
    ("TTL", conf.read_ttls, "entitlegate.E008"),
    ("ON_UNAVAILABLE", conf.read_policy, "entitlegate.E009"),
    ("STRIPE_ACCOUNT", conf.read_account, "entitlegate.E010"),
    ("STRIPE_API_BASE", conf.read_api_base, "entitlegate.E010"),
    ("STRIPE_TIMEOUT", conf.read_stripe_timeout, "entitlegate.E010"),
    ("STRIPE_MAX_RETRIES", conf.read_stripe_max_retries, "entitlegate.E010"),
)


def _raw() -> Mapping[str, Any] | None:
    try:
        return conf.raw_settings()
    except conf.Invalid:
        return None


def _error(reader: _Reader, raw: Mapping[str, Any], check_id: str) -> checks.Error | None:
    try:
        reader(raw)
    except conf.Invalid as error:
        return checks.Error(str(error), id=check_id)
    return None


@checks.register(checks.Tags.security)
def check_secrets(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The Stripe API key (unless RESOLVER is set) and the webhook signing secret."""
    raw = _raw()
    if raw is None:
        return []  # check_settings reports E001
    messages: list[checks.CheckMessage] = []
    if conf.value(raw, "RESOLVER") is None:
        error = _error(conf.read_api_key, raw, "entitlegate.E002")
        if error is not None:
            messages.append(error)
    if conf.value(raw, "WEBHOOK_SECRET") is None:
        messages.append(
            checks.Warning(
                "ENTITLEGATE['WEBHOOK_SECRET'] is not set: the webhook view answers 503, and cached "
                "entitlements change only when TTL runs out.",
                hint="Set it to the signing secret (whsec_…) of your Stripe webhook endpoint.",
                id="entitlegate.W001",
            )
        )
    else:
        error = _error(conf.read_webhook_secret, raw, "entitlegate.E012")
        if error is not None:
            messages.append(error)
    return messages


@checks.register()
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every other key of ``ENTITLEGATE``, and where the middleware sits."""
    try:
        raw = conf.raw_settings()
    except conf.Invalid as invalid:
        return [checks.Error(str(invalid), id="entitlegate.E001")]
    messages: list[checks.CheckMessage] = []
    error = _error(conf.read_keys, raw, "entitlegate.E013")
    if error is not None:
        messages.append(error)
    uses_resolver = conf.value(raw, "RESOLVER") is not None
    if uses_resolver:
        error = _error(conf.read_resolver_path, raw, "entitlegate.E005")
        if error is not None:
            messages.append(error)
        replaced = [key for key in conf.RESOLVER_REPLACES if raw.get(key) is not None]
        if replaced:
            messages.append(
                checks.Warning(
                    f"ENTITLEGATE['RESOLVER'] is set, so these keys are ignored: {', '.join(replaced)}",
                    hint="Configure the source, cache and TTLs on the Resolver that RESOLVER names.",
                    id="entitlegate.W003",
                )
            )
    for key, reader, check_id in _READERS:
        if uses_resolver and key in conf.RESOLVER_REPLACES:
            continue
        error = _error(reader, raw, check_id)
        if error is not None:
            messages.append(error)
    messages.extend(_check_middleware(raw))
    return messages


def _check_middleware(raw: Mapping[str, Any]) -> list[checks.CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    if _MIDDLEWARE not in middleware:
        if conf.value(raw, "RULES"):
            return [
                checks.Error(
                    "ENTITLEGATE['RULES'] is set but EntitlementMiddleware is not in MIDDLEWARE, "
                    "so no rule is enforced.",
                    hint=f"Add {_MIDDLEWARE!r} to MIDDLEWARE, after AuthenticationMiddleware.",
                    id="entitlegate.E011",
                )
            ]
        return []
    if before_authentication(middleware):
        return [
            checks.Warning(
                "EntitlementMiddleware comes before AuthenticationMiddleware, so RULES are enforced just "
                "before the view: a response that a middleware listed after it gives on its own (without "
                "calling the view) is not gated.",
                hint=f"Move {_MIDDLEWARE!r} below {_AUTH_MIDDLEWARE!r} in MIDDLEWARE.",
                id="entitlegate.W004",
            )
        ]
    return []


@checks.register("entitlegate", deploy=True)
def check_catalog(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W020: every lookup_key and limit name the site gates on, against the account's features.

    Runs on ``manage.py check --deploy`` only, since it lists the account's features on Stripe
    (``python -m entitlegate check`` does the same). The names are those that decorators, mixins
    and ``RULES`` registered (``entitlegate.registry``) once the URLconf is imported. A Stripe it
    cannot reach is one warning that says so, never a crash.
    """
    try:
        config = conf.current()
    except conf.Invalid:
        return []  # check_settings reports the bad key
    _import_urlconf()
    lookup_keys, limit_names = registry.lookup_keys(), registry.limit_names()
    if not lookup_keys and not limit_names:
        return []
    source = config.resolver.source
    if not isinstance(source, CatalogSource):
        kind = type(source).__name__
        return [_w020(f"the resolver's source ({kind}) cannot list the account's features, so nothing was compared")]
    try:
        features = source.list_features()
    except SourceUnavailable as error:
        return [
            _w020(
                f"could not list the account's features on Stripe, so the gates' names were not compared: {error}",
                hint="Run `manage.py check --deploy` again once Stripe answers, or `python -m entitlegate check`.",
            )
        ]
    return [
        _w020(finding.message, hint="Features are listed by `python -m entitlegate features`.")
        for finding in audit(features, lookup_keys, limit_names)
    ]


def _w020(message: str, *, hint: str | None = None) -> checks.Warning:
    return checks.Warning(message, hint=hint, id="entitlegate.W020")


def _import_urlconf() -> None:
    # The decorators register their names when the views' modules are imported; the URLconf
    # imports them. A URLconf that does not import is Django's own check's to report.
    from django.urls import get_resolver

    try:
        get_resolver().url_patterns  # noqa: B018 - importing it is the point
    except Exception:
        return
