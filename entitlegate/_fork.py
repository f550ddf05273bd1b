"""One hook for everything a forked child must not share with its parent.

A gunicorn ``--preload`` app or a multiprocessing pool forks a process that already holds Stripe
and Redis connections, locks other threads may have held, and fetches in flight on threads the
child does not have. Each object holding such state registers its reset here once; the child runs
every live one right after ``os.fork()``. Objects are held weakly, so registering keeps nothing
alive. This module imports nothing else of entitlegate.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["reset_after_fork"]

_resets: set[weakref.WeakMethod[Callable[[], None]]] = set()
_lock = threading.Lock()


def reset_after_fork(reset: Callable[[], None]) -> None:
    """Call ``reset`` (a bound method, held weakly) in the child after every ``os.fork()``."""
    with _lock:
        _resets.add(weakref.WeakMethod(reset, _resets.discard))


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held it at the fork
    for ref in list(_resets):
        reset = ref()
        if reset is not None:
            reset()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_in_child)
