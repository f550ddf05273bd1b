"""``python -m entitlegate`` / ``entitlegate``: operate entitlegate from a shell.

Verbs: ``features`` and ``check`` (here), ``inspect`` (``_cli_inspect``), ``webhook setup`` /
``webhook check`` (``_cli_webhook``) and ``warm`` (``_cli_warm``); what they share is in
``_cli_context``. Exit status: 0 all good, 1 a finding, 2 a usage or configuration error
(argparse's own too), 130 interrupted.

Each verb is a :class:`Verb`: its name, a one-line help, the arguments it adds, and what it
runs; a new verb is one more entry in :data:`VERBS`. The Stripe key is read from the
environment (``STRIPE_API_KEY``, or the variable ``--api-key-env`` names) and never printed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from entitlegate import registry
from entitlegate._cli_context import FINDING, OK, USAGE, Context, UsageError, Verb, common_options, table
from entitlegate._cli_inspect import INSPECT
from entitlegate._cli_warm import WARM
from entitlegate._cli_webhook import WEBHOOK
from entitlegate.catalog import Finding, audit
from entitlegate.gate import Rules
from entitlegate.resolver import Resolver

__all__ = ["VERBS", "Verb", "main"]

# -- features ------------------------------------------------------------------------------------


def _features_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per feature instead of a table")


def _features(context: Context) -> int:
    features = sorted(context.catalog(), key=lambda feature: (not feature.active, feature.lookup_key))
    if context.args.json:
        for feature in features:
            row = {
                "id": feature.id,
                "lookup_key": feature.lookup_key,
                "name": feature.name,
                "active": feature.active,
                "limits": {name: _shown_limit(value) for name, value in feature.limits.items()},
                "malformed": dict(feature.malformed),
            }
            print(json.dumps(row, sort_keys=True), file=context.out)
    else:
        rows = [
            [
                feature.lookup_key,
                feature.name,
                "yes" if feature.active else "archived",
                ", ".join(f"{name}={_shown_limit(value)}" for name, value in sorted(feature.limits.items())) or "-",
                ", ".join(f"{name}={value!r}" for name, value in sorted(feature.malformed.items())) or "-",
            ]
            for feature in features
        ]
        table(["LOOKUP_KEY", "NAME", "ACTIVE", "LIMITS", "MALFORMED (ignored)"], rows, context.out)
        print(f"\n{len(features)} features", file=context.out)
    return FINDING if any(feature.malformed for feature in features) else OK


def _shown_limit(value: float) -> str:
    return "unlimited" if value == math.inf else str(int(value))


# -- check ---------------------------------------------------------------------------------------


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app",
        metavar="MODULE[:ATTR]",
        help="the app to import so its gates register: a Django settings module, a Flask app or app "
        "factory (module:create_app), or an ASGI app (module:app)",
    )


def _check(context: Context) -> int:
    if context.args.app is not None:
        load_app(context.args.app)
    elif context.given is None:
        raise UsageError("--app MODULE[:ATTR] is required: the app whose gates to check")
    # else: `flask entitlegate check`, whose app is loaded and its gates registered already
    app = context.args.app or "the app"
    lookup_keys, limit_names = registry.lookup_keys(), registry.limit_names()
    if not lookup_keys and not limit_names:
        print(
            f"{app} registered no gate: no decorator, mixin, dependency, rule or requirement "
            "was built when it was imported (is --app the right module?)",
            file=context.out,
        )
        return FINDING
    features = context.catalog()
    findings = audit(features, lookup_keys, limit_names)
    checked = f"{len(lookup_keys)} lookup_keys and {len(limit_names)} limit names against {len(features)} features"
    if not findings:
        print(f"ok: {checked}", file=context.out)
        return OK
    print(f"{len(findings)} problem{'s' if len(findings) != 1 else ''} ({checked}):", file=context.out)
    for finding in findings:
        print(f"  {_label(finding)}: {finding.message}", file=context.out)
    return FINDING


def _label(finding: Finding) -> str:
    return finding.kind.replace("_", " ")


def load_app(spec: str) -> object:
    """Import ``MODULE[:ATTR]`` so that its gates register; returns the app (or the module).

    A Django settings module (it has ``INSTALLED_APPS``) is set up and its ``ROOT_URLCONF``
    imported; a zero-argument callable that is not an app (a factory) is called; an app whose
    middleware is built lazily (Starlette) has it built. Raises ``UsageError`` when the module or
    attribute cannot be found.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise UsageError(f"--app must be MODULE or MODULE:ATTR, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `flask --app` and uvicorn do: the project's own modules
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name!r} (--app): {error}") from None
    except Exception as error:
        # The app's own failure; its message may quote its settings, so only its type is shown.
        raise UsageError(
            f"importing {module_name!r} (--app) raised {type(error).__name__}; "
            f"`python -c 'import {module_name}'` shows the traceback"
        ) from None
    if attribute:
        try:
            app: object = getattr(module, attribute)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r} (--app)") from None
    elif hasattr(module, "INSTALLED_APPS"):
        return _load_django(module_name, module)
    else:
        app = next((getattr(module, name) for name in ("app", "application") if hasattr(module, name)), module)
    if _is_factory(app):
        try:
            app = app()  # type: ignore[operator]
        except Exception as error:
            raise UsageError(f"the app factory {spec!r} (--app) raised {type(error).__name__}") from None
    build = getattr(app, "build_middleware_stack", None)
    if callable(build):
        build()  # Starlette builds its middleware (and their rules) on the first request otherwise
    return app


def _is_factory(app: object) -> bool:
    if not inspect.isfunction(app):
        return False  # a Flask app, an ASGI app class instance, a module
    required = [
        parameter
        for parameter in inspect.signature(app).parameters.values()
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    return not required  # an ASGI app function takes (scope, receive, send)


def _load_django(module_name: str, settings_module: Any) -> object:
    # Imported by name: the core imports no framework, and only a Django project gets here.
    os.environ["DJANGO_SETTINGS_MODULE"] = module_name
    django = importlib.import_module("django")
    django.setup()
    urlconf = getattr(settings_module, "ROOT_URLCONF", None)
    if urlconf:
        importlib.import_module(urlconf)  # the views, and their decorators, are imported by it
    rules = getattr(settings_module, "ENTITLEGATE", {}).get("RULES")
    if rules:
        Rules(rules)  # the middleware builds these on its first request
    return settings_module


# -- the command ---------------------------------------------------------------------------------

VERBS: tuple[Verb, ...] = (
    Verb("features", "list the account's features: lookup_key, name, active, limits", _features_arguments, _features),
    Verb(
        "check",
        "compare the lookup_keys and limits an app gates on with the account's features",
        _check_arguments,
        _check,
    ),
    INSPECT,
    WEBHOOK,
    WARM,
)


def _parser(prog: str = "entitlegate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Look at a Stripe account's features and webhook endpoints, inspect and warm the "
        "cache, and check an app's gates against the account.",
        epilog="Reads STRIPE_API_KEY (or --api-key-env NAME), STRIPE_API_BASE and ENTITLEGATE_CACHE from the "
        "environment. Exit status: 0 all good, 1 a finding, 2 a usage or configuration error (or Stripe "
        "refusing the key, or not answering), 130 interrupted.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common_options(common)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        parents = [] if verb.nested else [common]
        sub = verbs.add_parser(verb.name, help=verb.help, description=verb.help, parents=parents)
        verb.arguments(sub)
        sub.set_defaults(run=verb.run)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    resolver: Resolver | None = None,
    prog: str = "entitlegate",
) -> int:
    """Run the command; returns its exit status (argparse exits 2 itself on a usage error).

    ``resolver`` is a framework's ready resolver (``manage.py entitlegate``, ``flask
    entitlegate``): the verbs then use its source and cache rather than the environment's.
    """
    args = _parser(prog).parse_args(argv)
    context = Context(args, os.environ if environ is None else environ, out or sys.stdout, err or sys.stderr, resolver)
    try:
        status: int = args.run(context)
    except UsageError as error:
        print(f"{prog} {args.verb}: {error}", file=context.err)
        return USAGE
    finally:
        context.close()
    return status
