"""``flask entitlegate VERB …``: the ``entitlegate`` command, on the resolver the app's ``ENTITLEGATE_*`` config builds.

The verbs, their options and their exit statuses are the command's (``python -m entitlegate
--help``); the Stripe key, the Connect account and the cache come from the app's config instead of
the environment, and ``check`` checks the app's own gates unless ``--app`` names another.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from entitlegate._cli import VERBS, main
from entitlegate_flask._state import state_of

__all__ = ["entitlegate_group"]

entitlegate_group = AppGroup(
    "entitlegate",
    help="Inspect a customer's cache entries, set up or check the webhook endpoint, warm the cache, list the "
    "account's features or check the app's gates against them (VERB --help for each).",
)


def _add(name: str, help: str) -> None:
    # The verb's own parser reads every argument (--help included), so the command and the
    # console script cannot drift apart.
    @entitlegate_group.command(
        name,
        help=help,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )
    @click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
    def run(arguments: tuple[str, ...]) -> None:
        resolver = state_of(current_app).resolver
        try:
            status = main([name, *arguments], resolver=resolver, prog="flask entitlegate")
        except SystemExit as stop:  # argparse: --help (0) or a usage error (2, already printed)
            status = stop.code if isinstance(stop.code, int) else 2
        raise click.exceptions.Exit(status)


for _verb in VERBS:
    _add(_verb.name, _verb.help)
