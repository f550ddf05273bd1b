"""No package imports itself in a circle: its modules form layers (see ARCHITECTURE.md).

The imports are read from the source with ``ast``, every one of them: at module level, under
``if TYPE_CHECKING:`` and inside functions (a deferred import that dodges a cycle is still one).
An import names the module it reads from; the parent packages Python imports on the way are
not counted, as every module of a package would otherwise be in a cycle with its ``__init__``.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
Graph = dict[str, dict[str, int]]  # module -> the modules of its package it imports -> first line


def _modules(base: Path, package: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((base / package).rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's own package, up level - 1 more
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        origin = ".".join([*package, *([node.module] if node.module else [])])
    else:
        origin = node.module or ""
    # `from pkg import mod` imports the module pkg.mod; `from pkg.mod import name`, pkg.mod.
    return [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin for alias in node.names]


def import_graph(base: Path, package: str) -> Graph:
    """Every module of ``package`` (under ``base``) and the modules of the package it imports."""
    known = _modules(base, package)
    graph: Graph = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _imported(module, path, node, known):
                while target and target not in known:  # `import pkg.mod.name`: the module is pkg.mod
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (a path that ends where it began) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm; packages are small enough to recurse
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: Graph, group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first inside the group: the shortest way back to the start
        following: list[str] = []
        for module in frontier:
            for target in sorted(graph[module]):
                if target == start:
                    return [*paths[module], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # pragma: no cover


def describe(graph: Graph, cycle: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a``: each import with the line it is on."""
    steps = [f"{module} (line {graph[module][target]})" for module, target in itertools.pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def assert_acyclic(base: Path, package: str) -> None:
    graph = import_graph(base, package)
    assert len(graph) > 1, f"no modules found for {package} under {base}"
    found = cycles(graph)
    assert not found, f"{package} has import cycles:\n" + "\n".join(describe(graph, cycle) for cycle in found)


def test_the_core_has_no_import_cycle() -> None:
    assert_acyclic(ROOT, "entitlegate")


@pytest.mark.parametrize("package", ["entitlegate_django", "entitlegate_flask", "entitlegate_asgi"])
def test_an_adapter_package_has_no_import_cycle(package: str) -> None:
    assert_acyclic(ROOT / "integrations", package)


def test_a_cycle_is_named_with_the_lines_that_make_it(tmp_path: Path) -> None:
    package = tmp_path / "tangled"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from tangled import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .a import A\n")
    (package / "c.py").write_text("def later():\n    import tangled.a\n")
    with pytest.raises(AssertionError, match=r"tangled\.a \(line 1\) -> tangled\.b \(line 4\) -> tangled\.a"):
        assert_acyclic(tmp_path, "tangled")


def test_the_webhook_handler_reaches_the_cache_and_the_source_only_through_resolver_methods() -> None:
    tree = ast.parse((ROOT / "entitlegate" / "webhooks.py").read_text(encoding="utf-8"))
    reached = sorted(
        f"line {node.lineno}: resolver.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"cache", "source"}
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "resolver"
    )
    assert reached == []
