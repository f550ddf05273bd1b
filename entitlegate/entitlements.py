"""One request's entitlements: its customer, found once, and that customer's answer, asked once.

Every web adapter gives its views one of these (Django's ``request.entitlements``, Flask's
``entitlegate_flask.current_entitlements``, ASGI's ``request.state.entitlements``), so a request behaves the same
whatever the framework: the site's customer callable runs at most once and is read by one rule
(:func:`entitlegate.gate.read_customer`), and the resolver is asked at most once — an outage
included, so a page with many checks makes one trip to Stripe, not one per check. It holds no
framework object; the adapter hands it the resolver and a customer thunk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from entitlegate.catalog import Limit
from entitlegate.errors import SourceUnavailable
from entitlegate.gate import (
    Outcome,
    Requirement,
    Verdict,
    customer_failed,
    judge,
    judge_limit,
    judge_usage,
    read_customer,
)
from entitlegate.limits import LimitRequirement, UsageRequirement
from entitlegate.resolver import Resolver, answer_in_outage

__all__ = ["CustomerLookup", "Entitlements"]

logger = logging.getLogger("entitlegate")

_EMPTY: frozenset[str] = frozenset()
_LOG_DENIAL_EVERY = 60.0  # seconds between two log lines for one customer and one feature or limit
_DENIALS_KEPT = 10_000  # (customer, name) pairs remembered for that; the oldest is forgotten first
_logged_denials: dict[tuple[str, str], float] = {}
_logged_denials_lock = threading.Lock()
_NO_LIMITS: Mapping[str, Limit] = {}
_NO_CUSTOMER = Verdict(Outcome.NO_CUSTOMER)
_ALLOWED = Verdict(Outcome.ALLOWED)
_DENIED = Outcome.DENIED  # read once: an enum member through its class costs ~70 ns
_UNSET: object = object()
_new = object.__new__
_E = TypeVar("_E", bound="Entitlements")


def _request_over() -> object:
    raise RuntimeError("the request is over: its customer can be looked up only while it is being handled")


class CustomerLookup:
    """How a site finds a request's customer: made once (per settings, app or middleware) and shared.

    ``resolver`` answers for the customer; ``customer`` is the site's sync callable (None when it
    has only an async one), ``acustomer`` its async twin; ``where`` names the callable in log lines
    (``ENTITLEGATE['CUSTOMER']``, ...); exceptions of the types in ``reraise`` pass through the
    lookup instead of meaning "no customer". :meth:`Entitlements.for_request` binds it to one
    request: an adapter builds this once, so a request's object costs a handful of stores.
    """

    __slots__ = ("_over", "acustomer", "customer", "reraise", "resolver", "where")

    def __init__(
        self,
        resolver: Resolver,
        customer: Callable[..., object] | None,
        acustomer: Callable[..., Awaitable[object]] | None = None,
        where: str = "the customer callable",
        reraise: tuple[type[Exception], ...] = (),
    ) -> None:
        self.resolver = resolver
        self.customer = customer
        self.acustomer = acustomer
        self.where = where
        self.reraise = reraise
        self._over: CustomerLookup | None = None

    def __repr__(self) -> str:
        return f"<CustomerLookup {self.where} resolver={self.resolver!r}>"

    def over(self) -> CustomerLookup:
        """This lookup once its request is over: finding the customer then fails (and is logged
        under the same name). Made once, so letting go of a request allocates nothing."""
        over = self._over
        if over is None:
            over = self._over = CustomerLookup(self.resolver, _request_over, None, self.where, self.reraise)
        return over


class Entitlements:
    """The entitlements of one request's customer, looked up only when something asks.

    ``customer`` is a zero-argument callable returning the request's Stripe customer id or None
    (the site's customer function, bound to this request), called on first need; ``acustomer`` is
    its async twin, for async views (without it, the async reads call ``customer``). Given ``of``
    (the request, the scope), both are called with it instead: a site's own function serves as is,
    with no per-request closure. Once the customer is known they are let go, so the object holds
    no reference back to its request (which often holds it). ``where``
    names the site's callable in log lines (``ENTITLEGATE['CUSTOMER']``, ...). What it returns is
    read by :func:`~entitlegate.gate.read_customer`; if it raises, the error is logged and the
    request has no customer: a 401 / login / 403, never a 500 — except the exception types in
    ``reraise``, which pass through (Django's ``Http404`` / ``PermissionDenied``, which the
    framework answers itself). An adapter that makes one per request builds a
    :class:`CustomerLookup` once and calls :meth:`for_request` instead.

    :attr:`features` raises :class:`~entitlegate.SourceUnavailable` in an outage and
    :meth:`has_feature` answers as the resolver's ``on_unavailable`` says; :meth:`check` never
    raises (the outage is its verdict); the ``safe_`` reads never break a template. Whichever comes
    first, the resolver is asked once per request and its answer, or its outage, is kept. One
    object belongs to one request and is not thread-safe.
    """

    __slots__ = ("_answer", "_customer", "_limits", "_lookup", "_of", "resolver")

    def __init__(
        self,
        resolver: Resolver,
        customer: Callable[..., object] | None,
        acustomer: Callable[..., Awaitable[object]] | None = None,
        where: str = "the customer callable",
        reraise: tuple[type[Exception], ...] = (),
        of: object = _UNSET,
    ) -> None:
        self._bind(CustomerLookup(resolver, customer, acustomer, where, reraise), of)

    @classmethod
    def for_request(cls: type[_E], lookup: CustomerLookup, of: object = _UNSET) -> _E:
        """The entitlements of the request (or scope) ``of``, found through a site's shared ``lookup``.

        What an adapter calls once per request: the lookup's callables are called with ``of``
        (without it, with no argument), as :class:`Entitlements` says.
        """
        self = _new(cls)
        self._bind(lookup, of)
        return self

    @classmethod
    def answered(cls: type[_E], lookup: CustomerLookup, of: object = _UNSET) -> _E:
        """:meth:`for_request`, with the customer looked up and the resolver asked now (sync).

        What a gate calls on a request that has no object yet, since it reads both at once: the
        same answer (an outage included) and the same one lookup as the lazy object, in fewer
        steps. The lookup needs a sync customer callable.
        """
        if lookup.customer is None:
            raise TypeError("Entitlements.answered needs a sync customer callable: use for_request() and acheck()")
        self = _new(cls)
        self.resolver = resolver = lookup.resolver
        self._lookup = self._of = self._limits = None
        # _find, inlined on purpose: every sync gated request comes through here, and the call costs
        # ~450 instructions (python -m bench.instructions django-gated). Keep the two alike.
        find = lookup.customer
        try:
            found = find() if of is _UNSET else find(of)
        except lookup.reraise:
            raise
        except Exception as error:
            customer_failed(lookup.where, error)
            found = None
        customer = self._customer = (
            found if type(found) is str and found and found == found.strip() else read_customer(found, lookup.where)
        )
        if customer is None:
            self._answer = _EMPTY
        else:
            try:
                self._answer = resolver.features(customer)
            except SourceUnavailable as error:
                self._answer = error
        return self

    def _bind(self, lookup: CustomerLookup, of: object) -> None:
        self._lookup: CustomerLookup | None = lookup
        self.resolver = lookup.resolver
        self._of = of
        self._customer: object = _UNSET
        self._answer: frozenset[str] | SourceUnavailable | None = None
        self._limits: Mapping[str, Limit] | SourceUnavailable | None = None

    def __repr__(self) -> str:
        if self._customer is _UNSET:
            return f"<{type(self).__name__} (not looked up)>"
        if isinstance(self._answer, SourceUnavailable):
            return f"<{type(self).__name__} customer={self._customer!r} unavailable>"
        shown = "not asked" if self._answer is None else sorted(self._answer)
        return f"<{type(self).__name__} customer={self._customer!r} features={shown!r}>"

    # -- the customer ---------------------------------------------------------------------------

    @property
    def customer(self) -> str | None:
        """The request's Stripe customer id, or None (nobody signed in, or no customer id)."""
        return self._look_up()

    def _look_up(self) -> str | None:
        # The customer, found with the sync callable on first need. answer() and the async reads
        # (when there is no async callable) call it directly: a Python call fewer than through
        # the property, which an adapter may also override to refuse a sync read that the async
        # path is allowed to make.
        customer = self._customer
        if customer is _UNSET:
            lookup: CustomerLookup = self._lookup  # type: ignore[assignment]  # set until the customer is
            if lookup.customer is None:
                raise RuntimeError(self._not_found())
            customer = self._customer = _find(lookup, self._of)
            self._lookup = self._of = None
        return customer  # type: ignore[return-value]  # a str or None once set

    async def acustomer(self) -> str | None:
        """Async twin of :attr:`customer`."""
        customer = self._customer
        if customer is _UNSET:
            lookup: CustomerLookup = self._lookup  # type: ignore[assignment]  # set until the customer is
            find = lookup.acustomer
            if find is None:
                return self._look_up()
            of = self._of
            try:
                customer = read_customer(await (find() if of is _UNSET else find(of)), lookup.where)
            except lookup.reraise:
                raise
            except Exception as error:
                customer_failed(lookup.where, error)
                customer = None
            self._customer = customer
            self._lookup = self._of = None
        return customer  # type: ignore[return-value]

    @property
    def found(self) -> bool:
        """Whether the customer has been looked up (:attr:`customer` reads without calling anything)."""
        return self._customer is not _UNSET

    def release(self) -> None:
        """The request is over: let go of it and of the customer callables, if still held.

        An adapter that hands ``of`` a request or scope which holds this object calls it when the
        request ends, so no reference cycle is left for the collector. A lookup after it finds
        no customer (logged as a failed lookup).
        """
        lookup = self._lookup
        if lookup is not None:
            self._lookup, self._of = lookup._over or lookup.over(), _UNSET  # made once per lookup

    def _not_found(self) -> str:
        """The message when the customer is read before an async-only lookup ran (adapters may say more)."""
        return "the request's customer has not been looked up yet: await acustomer() (or afeatures()) first"

    # -- the answer: features, or the outage that kept them away ---------------------------------

    def answer(self) -> frozenset[str] | SourceUnavailable:
        """The customer's features or the outage met asking for them, asked once (empty: no customer)."""
        answer = self._answer
        if answer is None:
            customer = self._look_up()
            if customer is None:
                answer = _EMPTY
            else:
                try:
                    answer = self.resolver.features(customer)
                except SourceUnavailable as error:
                    answer = error
            self._answer = answer
        return answer

    async def aanswer(self) -> frozenset[str] | SourceUnavailable:
        """Async twin of :meth:`answer`."""
        answer = self._answer
        if answer is None:
            answer = self._at_hand()
            if answer is None:
                answer = await self._awaited_answer()
        return answer

    async def _awaited_answer(self) -> frozenset[str] | SourceUnavailable:
        # What _at_hand could not answer: an async lookup, or a miss. Asked once, and kept.
        customer = self._customer
        found: frozenset[str] | None = None
        if customer is _UNSET:
            customer = await self.acustomer()
            found = _EMPTY if customer is None else self.resolver.cached_features(customer)
        answer: frozenset[str] | SourceUnavailable
        if found is not None:
            answer = found
        else:
            try:
                answer = await self.resolver.afeatures(customer)  # type: ignore[arg-type]  # a str here
            except SourceUnavailable as error:
                answer = error
        self._answer = answer
        return answer

    def _at_hand(self) -> frozenset[str] | None:
        """The answer, if it can be had without awaiting (a sync lookup, then a hit or no customer), kept.

        None when it cannot: the lookup is async, or the cache has no fresh answer. The async reads
        try it first, so a gate on a hit awaits no coroutine of ours but its own.
        """
        customer = self._customer
        if customer is _UNSET:
            if self._lookup.acustomer is not None:  # type: ignore[union-attr]  # set until the customer is
                return None
            customer = self._look_up()
        answer = _EMPTY if customer is None else self.resolver.cached_features(customer)  # type: ignore[arg-type]
        if answer is not None:
            self._answer = answer
        return answer

    @property
    def features(self) -> frozenset[str]:
        """The customer's active lookup_keys (empty without a customer); raises in an outage."""
        answer = self.answer()
        if isinstance(answer, SourceUnavailable):
            raise answer
        return answer

    async def afeatures(self) -> frozenset[str]:
        """Async twin of :attr:`features`."""
        answer = await self.aanswer()
        if isinstance(answer, SourceUnavailable):
            raise answer
        return answer

    def has_feature(self, lookup_key: str) -> bool:
        """Whether the customer holds ``lookup_key``; in an outage, as ``on_unavailable`` says."""
        answer = self.answer()
        if isinstance(answer, SourceUnavailable):
            return answer_in_outage(self.resolver.on_unavailable, answer)
        return lookup_key in answer

    __contains__ = has_feature

    async def ahas_feature(self, lookup_key: str) -> bool:
        """Async twin of :meth:`has_feature`."""
        answer = await self.aanswer()
        if isinstance(answer, SourceUnavailable):
            return answer_in_outage(self.resolver.on_unavailable, answer)
        return lookup_key in answer

    # -- the gate's verdict ---------------------------------------------------------------------

    def check(self, requirement: Requirement) -> Verdict:
        """The gate's verdict on this request: allowed, no customer, denied (naming a feature), unavailable."""
        answer = self._answer
        if answer is None:
            answer = self.answer()  # looks the customer up first: read it after, from the memo
        customer = self._customer
        if customer is None:
            return _NO_CUSTOMER
        # judge's allowed case, first: the one nearly every gated request takes.
        if type(answer) is frozenset and requirement.allows(answer):
            return _ALLOWED
        verdict = judge(requirement, answer, self.resolver.on_unavailable)
        if verdict.outcome is _DENIED:
            _log_denial(self.resolver, customer, verdict)  # type: ignore[arg-type]  # a str once found
        return verdict

    async def acheck(self, requirement: Requirement) -> Verdict:
        """Async twin of :meth:`check`."""
        answer = self._answer
        if answer is None:
            answer = self._at_hand()  # a hit, without awaiting a coroutine
            if answer is None:
                answer = await self._awaited_answer()  # finds the customer first: one await for both
        customer = self._customer
        if customer is None:
            return _NO_CUSTOMER
        if type(answer) is frozenset and requirement.allows(answer):  # as in check
            return _ALLOWED
        verdict = judge(requirement, answer, self.resolver.on_unavailable)
        if verdict.outcome is _DENIED:
            _log_denial(self.resolver, customer, verdict)  # type: ignore[arg-type]  # a str once found
        return verdict

    # -- limits from Feature metadata (entitlegate.catalog) ---------------------------------------

    def limits_answer(self) -> Mapping[str, Limit] | SourceUnavailable:
        """The customer's limits by name, or the outage met reading them, asked once (empty: no customer).

        They come from the features this object already holds and the resolver's catalog, so a
        request that checks features and limits asks for the features once. Raises ``TypeError``
        when the resolver's source cannot list features (see :class:`~entitlegate.catalog.CatalogSource`).
        """
        limits = self._limits
        if limits is None:
            answer = self.answer()
            if isinstance(answer, SourceUnavailable):
                limits = answer
            elif self.customer is None:
                limits = _NO_LIMITS
            else:
                try:
                    limits = self.resolver.catalog.limits_for(answer)
                except SourceUnavailable as error:
                    limits = error
            self._limits = limits
        return limits

    async def alimits_answer(self) -> Mapping[str, Limit] | SourceUnavailable:
        """Async twin of :meth:`limits_answer`."""
        limits = self._limits
        if limits is None:
            answer = await self.aanswer()
            if isinstance(answer, SourceUnavailable):
                limits = answer
            elif await self.acustomer() is None:
                limits = _NO_LIMITS
            else:
                try:
                    limits = await self.resolver.catalog.alimits_for(answer)
                except SourceUnavailable as error:
                    limits = error
            self._limits = limits
        return limits

    @property
    def limits(self) -> Mapping[str, Limit]:
        """Every limit the customer has, by name (empty without a customer); raises in an outage."""
        limits = self.limits_answer()
        if isinstance(limits, SourceUnavailable):
            raise limits
        return limits

    async def alimits(self) -> Mapping[str, Limit]:
        """Async twin of :attr:`limits`."""
        limits = await self.alimits_answer()
        if isinstance(limits, SourceUnavailable):
            raise limits
        return limits

    def limit(self, name: str, default: Limit = 0) -> Limit:
        """The customer's limit ``name`` (``math.inf`` for ``"unlimited"``), ``default`` if none carries it.

        Raises :class:`~entitlegate.SourceUnavailable` in an outage: a limit is never guessed.
        """
        return self.limits.get(name, default)

    async def alimit(self, name: str, default: Limit = 0) -> Limit:
        """Async twin of :meth:`limit`."""
        return (await self.alimits()).get(name, default)

    def check_limit(self, requirement: LimitRequirement, need: int) -> Verdict:
        """The gate's verdict on this request needing ``need`` of the limit ``requirement.name``."""
        customer = self.customer
        if customer is None:
            return _NO_CUSTOMER
        verdict = judge_limit(requirement, need, self.limits_answer(), self.resolver.on_unavailable)
        if verdict.outcome is _DENIED:
            _log_denial(self.resolver, customer, verdict)
        return verdict

    async def acheck_limit(self, requirement: LimitRequirement, need: int) -> Verdict:
        """Async twin of :meth:`check_limit`."""
        customer = await self.acustomer()
        if customer is None:
            return _NO_CUSTOMER
        verdict = judge_limit(requirement, need, await self.alimits_answer(), self.resolver.on_unavailable)
        if verdict.outcome is _DENIED:
            _log_denial(self.resolver, customer, verdict)
        return verdict

    # -- usage against a meter (entitlegate.usage) ------------------------------------------------

    def check_usage(self, requirement: UsageRequirement) -> Verdict:
        """The gate's verdict on this request using ``requirement.value`` of ``requirement.meter``.

        Allowed only when :meth:`Resolver.consume_usage` admits the use under the customer's limit
        (a named one read once per request, with the features); the use is counted at admission,
        so each call is one use. A denial names the meter with its
        :class:`~entitlegate.gate.UsageShortfall`; an outage (the limit or the counter cannot be
        read) follows ``on_unavailable``, and a use that ``"allow"`` lets through is recorded all
        the same (:meth:`Resolver.record_usage`), so it is billed.
        """
        customer = self.customer
        if customer is None:
            return _NO_CUSTOMER
        resolver = self.resolver
        named = requirement.limit
        limit = named if isinstance(named, int) else _limit_in(requirement, self.limits_answer())
        consumed: tuple[bool, int] | SourceUnavailable
        if isinstance(limit, SourceUnavailable):
            consumed = limit
        else:
            try:
                consumed = resolver.consume_usage(customer, requirement.meter, limit, requirement.value)
            except SourceUnavailable as error:
                consumed = error
        verdict = _judge_usage(resolver, customer, requirement, limit, consumed)
        if verdict.allowed and isinstance(consumed, SourceUnavailable):
            resolver.record_usage(customer, requirement.meter, requirement.value)  # never loses the event
        return verdict

    async def acheck_usage(self, requirement: UsageRequirement) -> Verdict:
        """Async twin of :meth:`check_usage`."""
        customer = await self.acustomer()
        if customer is None:
            return _NO_CUSTOMER
        resolver = self.resolver
        named = requirement.limit
        limit = named if isinstance(named, int) else _limit_in(requirement, await self.alimits_answer())
        consumed: tuple[bool, int] | SourceUnavailable
        if isinstance(limit, SourceUnavailable):
            consumed = limit
        else:
            try:
                consumed = await resolver.aconsume_usage(customer, requirement.meter, limit, requirement.value)
            except SourceUnavailable as error:
                consumed = error
        verdict = _judge_usage(resolver, customer, requirement, limit, consumed)
        if verdict.allowed and isinstance(consumed, SourceUnavailable):
            await resolver.arecord_usage(customer, requirement.meter, requirement.value)
        return verdict

    def safe_limit(self, name: str, default: Limit = 0) -> Limit:
        """:meth:`limit` for a template: ``default`` without a customer, in an outage, or when the
        source has no feature catalog to read limits from (a page is never broken by a limit)."""
        try:
            limits = self.limits_answer()
        except TypeError:  # the source cannot list features: a set-up problem, not the page's
            return default
        return default if isinstance(limits, SourceUnavailable) else limits.get(name, default)

    # -- reads for templates, which must never break a page ---------------------------------------

    def safe_has_feature(self, lookup_key: str) -> bool:
        """:meth:`has_feature` for a template: False without a customer; an outage answers as
        ``on_unavailable`` says, with False under ``"raise"``."""
        answer = self.answer()
        if isinstance(answer, SourceUnavailable):
            return self.resolver.on_unavailable == "allow"
        return lookup_key in answer

    def safe_features(self) -> frozenset[str]:
        """:attr:`features` for a template: the empty set without a customer or in an outage."""
        answer = self.answer()
        return _EMPTY if isinstance(answer, SourceUnavailable) else answer


def _find(lookup: CustomerLookup, of: object) -> str | None:
    """The customer of ``of`` through the lookup's sync callable, read by the one rule; None if it fails."""
    find: Callable[..., object] = lookup.customer  # type: ignore[assignment]  # the caller checked
    try:
        found = find() if of is _UNSET else find(of)
    except lookup.reraise:
        raise
    except Exception as error:
        customer_failed(lookup.where, error)
        return None
    # read_customer's first case, inlined: an id as it should be (the common answer).
    if type(found) is str and found and found == found.strip():
        return found
    return read_customer(found, lookup.where)


def _limit_in(
    requirement: UsageRequirement, limits: Mapping[str, Limit] | SourceUnavailable
) -> Limit | SourceUnavailable:
    return limits if isinstance(limits, SourceUnavailable) else requirement.limit_in(limits)


def _judge_usage(
    resolver: Resolver,
    customer: str,
    requirement: UsageRequirement,
    limit: Limit | SourceUnavailable,
    consumed: tuple[bool, int] | SourceUnavailable,
) -> Verdict:
    # The twins' shared step after their I/O: judge, and log a denial.
    known = 0 if isinstance(limit, SourceUnavailable) else limit  # unused by judge_usage in an outage
    verdict = judge_usage(requirement, consumed, known, resolver.on_unavailable)
    if verdict.outcome is _DENIED:
        _log_denial(resolver, customer, verdict)
    return verdict


def _log_denial(resolver: Resolver, customer: str, verdict: Verdict) -> None:
    """Log a denial at INFO with the decision behind it, once a minute per customer and name.

    So "why was cus_123 denied?" is one grep. The line names the customer id, the feature, limit
    or meter (with the period's usage), the cause and where the answer came from
    (:meth:`Resolver.recall`): no key, and nothing else about the customer.
    """
    name = str(verdict.feature)
    now = time.monotonic()
    with _logged_denials_lock:
        last = _logged_denials.pop((customer, name), None)
        if last is not None and now - last < _LOG_DENIAL_EVERY:
            _logged_denials[(customer, name)] = last
            return
        if len(_logged_denials) >= _DENIALS_KEPT:
            _logged_denials.pop(next(iter(_logged_denials)))
        _logged_denials[(customer, name)] = now
    usage = verdict.usage
    if usage is not None:  # the counter decided, not the features: no Decision to recall
        logger.info(
            "entitlegate denied %s: needs %s more of meter %r; used %s of %s this period",
            customer,
            usage.value,
            usage.meter,
            usage.usage,
            usage.limit,
        )
        return
    decision = resolver.recall(customer, name)
    shortfall = verdict.shortfall
    needs = f"{shortfall.need} of {name!r} (the plan allows {shortfall.allowed})" if shortfall else repr(name)
    logger.info(
        "entitlegate denied %s: needs %s; cause=%s source=%s age=%s version=%s",
        customer,
        needs,
        verdict.cause.value if verdict.cause else "-",
        decision.source,
        "-" if decision.age is None else f"{decision.age:.0f}s",
        "-" if decision.version is None else f"{decision.version:.0f}",
    )
