"""What the middleware, the decorators and the dependencies share; imports nothing of this package.

Kept a leaf on purpose (Starlette's ``_utils``): every module above may import it, and it imports
none of them back, so the package has no import cycle.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import MutableMapping
from typing import Any

from entitlegate.gate import Verdict

__all__ = ["RequestRefused", "is_async_callable", "qualified_name", "route_path"]


class RequestRefused(Exception):
    """Raised by ``RequiresFeature`` / ``RequiresLimit``: EntitlementMiddleware catches it and sends the refusal."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"request refused by entitlegate: {verdict.outcome.value}")
        self.verdict = verdict


def is_async_callable(obj: object) -> bool:
    """As Starlette decides it: an async function, a partial of one, or an object whose ``__call__`` is one."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (callable(obj) and inspect.iscoroutinefunction(obj.__call__))


def qualified_name(obj: object) -> str:
    """``module.qualname`` of a function (or of a partial's function, or of a callable's class), for log lines."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def route_path(scope: MutableMapping[str, Any]) -> str:
    """The path below ``root_path``, which is what the app's own router matches (Starlette's ``get_route_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :] or "/"
    return path
