"""One decision for every web adapter: may this request through, and if not, why.

Adapters translate their framework's request into a customer id and a :class:`Requirement`,
call :func:`check` / :func:`acheck`, and render the :class:`Verdict` as a response. Path rules
(:class:`Rules`) and the never-break-a-page template checks live here too, so Django, Flask and
ASGI decide alike.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from entitlegate import registry
from entitlegate.catalog import Limit
from entitlegate.errors import SourceUnavailable
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate.resolver import OnUnavailable, Resolver, answer_in_outage
from entitlegate.sources import PortalFlow, PortalSessions

__all__ = [
    "Answers",
    "Cause",
    "DeniedFeature",
    "Outcome",
    "PortalSessions",
    "Requirement",
    "Rules",
    "Shortfall",
    "UsageShortfall",
    "Verdict",
    "acheck",
    "aportal_url",
    "check",
    "customer_failed",
    "denial_body",
    "denial_cause",
    "denial_shortfall",
    "denial_usage",
    "judge",
    "judge_limit",
    "judge_usage",
    "portal_url",
    "prefers_json",
    "read_customer",
    "safe_features",
    "safe_has_feature",
    "upgrade_body",
]


logger = logging.getLogger("entitlegate")

_WARN_EVERY = 60.0  # seconds between two log lines about the same misbehaving customer callable
_warned: dict[tuple[str, str], float] = {}
_warned_lock = threading.Lock()


def read_customer(value: object, where: str) -> str | None:
    """What a site's customer callable returned, as a Stripe customer id or None (no customer).

    The one rule every adapter applies: ``None`` and ``""`` mean "no customer"; a string with no
    surrounding whitespace is the id. Anything else (a blank or padded string, a number, a user
    object) is a bug in the callable named by ``where`` (``ENTITLEGATE['CUSTOMER']``, ...): it is
    logged, at most once a minute per callable, and treated as no customer, so the request gets
    the no-customer answer (401 / login / 403) rather than a 500, and nothing odd reaches Stripe.
    """
    if type(value) is str and value and value == value.strip():
        return value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        problem = "a blank string" if not value.strip() else "an id with whitespace around it"
    else:
        problem = f"a {type(value).__name__}, not a string"
    _warn_once(where, problem, f"{where} returned {problem}: the request is treated as having no customer")
    return None


def customer_failed(where: str, error: BaseException) -> None:
    """Log (at most once a minute per callable) that the customer callable ``where`` raised ``error``.

    The adapters then treat the request as having no customer: a 401 / login / 403, never a 500.
    """
    _warn_once(
        where,
        type(error).__name__,
        f"{where} raised {type(error).__name__}: the request is treated as having no customer",
        error,
    )


def _warn_once(where: str, problem: str, message: str, error: BaseException | None = None) -> None:
    now = time.monotonic()
    with _warned_lock:
        last = _warned.get((where, problem))
        if last is not None and now - last < _WARN_EVERY:
            return
        _warned[(where, problem)] = now
    logger.error(message, exc_info=error)


@dataclass(frozen=True, slots=True)
class Requirement:
    """Features a request needs: every one of ``all_of`` and, if given, at least one of ``any_of``."""

    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    #: ``allows(features)``: whether ``features`` satisfy the requirement (:meth:`missing` is
    #: None). Without any_of (nearly every gate) it is ``frozenset(all_of).issubset`` itself: the
    #: gate's allowed case is then one C call, where a method is a Python frame and missing() a
    #: Python loop (about 5x the instructions).
    allows: Callable[[frozenset[str]], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _refuse_str("all_of", self.all_of)
        _refuse_str("any_of", self.any_of)
        if not self.all_of and not self.any_of:
            raise ValueError("a feature requirement needs at least one lookup_key")
        for key in (*self.all_of, *self.any_of):
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"feature lookup_keys must be non-blank strings, got {key!r}")
        allows = partial(_met, self) if self.any_of else frozenset(self.all_of).issubset
        object.__setattr__(self, "allows", allows)
        registry.register_lookup_keys((*self.all_of, *self.any_of))

    @classmethod
    def of(cls, *features: str, any_of: Iterable[str] = ()) -> Requirement:
        """``Requirement.of("a", "b")`` needs a and b; ``Requirement.of(any_of=("a", "b"))`` a or b.

        Raises ``TypeError`` when ``any_of`` is a string (``any_of="analytics"`` would otherwise
        mean any of its letters): write ``any_of=("analytics",)``.
        """
        _refuse_str("any_of", any_of)
        return cls(tuple(features), tuple(any_of))

    def missing(self, features: frozenset[str]) -> str | None:
        """The lookup_key to name in a denial, or None when ``features`` satisfy the requirement."""
        for key in self.all_of:
            if key not in features:
                return key
        if self.any_of and features.isdisjoint(self.any_of):
            return self.any_of[0] if len(self.any_of) == 1 else " | ".join(self.any_of)
        return None


def _met(requirement: Requirement, features: frozenset[str]) -> bool:
    return requirement.missing(features) is None


def _refuse_str(name: str, names: object) -> None:
    # A str is an iterable of names, one letter each: "analytics" would need "a" or "n" or ...
    if isinstance(names, str):
        raise TypeError(f"{name} must be a list or tuple of lookup_keys, not the string {names!r}: write ({names!r},)")


class Outcome(enum.Enum):
    """How a check ended."""

    ALLOWED = "allowed"
    NO_CUSTOMER = "no_customer"  # nobody to check: sign in (401 / login redirect) or 403
    DENIED = "denied"  # the customer lacks a feature: 403 or the site's denied handler
    UNAVAILABLE = "unavailable"  # the source is down and nothing usable is cached: 503


class Cause(enum.Enum):
    """Why a request was denied: what a denied handler asks before it offers an upgrade."""

    MISSING = "missing"  # the customer lacks the feature: an upgrade may help
    UNAVAILABLE = "unavailable"  # the source is down and on_unavailable="deny" refused: try again later


@dataclass(frozen=True, slots=True)
class Shortfall:
    """What a limit denial names: the limit, the customer's value of it, and what the request needed."""

    limit: str
    allowed: Limit
    need: int


@dataclass(frozen=True, slots=True)
class UsageShortfall:
    """What a usage denial names: the meter, this period's total so far, the customer's limit, and
    the value the request would have added (``usage + value`` would pass ``limit``)."""

    meter: str
    usage: int
    limit: int
    value: int = 1


class DeniedFeature(str):
    """The lookup_key a denial names, as every denied handler receives it: a ``str`` that knows why.

    The handler signatures are fixed (``on_denied(scope, feature)``, Flask's ``handler(feature)``,
    Django's ``exception.feature``), so the cause travels inside the one value they all get. It
    compares, hashes and prints as the plain lookup_key; read its cause with :func:`denial_cause`.
    A limit denial names the limit (``"seats"``) and carries its :class:`Shortfall`
    (:func:`denial_shortfall`); a usage denial names the meter (``"exports"``) and carries its
    :class:`UsageShortfall` in ``usage`` (:func:`denial_usage`), with ``shortfall`` None.
    """

    cause: Cause
    shortfall: Shortfall | None
    usage: UsageShortfall | None

    def __new__(
        cls, lookup_key: str, cause: Cause, shortfall: Shortfall | UsageShortfall | None = None
    ) -> DeniedFeature:
        feature = super().__new__(cls, lookup_key)
        feature.cause = cause
        # Kept apart: every reader of ``shortfall`` (denied handlers, messages) expects a limit's.
        if isinstance(shortfall, UsageShortfall):
            feature.shortfall, feature.usage = None, shortfall
        else:
            feature.shortfall, feature.usage = shortfall, None
        return feature

    def __reduce__(self) -> tuple[type[DeniedFeature], tuple[str, Cause, Shortfall | UsageShortfall | None]]:
        return (DeniedFeature, (str(self), self.cause, self.shortfall or self.usage))


def denial_shortfall(feature: str) -> Shortfall | None:
    """The limit a denial naming ``feature`` is about, or None when it is about a feature or a meter."""
    return feature.shortfall if isinstance(feature, DeniedFeature) else None


def denial_usage(feature: str) -> UsageShortfall | None:
    """The usage a denial naming the meter ``feature`` is about, or None when it is about a feature or a limit."""
    return feature.usage if isinstance(feature, DeniedFeature) else None


def denial_body(feature: str) -> dict[str, object]:
    """The JSON body of a 403 for the denial naming ``feature``, the same in every adapter.

    ``{"error": "feature_required", "feature": ...}`` for a feature; for a limit
    ``{"error": "limit_exceeded", "limit": ..., "allowed": ..., "need": ...}`` (``allowed`` is the
    customer's limit; never infinite here, since ``"unlimited"`` is never exceeded); for a meter
    ``{"error": "usage_exceeded", "meter": ..., "usage": ..., "limit": ...}`` (``usage`` is the
    period's total so far, ``limit`` the customer's limit).
    """
    shortfall = denial_shortfall(feature)
    if shortfall is None:
        usage = denial_usage(feature)
        if usage is not None:
            return {"error": "usage_exceeded", "meter": usage.meter, "usage": usage.usage, "limit": usage.limit}
        return {"error": "feature_required", "feature": str(feature)}
    return {"error": "limit_exceeded", "limit": shortfall.limit, "allowed": shortfall.allowed, "need": shortfall.need}


def denial_cause(feature: str) -> Cause:
    """Why the denial naming ``feature`` was made: ``UNAVAILABLE`` when the outage policy denied.

    For a denied handler: answer ``UNAVAILABLE`` as a temporary failure (503), not with an
    upgrade offer, since the customer may well hold the feature. A plain ``str`` is ``MISSING``.
    """
    return feature.cause if isinstance(feature, DeniedFeature) else Cause.MISSING


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check, the feature a denial names, and the outage behind a 503 or a denial.

    A denial that the outage policy (``on_unavailable="deny"``) made keeps its ``error``, and its
    ``feature`` is a :class:`DeniedFeature` that says so, for the handler that renders it.
    """

    outcome: Outcome
    feature: str | None = None
    error: SourceUnavailable | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is _ALLOWED_OUTCOME

    @property
    def cause(self) -> Cause | None:
        """Why a denial was made; None for any other outcome."""
        if self.outcome is not Outcome.DENIED:
            return None
        return Cause.UNAVAILABLE if self.error is not None else Cause.MISSING

    @property
    def shortfall(self) -> Shortfall | None:
        """For a limit denial, the limit, the customer's value and the need; None otherwise."""
        return denial_shortfall(self.feature) if self.feature is not None else None

    @property
    def usage(self) -> UsageShortfall | None:
        """For a usage denial, the meter, the period's total, the limit and the value; None otherwise."""
        return denial_usage(self.feature) if self.feature is not None else None


_ALLOWED_OUTCOME = Outcome.ALLOWED  # an enum member read through its class costs ~70 ns
_ALLOWED = Verdict(Outcome.ALLOWED)
_NO_CUSTOMER = Verdict(Outcome.NO_CUSTOMER)


class Answers(Protocol):
    """What the sync checks read: a :class:`~entitlegate.Resolver`, or a per-request memo of one."""

    on_unavailable: OnUnavailable

    def features(self, customer: str) -> frozenset[str]: ...

    def has_feature(self, customer: str, lookup_key: str) -> bool: ...


def judge(
    requirement: Requirement, answer: frozenset[str] | SourceUnavailable, on_unavailable: OnUnavailable
) -> Verdict:
    """The verdict on a customer's features already in hand, or on the outage that kept them away.

    For adapters that load a customer's features once per request and check them several times.
    An outage follows ``on_unavailable`` as :meth:`Resolver.has_feature` does.
    """
    if isinstance(answer, SourceUnavailable):
        if on_unavailable == "raise":
            return Verdict(Outcome.UNAVAILABLE, None, answer)
        if on_unavailable == "allow":
            return _ALLOWED
        named = requirement.missing(frozenset()) or ""  # with no features, something is missing
        return Verdict(Outcome.DENIED, DeniedFeature(named, Cause.UNAVAILABLE), answer)
    missing = requirement.missing(answer)
    return _ALLOWED if missing is None else Verdict(Outcome.DENIED, missing)


def judge_limit(
    requirement: LimitRequirement,
    need: int,
    answer: Mapping[str, Limit] | SourceUnavailable,
    on_unavailable: OnUnavailable,
) -> Verdict:
    """The verdict on a customer's limits already in hand (or the outage), for a request needing ``need``.

    A denial names the limit and carries its :class:`Shortfall`; an outage follows
    ``on_unavailable`` as :func:`judge` does.
    """
    name = requirement.name
    if isinstance(answer, SourceUnavailable):
        if on_unavailable == "raise":
            return Verdict(Outcome.UNAVAILABLE, None, answer)
        if on_unavailable == "allow":
            return _ALLOWED
        return Verdict(Outcome.DENIED, DeniedFeature(name, Cause.UNAVAILABLE), answer)
    if not requirement.missing(answer, need):
        return _ALLOWED
    shortfall = Shortfall(name, answer.get(name, 0), need)
    return Verdict(Outcome.DENIED, DeniedFeature(name, Cause.MISSING, shortfall))


def judge_usage(
    requirement: UsageRequirement,
    consumed: tuple[bool, int] | SourceUnavailable,
    limit: Limit,
    on_unavailable: OnUnavailable,
) -> Verdict:
    """The verdict on a use of ``requirement.meter`` that :meth:`Resolver.consume_usage` answered.

    ``consumed`` is its (admitted, total) under the customer's ``limit``, or the outage met
    reading the limit or counting the use, which follows ``on_unavailable`` as :func:`judge` does.
    A denial names the meter and carries its :class:`UsageShortfall`.
    """
    if isinstance(consumed, SourceUnavailable):
        if on_unavailable == "raise":
            return Verdict(Outcome.UNAVAILABLE, None, consumed)
        if on_unavailable == "allow":
            return _ALLOWED
        return Verdict(Outcome.DENIED, DeniedFeature(requirement.meter, Cause.UNAVAILABLE), consumed)
    admitted, total = consumed
    if admitted:
        return _ALLOWED
    # A denied consume never happens under math.inf: the limit here is a whole number.
    shortfall = UsageShortfall(requirement.meter, total, int(limit), requirement.value)
    return Verdict(Outcome.DENIED, DeniedFeature(requirement.meter, Cause.MISSING, shortfall))


def check(resolver: Answers, customer: str | None, requirement: Requirement) -> Verdict:
    """Decide whether ``customer`` (None: nobody signed in / no Stripe customer) meets ``requirement``.

    Never raises for an outage: it becomes ``UNAVAILABLE`` (or the resolver's deny/allow policy).
    A customer id that is not a non-blank string raises ``ValueError``.
    """
    if customer is None:
        return _NO_CUSTOMER
    answer: frozenset[str] | SourceUnavailable
    try:
        answer = resolver.features(customer)
    except SourceUnavailable as error:
        answer = error
    return judge(requirement, answer, resolver.on_unavailable)


async def acheck(resolver: Resolver, customer: str | None, requirement: Requirement) -> Verdict:
    """Async twin of :func:`check`."""
    if customer is None:
        return _NO_CUSTOMER
    answer: frozenset[str] | SourceUnavailable
    try:
        answer = await resolver.afeatures(customer)
    except SourceUnavailable as error:
        answer = error
    return judge(requirement, answer, resolver.on_unavailable)


def safe_has_feature(resolver: Answers, customer: str | None, lookup_key: str) -> bool:
    """A check for templates, which must never break a page.

    No customer, or a malformed one, answers False; an outage answers as ``on_unavailable`` says,
    with False under ``"raise"``.
    """
    if not customer:
        return False
    try:
        return resolver.has_feature(customer, lookup_key)
    except SourceUnavailable as error:
        # Under "raise" a template answers False rather than break the page.
        return answer_in_outage("deny" if resolver.on_unavailable == "raise" else resolver.on_unavailable, error)
    except ValueError:
        return False


def safe_features(resolver: Answers, customer: str | None) -> frozenset[str]:
    """The customer's features for a template: the empty set without a customer or in an outage."""
    if not customer:
        return frozenset()
    try:
        return resolver.features(customer)
    except (SourceUnavailable, ValueError):
        return frozenset()


class Rules:
    """Path-prefix rules: ``{"/pro": "seats-feature", "/reports": ("analytics", "export")}``.

    A prefix matches on path-segment boundaries (``/pro`` covers ``/pro`` and ``/pro/x``, not
    ``/products``) and the longest matching prefix wins. A value is one lookup_key, a list of
    them (all needed), or a :class:`Requirement`. Raises ``ValueError`` naming the bad rule.
    """

    def __init__(
        self,
        rules: Mapping[str, str | Iterable[str] | Requirement]
        | Iterable[tuple[str, str | Iterable[str] | Requirement]] = (),
    ) -> None:
        given: object = rules  # typed as no str, but a str iterates to one-letter "rules"
        if isinstance(given, str):
            raise TypeError(f"rules must be a mapping of path prefix to features, not the string {rules!r}")
        items = rules.items() if isinstance(rules, Mapping) else rules
        parsed: dict[str, Requirement] = {}
        for item in items:
            try:
                prefix, needs = item
            except (TypeError, ValueError):
                raise ValueError(f"a rule must be a (path prefix, features) pair, got {item!r}") from None
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ValueError(f"rule prefix must be a path starting with '/', got {prefix!r}")
            parsed[prefix.rstrip("/") or "/"] = _requirement(prefix, needs)
        # Longest first, so the first match is the most specific one.
        ordered = sorted(parsed.items(), key=lambda rule: len(rule[0]), reverse=True)
        self._rules = [(prefix, prefix.rstrip("/") + "/", requirement) for prefix, requirement in ordered]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"Rules({ {prefix: requirement for prefix, _, requirement in self._rules}!r})"

    def match(self, path: str) -> Requirement | None:
        """The requirement of the longest prefix covering ``path``, or None."""
        for prefix, directory, requirement in self._rules:
            if path == prefix or path.startswith(directory):
                return requirement
        return None


def _requirement(prefix: str, needs: object) -> Requirement:
    if isinstance(needs, Requirement):
        return needs
    if isinstance(needs, str):
        needs = (needs,)
    if not isinstance(needs, Iterable):
        raise ValueError(f"rule {prefix!r} needs a lookup_key or a list of them, got {needs!r}")
    try:
        return Requirement(tuple(needs))
    except ValueError as error:
        raise ValueError(f"rule {prefix!r}: {error}") from None


def portal_url(
    resolver: Resolver,
    customer: str,
    return_url: str,
    *,
    flow: PortalFlow | None = None,
    configuration: str | None = None,
    locale: str | None = None,
) -> str:
    """A Stripe Customer Portal session URL for an upgrade redirect, made by the resolver's source.

    ``flow``, ``configuration`` and ``locale`` are :meth:`StripeSource.create_portal_session`'s.
    Raises ``TypeError`` when the source cannot make portal sessions (is no :class:`PortalSessions`,
    as :class:`StripeSource` is) and :class:`~entitlegate.SourceUnavailable` when Stripe makes none.
    """
    return _portal_sessions(resolver).create_portal_session(
        customer, return_url, **_portal_options(flow, configuration, locale)
    )


async def aportal_url(
    resolver: Resolver,
    customer: str,
    return_url: str,
    *,
    flow: PortalFlow | None = None,
    configuration: str | None = None,
    locale: str | None = None,
) -> str:
    """Async twin of :func:`portal_url`."""
    return await _portal_sessions(resolver).acreate_portal_session(
        customer, return_url, **_portal_options(flow, configuration, locale)
    )


def _portal_options(flow: PortalFlow | None, configuration: str | None, locale: str | None) -> dict[str, Any]:
    # Only the options given: a site's own PortalSessions written before the options keeps working.
    given = {"flow": flow, "configuration": configuration, "locale": locale}
    return {name: value for name, value in given.items() if value is not None}


def upgrade_body(feature: str, upgrade_url: str) -> dict[str, object]:
    """The JSON 403 a portal handler gives an API client: :func:`denial_body` plus ``upgrade_url``."""
    return {**denial_body(feature), "upgrade_url": upgrade_url}


def prefers_json(accept: str) -> bool:
    """Whether an ``Accept`` header asks for JSON rather than a page: the adapters' one rule.

    JSON when the client takes it (q > 0) at least as well as HTML or plain text: an API client
    says ``application/json``; a browser lists ``text/html`` first and ``*/*`` at a lower q, which
    counts for neither. Several ``Accept`` headers are one, joined with commas.
    """
    best_json = best_page = -1.0
    for media_range in accept.lower().split(","):
        media_type, _, parameters = media_range.partition(";")
        media_type = media_type.strip()
        if media_type == "application/json" or media_type.endswith("+json"):
            best_json = max(best_json, _quality(parameters))
        elif media_type in _PAGE_TYPES:
            best_page = max(best_page, _quality(parameters))
    return best_json > 0 and best_json >= best_page


_PAGE_TYPES = ("text/html", "text/plain", "application/xhtml+xml")
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def _quality(parameters: str) -> float:
    # RFC 9110 §12.4.2: q is 0 to 1 with at most three decimals; a malformed one counts as absent.
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip() == "q" and _QVALUE.fullmatch(value.strip()):
            return float(value)
    return 1.0


def _portal_sessions(resolver: Resolver) -> PortalSessions:
    source = resolver.source
    if not isinstance(source, PortalSessions):
        raise TypeError(f"{source!r} cannot create Stripe Customer Portal sessions; use StripeSource")
    return source
