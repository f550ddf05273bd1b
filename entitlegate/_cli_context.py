"""What every verb of the ``entitlegate`` command shares: its context, exit codes and a table.

A verb talks to Stripe and the cache through :class:`Context`, which builds them from the
environment (``STRIPE_API_KEY`` or ``--api-key-env``, ``STRIPE_API_BASE``, ``--cache`` /
``ENTITLEGATE_CACHE``), or takes a framework's ready :class:`~entitlegate.Resolver` (``manage.py
entitlegate``, ``flask entitlegate``). No message quotes a key, a secret or a Redis URL.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import stripe

from entitlegate._values import read_api_base, read_api_key, read_cache, read_stripe_account
from entitlegate.cache._base import Cache
from entitlegate.catalog import Feature
from entitlegate.errors import SourceUnavailable
from entitlegate.resolver import Resolver
from entitlegate.sources import StripeSource

__all__ = [
    "FINDING",
    "INTERRUPTED",
    "OK",
    "USAGE",
    "Context",
    "UsageError",
    "Verb",
    "cache_option",
    "common_options",
    "stripe_failure",
    "table",
]

OK, FINDING, USAGE = 0, 1, 2
INTERRUPTED = 130  # the shell's own status for a command stopped by Ctrl-C (128 + SIGINT)


class UsageError(Exception):
    """A usage or configuration error, Stripe refusing the key, or Stripe down: shown, exit 2."""


@dataclass
class Context:
    """What a verb runs with: its arguments, the environment, where to write, and what it builds."""

    args: argparse.Namespace
    environ: Mapping[str, str]
    out: TextIO
    err: TextIO
    given: Resolver | None = None  # a framework's resolver, from the project's settings
    _built: dict[str, Any] = field(default_factory=dict, repr=False)

    def source(self) -> StripeSource:
        """The StripeSource to ask; ``UsageError`` naming the variable when the key is wrong."""
        if self.given is not None:
            given = self.given.source
            if not isinstance(given, StripeSource):
                raise UsageError(f"the project's resolver asks {given!r}, not Stripe: this verb needs a StripeSource")
            return given
        if "source" not in self._built:
            name = self.args.api_key_env
            try:
                api_key = read_api_key(self.environ.get(name) or None, f"${name}", alternative="or --api-key-env NAME")
                api_base = read_api_base(self.environ.get("STRIPE_API_BASE") or None, "$STRIPE_API_BASE")
                account = read_stripe_account(self.args.stripe_account, "--stripe-account")
            except ValueError as error:
                raise UsageError(str(error)) from None
            self._built["source"] = StripeSource(
                api_key=api_key, api_base=api_base, stripe_account=account, max_network_retries=1
            )
        source: StripeSource = self._built["source"]
        return source

    def cache(self) -> Cache | None:
        """The cache ``--cache`` or ``$ENTITLEGATE_CACHE`` names (a Redis URL), or None."""
        if self.given is not None:
            return self.given.cache
        if "cache" not in self._built:
            raw = getattr(self.args, "cache", None) or self.environ.get("ENTITLEGATE_CACHE") or None
            name = "--cache" if getattr(self.args, "cache", None) else "$ENTITLEGATE_CACHE"
            cache: Cache | None = None
            if raw is not None:
                try:
                    url = read_cache(raw, name)
                except (ValueError, ImportError) as error:
                    raise UsageError(str(error)) from None
                if url != "memory":
                    from entitlegate.cache.redis import RedisCache  # the redis extra, only when asked for

                    cache = RedisCache(url)
            self._built["cache"] = cache
        built: Cache | None = self._built["cache"]
        return built

    def resolver(self) -> Resolver:
        """The project's resolver, or one on :meth:`source` and :meth:`cache`."""
        if self.given is not None:
            return self.given
        if "resolver" not in self._built:
            self._built["resolver"] = Resolver(self.source(), self.cache())
        resolver: Resolver = self._built["resolver"]
        return resolver

    def stripe(self) -> tuple[stripe.StripeClient, dict[str, Any]]:
        """The source's StripeClient and the request options it sends (its Connect account)."""
        source = self.source()
        return source._client, source._options() or {}

    def catalog(self) -> tuple[Feature, ...]:
        """The account's features; ``UsageError`` when Stripe cannot list them."""
        try:
            return self.source().list_features()
        except SourceUnavailable as error:
            raise UsageError(f"cannot list the account's features: {error}") from None

    def close(self) -> None:
        """Release what this context built (a Redis connection, its listener)."""
        cache = self._built.get("cache")
        close = getattr(cache, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class Verb:
    """One verb of the command: its name, a one-line help, the arguments it adds, what it runs.

    A ``nested`` verb (``webhook setup``, ``webhook check``) adds its own sub-verbs, each given
    :func:`common_options`; the others get them from the command.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], int]
    nested: bool = False


def common_options(parser: argparse.ArgumentParser) -> None:
    """The options every verb takes: where the Stripe key is, which connected account."""
    parser.add_argument(
        "--api-key-env",
        default="STRIPE_API_KEY",
        metavar="NAME",
        help="the environment variable holding the Stripe key (default: STRIPE_API_KEY)",
    )
    parser.add_argument("--stripe-account", metavar="acct_…", help="act for this connected account")


def cache_option(parser: argparse.ArgumentParser) -> None:
    """``--cache URL``: the shared cache to look at or fill."""
    parser.add_argument(
        "--cache",
        metavar="URL",
        help="the cache: a redis:// URL (default: $ENTITLEGATE_CACHE; the URL is never printed)",
    )


def redis_cache_of(cache: object) -> Any:
    """``cache`` if it is a :class:`~entitlegate.RedisCache`, else None (also without the redis extra)."""
    try:
        from entitlegate.cache.redis import RedisCache
    except ImportError:
        return None
    return cache if isinstance(cache, RedisCache) else None


def stripe_failure(doing: str, error: stripe.StripeError) -> UsageError:
    """An SDK error as a message that never quotes the key (the SDK's own message may)."""
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        return UsageError(
            f"cannot {doing}: Stripe rejected the API key (HTTP {error.http_status}); check the key and its permissions"
        )
    status = f"HTTP {error.http_status}" if error.http_status else "no response"
    return UsageError(f"cannot {doing}: Stripe did not answer ({type(error).__name__}, {status})")


def table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
