"""The facade depends on the services, never the other way round.

``database.py`` builds every service and hands each the narrow interfaces of
``services/base.py``; no module the services import, directly or through
others, may import ``database.py`` -- not even under ``TYPE_CHECKING`` or inside
a function, where a cycle is only hidden. The graph is read from the source
with :mod:`ast`: every ``import`` statement anywhere in a module counts, and
importing ``a.b.c`` also counts as importing the packages ``a.b`` and ``a``
(Python runs their ``__init__`` first) -- except the root ``elearn_data``,
whose ``__init__`` is the public re-export every module shares.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import elearn_data

ROOT = "elearn_data"
FACADE = "elearn_data.database"
PACKAGE_DIR = Path(elearn_data.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        yield base
        for alias in node.names:
            if f"{base}.{alias.name}" in known:
                yield f"{base}.{alias.name}"


def _with_parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(len(parts), 1, -1):  # stops before the root package
        yield ".".join(parts[:end])


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Return ``{module: modules of the package it imports}`` for every module."""
    paths = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    known = set(paths)
    graph: dict[str, frozenset[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(tree):
            for name in _imported(node, module, is_package, known):
                if name.split(".")[0] == ROOT:
                    targets.update(t for t in _with_parents(name) if t in known)
        targets.discard(module)
        graph[module] = frozenset(targets)
    return graph


def chain(start: str, goal: str) -> list[str] | None:
    """Return the shortest import chain from ``start`` to ``goal`` (None when there is none)."""
    graph = import_graph()
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current == goal:
            path: list[str] = []
            node: str | None = current
            while node is not None:
                path.append(node)
                node = previous[node]
            return path[::-1]
        for target in sorted(graph.get(current, ())):
            if target not in previous:
                previous[target] = current
                queue.append(target)
    return None


def _modules_under(package: str) -> list[str]:
    return sorted(m for m in import_graph() if m == package or m.startswith(package + "."))


def test_no_service_module_reaches_the_facade_through_any_import() -> None:
    services = _modules_under("elearn_data.services")
    assert "elearn_data.services.catalog" in services and len(services) >= 8
    found = {m: chain(m, FACADE) for m in services}
    assert {m: c for m, c in found.items() if c is not None} == {}


def test_the_analytics_layer_the_services_use_does_not_reach_the_facade_either() -> None:
    # db.catalog.popular shares the top-N merge of analytics/merge.py, and
    # importing it runs the analytics package's __init__.
    assert chain("elearn_data.services.catalog", "elearn_data.analytics.merge") is not None
    found = {m: chain(m, FACADE) for m in _modules_under("elearn_data.analytics")}
    assert {m: c for m, c in found.items() if c is not None} == {}


def test_the_graph_sees_the_facade_import_every_service() -> None:
    # The check above could pass by seeing nothing: the facade's own edges are there.
    for service in ("users", "catalog", "learning", "billing", "assessments", "content", "outbox"):
        assert chain(FACADE, f"elearn_data.services.{service}") == [
            FACADE,
            f"elearn_data.services.{service}",
        ]


def test_type_checking_and_function_local_imports_count_as_edges() -> None:
    # health.py imports the facade under TYPE_CHECKING only, bench/scratch users in
    # functions: both are edges, so a cycle hidden that way is still found.
    assert FACADE in import_graph()["elearn_data.health"]
    assert FACADE in import_graph()["elearn_data.cluster.backup"]


def test_services_issue_no_statements_of_their_own() -> None:
    # Every statement is a repository's: a service neither imports SQLAlchemy nor
    # executes anything on a unit of work (uow.execute, the ORM session) itself.
    offenders: dict[str, list[str]] = {}
    for module in _modules_under("elearn_data.services"):
        path = PACKAGE_DIR.parent.joinpath(*module.split("."))
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(source.read_text(encoding="utf-8"))
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in [*names, getattr(node, "module", None) or ""]:
                    if name.split(".")[0] == "sqlalchemy":
                        found.append(f"imports {name} (line {node.lineno})")
            elif isinstance(node, ast.Attribute) and node.attr in STATEMENT_RUNNERS:
                found.append(f".{node.attr} (line {node.lineno})")
        if found:
            offenders[module] = found
    assert offenders == {}


STATEMENT_RUNNERS = {
    "execute",
    "execute_on_every_shard",
    "session",
    "fetch_prepared",
    "fetch_prepared_rows",
    "fetch_prepared_on_shards",
    "rows_on_shards",
    "scalars",
}
