"""Lint: no SQL text is built by formatting runtime values into it.

Every statement elearn_data sends must carry values as bind parameters. This
test parses the package (and the migrations and scripts that ship with it)
with ``ast`` and fails when the SQL argument of a statement sink -- ``text()``,
``execute()``, ``executemany()``, ``exec_driver_sql()``, ``cursor.execute()``,
``mogrify()``, ``copy_expert()``, ``op.execute()``, ``psycopg2.sql.SQL()`` -- is
an f-string with placeholders, a ``%`` format, a ``str.format()`` call, a
``join()`` or a ``+`` concatenation with a non-constant part. A name passed to a
sink is followed to its assignments in the same function (or module).

Composition that cannot inject a value is allowed without review:
``psycopg2.sql.SQL("... {} ...").format(sql.Identifier(...))`` and SQL text
read from the migration files shipped in the repository.

Reviewed exceptions are listed in :data:`ALLOWLIST`, each with the reason it
is safe. An entry that no longer matches anything fails the test too, so the
list cannot silently outlive the code it excuses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "elearn_data", ROOT / "scripts"]  # elearn_data/alembic/ included

# Method or function names whose first argument is SQL text.
SINKS = frozenset(
    {
        "text",
        "execute",
        "executemany",
        "exec_driver_sql",
        "mogrify",
        "copy_expert",
        "SQL",
        "query",
        "CheckConstraint",
        "create_check_constraint",
    }
)

SEEDING_DDL = (
    "Bulk seeding, run as the schema owner on an empty database: identifier-only DDL "
    "(DISABLE/ENABLE TRIGGER, TRUNCATE, ANALYZE, DROP/ADD CONSTRAINT, DROP INDEX) over "
    "table names from the module constants SEEDED_TABLES/RESET_TABLES, and constraint "
    "and index names and definitions read back from pg_catalog (pg_get_constraintdef, "
    "pg_get_indexdef) of the same database; no caller or row value. Quoting the names "
    "with psycopg2.sql.Identifier would make these entries unnecessary."
)

ANALYST_GRANTS = (
    "GRANT/REVOKE over identifiers only: the role from Settings, table and column names from "
    "the models' metadata intersected with information_schema, the database from "
    "current_database(); each quoted by the dialect's identifier_preparer.quote()."
)

DUCKDB_SETUP = (
    "DuckDB set-up in process (DuckDB has no identifier composer and no parameters in "
    "LOAD/SET/ATTACH/CREATE SECRET/CREATE VIEW): identifiers (attachment aliases, model table "
    "and column names, route schemas) are quoted by _ident(), literals (the extension path, "
    "constant settings, the libpq string, the analyst password) by _literal(), which doubles "
    "quotes; nothing reaches PostgreSQL as SQL text and no analyst value is formatted."
)

# (path relative to the repository, enclosing function's qualified name) -> why it is safe.
ALLOWLIST: dict[tuple[str, str], str] = {
    ("elearn_data/sharding/twophase.py", "_settle"): (
        "COMMIT PREPARED / ROLLBACK PREPARED take no bind parameter in the protocol; the "
        "f-string only picks one of two constant verbs, and the gid itself is passed as a "
        "driver parameter (%(gid)s), which psycopg2 quotes as a literal."
    ),
    ("elearn_data/sharding/engines.py", "execute"): (  # BeginsFirst.execute
        "The constant 'BEGIN; ' is put before a statement text the cursor is about to send "
        "(a writer's first statement); the statement's values stay in vars, which the driver "
        "binds as parameters: no value enters the text."
    ),
    ("elearn_data/alembic/env.py", "_grant"): (
        "GRANT/REVOKE statements over an identifier: the role name comes from Settings and is "
        "quoted by the dialect's identifier_preparer.quote() (identifier-only DDL; no value)."
    ),
    ("elearn_data/models/base.py", "one_of"): (
        "CHECK constraint builder: called at import time with a column name and a constant "
        "tuple of enum values defined in models/base.py (ROLES, LEVELS, ...); no runtime or "
        "caller value ever reaches it, and the text lands in migrations, not in queries."
    ),
    ("elearn_data/models/billing.py", "PaymentMethod"): (
        "Class-level CHECK constraint composed from one_of('method_type', CARD_TYPES), a "
        "module constant; evaluated once at import, never with runtime values."
    ),
    ("elearn_data/analytics/grants.py", "grant_analyst"): ANALYST_GRANTS,
    ("elearn_data/analytics/grants.py", "revoke_analyst"): ANALYST_GRANTS,
    ("elearn_data/analytics/sql.py", "_run_on"): DUCKDB_SETUP,
    ("elearn_data/analytics/sql.py", "explain"): (
        DUCKDB_SETUP + " EXPLAIN is prefixed to the analyst's own query, which is SQL by "
        "definition and has passed the same statement guard as sql() (one SELECT); its values "
        "are bound as $name parameters."
    ),
    ("elearn_data/analytics/sql.py", "_build"): DUCKDB_SETUP,
    ("elearn_data/analytics/sql.py", "_create_views"): DUCKDB_SETUP,
    ("elearn_data/seeding/bulk.py", "defer_indexes"): SEEDING_DDL,
    ("elearn_data/seeding/bulk.py", "restore_indexes"): SEEDING_DDL,
    ("elearn_data/seeding/runner.py", "_prepare_tables"): SEEDING_DDL,
    ("elearn_data/seeding/runner.py", "_finish"): SEEDING_DDL,
}


@dataclass(frozen=True)
class Finding:
    path: str
    function: str
    line: int
    sink: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}(): {self.sink}() gets {self.why}"


def _sink_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in SINKS:
        return func.attr
    if isinstance(func, ast.Name) and func.id in SINKS:
        return func.id
    return None


def _is_safe_composition(node: ast.expr) -> bool:
    """``sql.SQL("...").format(sql.Identifier(...), ...)``: psycopg2's identifier-safe composer."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return False
    receiver = node.func.value
    if not isinstance(receiver, ast.Call):
        return False
    callee = receiver.func
    name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", None)
    if name != "SQL":
        return False
    return bool(receiver.args) and _constant_str(receiver.args[0])


def _constant_str(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_str(node.left) and _constant_str(node.right)
    return False


def _is_file_read(node: ast.expr) -> bool:
    """``path.read_text()`` / ``open(...).read()``: SQL shipped as files in the repository."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"read_text", "read"}
    )


def _formatting(node: ast.expr) -> str | None:
    """Return why ``node`` is SQL built from runtime values, or None."""
    if isinstance(node, ast.JoinedStr):
        if any(isinstance(v, ast.FormattedValue) for v in node.values):
            return "an f-string with placeholders"
        return None
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod) and _constant_str(node.left):
            return "a %-formatted string"
        if isinstance(node.op, ast.Add) and not _constant_str(node):
            left, right = _formatting(node.left), _formatting(node.right)
            if left or right:
                return left or right
            if _is_stringish(node.left) or _is_stringish(node.right):
                return "a concatenation with a non-constant part"
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "format" and not _is_safe_composition(node):
            return "a str.format() call"
        if node.func.attr == "join" and _constant_str(node.func.value):
            return "a str.join() of runtime parts"
    return None


def _is_stringish(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant | ast.JoinedStr) and not isinstance(
        getattr(node, "value", ""), int | float
    )


def _elements(iterable: ast.expr, scanner: _Scanner) -> Iterator[ast.expr]:
    """The items a ``for`` loop walks, when they are written out (a literal or a name of one)."""
    if isinstance(iterable, ast.List | ast.Tuple | ast.Set):
        yield from iterable.elts
    elif isinstance(iterable, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        yield iterable.elt
    elif isinstance(iterable, ast.Name):
        for value in scanner._assignments(iterable.id):
            if isinstance(value, ast.List | ast.Tuple | ast.Set):
                yield from value.elts


def _returns(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.expr]:
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and node.value is not None:
            yield node.value


class _Scanner(ast.NodeVisitor):
    def __init__(
        self,
        path: str,
        helpers: dict[str, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] | None = None,
    ) -> None:
        self.path = path
        # Functions of the scanned tree by name: a sink argument that calls one of them is
        # checked through the helper's return values (e.g. a CHECK-constraint builder).
        self.helpers = helpers or {}
        self.scopes: list[ast.AST] = []
        self.names: list[str] = []
        self.findings: list[Finding] = []

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scopes.append(node)
        self.names.append(node.name)
        self.generic_visit(node)
        self.names.pop()
        self.scopes.pop()

    # ast.NodeVisitor dispatches on these names.
    visit_FunctionDef = _scoped  # noqa: N815
    visit_AsyncFunctionDef = _scoped  # noqa: N815
    visit_ClassDef = _scoped  # noqa: N815

    def visit_Module(self, node: ast.Module) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def _assignments(self, name: str) -> Iterator[ast.expr]:
        """Values assigned to ``name`` in the innermost function (or the module)."""
        scope = next(
            (s for s in reversed(self.scopes) if not isinstance(s, ast.ClassDef)), self.scopes[0]
        )
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        yield node.value
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
                and node.value is not None
            ):
                yield node.value
            elif (
                isinstance(node, ast.For)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                yield from _elements(node.iter, self)
            elif (
                isinstance(node, ast.AugAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                yield ast.BinOp(left=ast.Constant(""), op=node.op, right=node.value)

    def _why(self, arg: ast.expr, depth: int = 0) -> str | None:
        if _is_file_read(arg):
            return None
        why = _formatting(arg)
        if why is not None:
            return why
        if isinstance(arg, ast.Name) and depth < 3:
            for value in self._assignments(arg.id):
                found = self._why(value, depth + 1)
                if found:
                    return f"{found} (through the variable {arg.id!r})"
        return None

    def _helper_findings(self, arg: ast.expr, sink: str) -> Iterator[Finding]:
        if not isinstance(arg, ast.Call):
            return
        func = arg.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name is None or name not in self.helpers:
            return
        path, function = self.helpers[name]
        helper = _Scanner(path)
        helper.scopes = [function]
        for value in _returns(function):
            why = helper._why(value)
            if why is not None:
                yield Finding(path, function.name, value.lineno, sink, f"{why} (built by a helper)")

    def visit_Call(self, node: ast.Call) -> None:
        sink = _sink_name(node)
        if sink is not None:
            arg = node.args[0] if node.args else None
            if arg is None:
                arg = next(
                    (k.value for k in node.keywords if k.arg in {"statement", "sql", "query"}),
                    None,
                )
            if arg is not None:
                why = self._why(arg)
                if why is not None:
                    self.findings.append(
                        Finding(
                            self.path, ".".join(self.names) or "<module>", node.lineno, sink, why
                        )
                    )
                self.findings.extend(self._helper_findings(arg, sink))
        self.generic_visit(node)


def _helper_index(
    trees: dict[str, ast.Module],
) -> dict[str, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    index: dict[str, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for path, tree in trees.items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                index.setdefault(node.name, (path, node))
    return index


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    tree = ast.parse(source)
    scanner = _Scanner(path, _helper_index({path: tree}))
    scanner.visit(tree)
    return scanner.findings


def scan_tree() -> list[Finding]:
    trees = {
        file.relative_to(ROOT).as_posix(): ast.parse(file.read_text(encoding="utf-8"))
        for base in SCANNED
        for file in sorted(base.rglob("*.py"))
    }
    helpers = _helper_index(trees)
    findings: set[Finding] = set()
    for path, tree in trees.items():
        scanner = _Scanner(path, helpers)
        scanner.visit(tree)
        findings.update(scanner.findings)
    return sorted(findings, key=lambda f: (f.path, f.line))


def _allowed(finding: Finding) -> bool:
    function = finding.function.rsplit(".", 1)[-1]
    return (finding.path, function) in ALLOWLIST


def test_no_sql_text_is_built_by_formatting_runtime_values() -> None:
    offending = [f for f in scan_tree() if not _allowed(f)]
    assert offending == [], "SQL built by formatting values:\n" + "\n".join(map(str, offending))


def test_every_allowlist_entry_still_matches_code() -> None:
    used = {(f.path, f.function.rsplit(".", 1)[-1]) for f in scan_tree()}
    stale = sorted(set(ALLOWLIST) - used)
    assert stale == [], f"allowlist entries that match nothing (remove them): {stale}"


def test_the_scanner_catches_every_formatting_shape() -> None:
    bad = """
def a(cur, v):
    cur.execute(f"SELECT * FROM t WHERE x = {v}")
def b(conn, v):
    conn.execute(text("SELECT * FROM t WHERE x = '%s'" % v))
def c(conn, v):
    conn.exec_driver_sql("DELETE FROM t WHERE x = {}".format(v))
def d(conn, v):
    conn.execute(text("SELECT * FROM t WHERE x = " + v))
def e(cur, v):
    stmt = f"UPDATE t SET x = {v}"
    cur.execute(stmt)
def f(cur, v):
    q = "SELECT 1"
    q += " WHERE x = " + v
    cur.execute(q)
def g(cur, names):
    cur.execute(", ".join(names))
def h(cur, v):
    cur.execute(sql.SQL(f"SELECT {v}"))
def i(cur, values):
    for statement in [f"DELETE FROM t WHERE x = {v}" for v in values]:
        cur.execute(statement)
def j(cur, v):
    for statement in (f"DELETE FROM t WHERE x = {v}", "SELECT 1"):
        cur.execute(statement)
def build(v):
    return "x IN (%s)" % v
def k(v):
    return CheckConstraint(build(v))
"""
    found = {f.function for f in scan_source(bad)}
    assert found == {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "build"}


def test_the_scanner_accepts_parameters_and_identifier_composition() -> None:
    good = """
_Q = text("SELECT * FROM t WHERE x = :x")
def a(conn, v):
    conn.execute(_Q, {"x": v})
def b(cur, v):
    cur.execute("SELECT * FROM t WHERE x = %s", (v,))
def c(cur, role):
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
def d(conn, path):
    conn.exec_driver_sql(path.read_text())
def e(conn):
    conn.execute(text("SELECT 1 " "FROM t " + "WHERE true"))
"""
    assert scan_source(good) == []
