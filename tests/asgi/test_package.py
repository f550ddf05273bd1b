"""The package's public names, and what it needs installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import entitlegate_asgi


def test_public_names_are_pinned() -> None:
    assert entitlegate_asgi.__all__ == [
        "EntitlementMiddleware",
        "Entitlements",
        "RequiresFeature",
        "RequiresLimit",
        "RequiresUsage",
        "portal_upgrade",
        "requires_feature",
        "requires_limit",
        "requires_usage",
        "webhook_app",
    ]
    for name in entitlegate_asgi.__all__:
        assert getattr(entitlegate_asgi, name) is not None, name


def run_without_starlette(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which importing Starlette fails, as if it were not installed."""
    prelude = "import sys\nsys.modules['starlette'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_middleware_and_webhook_app_work_without_starlette() -> None:
    result = run_without_starlette(
        """
        from entitlegate_asgi import EntitlementMiddleware, Entitlements, webhook_app
        assert not any(name.startswith("starlette") and sys.modules[name] for name in sys.modules)
        """
    )

    assert result.returncode == 0, result.stderr


def test_starlette_helpers_without_starlette_say_what_to_install() -> None:
    result = run_without_starlette(
        """
        for name in (
            "requires_feature", "RequiresFeature", "requires_limit", "RequiresLimit", "requires_usage", "RequiresUsage"
        ):
            try:
                getattr(__import__("entitlegate_asgi"), name)
            except ImportError as error:
                assert 'pip install "entitlegate[asgi]"' in str(error), error
            else:
                raise AssertionError(name + " imported without Starlette")
        """
    )

    assert result.returncode == 0, result.stderr


def test_unknown_attribute_is_an_attribute_error() -> None:
    assert not hasattr(entitlegate_asgi, "no_such_name")


def test_the_shared_helpers_module_imports_nothing_of_the_package() -> None:
    # The leaf every module may import: importing one of them back would start a cycle.
    source = (Path(entitlegate_asgi.__file__).parent / "_utils.py").read_text(encoding="utf-8")
    imported = [
        node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("entitlegate_asgi")
    ]
    assert imported == []
