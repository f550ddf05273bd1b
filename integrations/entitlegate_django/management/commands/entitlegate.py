"""``manage.py entitlegate VERB …``: the ``entitlegate`` command, on the resolver the project's ``ENTITLEGATE`` builds.

The verbs, their options and their exit statuses are the command's (``python -m entitlegate
--help``); the Stripe key, the Connect account and the cache come from the settings instead of
the environment. ``check`` checks this project unless ``--app`` names another.
"""

from __future__ import annotations

import argparse
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from entitlegate._cli import main
from entitlegate_django.conf import Invalid, get_resolver


class Command(BaseCommand):
    help = (
        "Inspect a customer's cache entries, set up or check the webhook endpoint, warm the cache, list "
        "the account's features or check this project's gates against them: manage.py entitlegate VERB --help."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("verb_and_options", nargs=argparse.REMAINDER, metavar="VERB …")

    def handle(self, *args: Any, **options: Any) -> None:
        argv = list(options["verb_and_options"])
        if argv[:1] == ["check"] and "--app" not in argv and not any(arg.startswith("--app=") for arg in argv):
            argv += ["--app", settings.SETTINGS_MODULE]
        try:
            resolver = get_resolver()
        except Invalid as error:
            raise CommandError(f"the ENTITLEGATE settings are wrong: {error}", returncode=2) from None
        # print() writes the line and its end apart: the wrappers must not add an end of their own.
        self.stdout.ending = self.stderr.ending = ""
        out: Any = self.stdout  # an OutputWrapper: a TextIOBase, which the command writes to as a TextIO
        err: Any = self.stderr
        try:
            # argparse writes --help and its usage errors to sys.stdout / sys.stderr itself.
            with redirect_stdout(out), redirect_stderr(err):
                status = main(argv, out=out, err=err, resolver=resolver, prog="manage.py entitlegate")
        except SystemExit as stop:  # argparse: --help (0) or a usage error (2, already printed)
            status = stop.code if isinstance(stop.code, int) else 2
        if status:
            raise CommandError(f"exit status {status}", returncode=status)
