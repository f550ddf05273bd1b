"""``python -m entitlegate``: the command (see ``python -m entitlegate --help``)."""

from entitlegate._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
