"""Analyst SQL over every shard: DuckDB attached to the shards through its PostgreSQL extension.

``db.analytics.sql(query, params)`` answers any read-only SQL an analyst
writes as if one database held every shard (API.md, "Analyst SQL"). The
engine is DuckDB, one in-memory instance per ``connect()`` object, created on
first use and reused:

* **Attachments**: every node of every shard (primaries and replicas) is
  attached ``READ_ONLY`` as the analyst role, whose password lives in a DuckDB
  secret (``duckdb_databases()`` shows no password). The extension is loaded
  from the installed ``duckdb-ext-postgres`` wheel; nothing is downloaded.
* **Views**: each visible table (:mod:`~elearn_data.analytics.visibility`) is
  a view: learner-owned tables as ``UNION ALL`` over the shards with a
  ``shard`` column, catalog tables from one shard. One schema of views per
  *route* (which node serves each shard); a query runs with its cursor's
  ``search_path`` on the route chosen for it.
* **Freshness**: before each query the caller's causal token picks, per shard,
  a replica that has replayed it, else the primary (the library's
  :class:`~elearn_data.sharding.consistency.ReplicaSelector`, over psycopg2).
* **Consistency**: ``pg_use_ctid_scan = false``: each shard is read in one
  ``REPEATABLE READ READ ONLY`` transaction for the whole query (the parallel
  ctid scan reads a large table through several connections, one outside the
  snapshot, and tears results under writes).
* **Safety**, in three layers: after attaching, ``enable_external_access =
  false`` and ``lock_configuration = true`` (no files, no INSTALL, no further
  ATTACH); a statement guard (exactly one SELECT; its parse tree, from
  ``json_serialize_sql``, may name only our views, ``information_schema``,
  and a few pure table functions; ``postgres_query``/``postgres_execute``/
  ``postgres_scan``/``read_csv``/``query`` are refused); and in PostgreSQL
  the analyst role, with SELECT on the visible columns only and no TEMP,
  read-only transactions and a statement timeout.
* **Threads**: one DuckDB connection is not safe to share; each call runs on
  its own ``cursor()``, fetches its whole result (an unfetched one would keep
  the shards' transactions open) and closes it.

Semantics are DuckDB's, set to match PostgreSQL where a setting exists
(``default_null_order``: NULLs last ascending, first descending; UTC time
zone). Where they differ and no setting helps: ``/`` is float division
(``7 / 2`` is 3.5; ``//`` divides integers), ``1 / 0`` is ``inf`` (``1 // 0``
is NULL) rather than an error, and ``sum`` of integers is widened (given back
as int64 when it fits). See docs/api.md, "Analyst SQL".
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.exc import SQLAlchemyError

from elearn_data.analytics.visibility import (
    SHARD_COLUMN,
    VisibleTable,
    hidden_columns,
    restrict,
    visible_tables,
)
from elearn_data.config import url_dbname, url_hosts
from elearn_data.errors import (
    AnalyticsTimeout,
    ConfigurationError,
    ElearnDataError,
    InvalidInput,
    ShardUnavailable,
)
from elearn_data.extras import need

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from elearn_data.services.base import CausalCluster
    from elearn_data.sharding.engines import Node

log = logging.getLogger(__name__)

EXTENSION_FILE = "postgres_scanner.duckdb_extension"
EXTENSION_DIST = "duckdb-ext-postgres"
SECRET_NAME = "elearn_analyst"  # noqa: S105 - the DuckDB secret's name
APPLICATION_NAME = "elearn_data-analyst"

# Table functions a query may call: they only compute from their arguments.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "json_each", "json_tree"}
)
# Schemas a query may name (besides our views, which it names without a schema).
ALLOWED_SCHEMAS = frozenset({"", "information_schema"})
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The binder's words for a column a view does not have (unqualified, then qualified).
_MISSING_COLUMN = (
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r'does not have a column named "([^"]+)"'),
)
_WHY_HIDDEN = {
    "personal data": "direct identifiers and contact details are not shown to analysts; "
    "join learners by user_id",
    "secret": "credentials and security state are never shown",
}

# DuckDB setting -> value, set once for every cursor (GLOBAL: TimeZone is per cursor).
GLOBAL_SETTINGS = (
    ("pg_use_ctid_scan", "false"),
    ("default_null_order", "nulls_last_on_asc_first_on_desc"),
    ("TimeZone", "UTC"),
)


# ------------------------------------------------------------------ extension


def extension_path() -> Path:
    """Return the postgres extension file shipped in the installed ``duckdb-ext-postgres`` wheel.

    Raises:
        ConfigurationError: the wheel is missing, or built for another DuckDB version.
    """
    import duckdb  # noqa: PLC0415 - DuckDB loads on first use only

    try:
        dist = importlib.metadata.distribution(EXTENSION_DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigurationError(
            f"{EXTENSION_DIST} is not installed: pip install the project (it pins "
            f"{EXTENSION_DIST} to the DuckDB version, {duckdb.__version__})"
        ) from exc
    wanted = f"/v{duckdb.__version__}/"
    for file in dist.files or ():
        name = str(file)
        if name.endswith(EXTENSION_FILE) and wanted in f"/{name}":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise ConfigurationError(
        f"{EXTENSION_DIST} {dist.version} ships no {EXTENSION_FILE} for DuckDB "
        f"{duckdb.__version__}: install the matching version (same major.minor.patch)"
    )


# --------------------------------------------------------------------- guard


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but one SELECT over our views and pure table functions.

    Raises:
        InvalidInput: a syntax error (the engine's message), several statements,
            a statement that is not a query, or a query naming a table function,
            catalog or schema outside the allow-lists.
    """
    import duckdb  # noqa: PLC0415

    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidInput(f"invalid SQL: {exc}") from exc
    if len(statements) != 1:
        raise InvalidInput(f"exactly one SQL statement is accepted, got {len(statements)}")
    statement_kind = statements[0].type.name
    if statement_kind != "SELECT":
        raise InvalidInput(
            f"only a query (SELECT) may run, not {statement_kind}: analyst SQL is read-only"
        )
    try:
        row = con.execute("SELECT json_serialize_sql($q)", {"q": query}).fetchone()
    except duckdb.Error as exc:
        raise InvalidInput(f"invalid SQL: {exc}") from exc
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no parse tree"}
    if tree.get("error"):
        raise InvalidInput(
            "only a plain query (SELECT) may run, not a PRAGMA, SHOW, DESCRIBE or SUMMARIZE: "
            + str(tree.get("error_message", "not a plain SELECT"))
        )
    for node in _walk(tree.get("statements", [])):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            qualified = function.get("schema") or function.get("catalog")
            if name not in ALLOWED_TABLE_FUNCTIONS or qualified:
                raise InvalidInput(
                    f"table function {name}() is not allowed in analyst SQL "
                    f"(allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})"
                )
        elif kind == "SHOW_REF" and node.get("query") is None:
            # SHOW TABLES / SHOW ALL TABLES list every attached node's catalog; DESCRIBE
            # and SUMMARIZE of a table or query carry that query, walked like any other.
            raise InvalidInput(
                "SHOW is not accepted: DESCRIBE a table, or query information_schema.tables"
            )
        elif kind == "BASE_TABLE":
            catalog = str(node.get("catalog_name", ""))
            schema = str(node.get("schema_name", ""))
            table = str(node.get("table_name", ""))
            if catalog or schema.lower() not in ALLOWED_SCHEMAS:
                shown = ".".join(p for p in (catalog, schema, table) if p)
                raise InvalidInput(
                    f"table {shown} is not visible: name the platform's tables without a "
                    "schema (every shard's rows are in them)"
                )


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the parameters as a dict, refusing names DuckDB cannot bind as ``$name``."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidInput(
            f"parameters must be a mapping of $name -> value, not {type(params).__name__}"
        )
    for name in params:
        if not isinstance(name, str) or not _PARAM.match(name):
            raise InvalidInput(f"parameter name {name!r} is not an identifier")
    return dict(params)


# ---------------------------------------------------------------- connection


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _libpq_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Attachment:
    """One node as attached in DuckDB."""

    alias: str
    shard: str
    url: str


def analyst_dsn(url: str, *, user: str, role: str, timeout_ms: int, connect_timeout: int) -> str:
    """Return a libpq key=value string for ``url`` as the analyst (no password in it).

    DuckDB shows an ATTACH string in ``duckdb_databases()``, so the password
    comes from a DuckDB secret instead. The analyst role's transactions are
    read-only, which libpq's ``read-write`` check reads as "not a primary":
    a primary is recognised by ``target_session_attrs=primary`` instead.
    """
    hosts = url_hosts(url)
    query = dict(parse_qsl(urlsplit(url).query))
    query.pop("password", None)
    query.pop("user", None)
    attrs = query.pop("target_session_attrs", None)
    if role == "primary":
        attrs = "primary" if len(hosts) > 1 or attrs == "read-write" else attrs
    elif attrs is None:
        attrs = "standby"
    query.pop("options", None)
    pairs = {
        "host": ",".join(h for h, _ in hosts),
        "port": ",".join(str(p) for _, p in hosts),
        "dbname": url_dbname(url),
        "user": user,
        "connect_timeout": str(connect_timeout),
        "application_name": APPLICATION_NAME,
        "options": f"-c statement_timeout={timeout_ms}",
        **query,
    }
    if attrs:
        pairs["target_session_attrs"] = attrs
    return " ".join(f"{k}={_libpq_value(v)}" for k, v in pairs.items())


class _Engine:
    """One DuckDB instance with every node attached and the routes' views."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        attached: dict[int, Attachment],
        failures: dict[int, str],
    ) -> None:
        self.con = con
        self.attached = attached  # id(Node) -> attachment
        self.failures = failures  # id(Node) -> why it could not be attached
        self.routes: dict[tuple[str, ...], str] = {}
        self.lock = threading.Lock()
        # Calls running on this instance; a replaced instance is closed by the last one
        # (closing it under a running cursor would pull the database from under it).
        self._active = 0
        self._retired = False
        self._closed = False

    def acquire(self) -> None:
        with self.lock:
            self._active += 1

    def release(self) -> None:
        with self.lock:
            self._active -= 1
            close = self._retired and self._active == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self.con.close()

    def close(self) -> None:
        """Close now if idle, else when the last running call ends."""
        with self.lock:
            self._retired = True
            close = self._active == 0 and not self._closed
            self._closed = self._closed or close
        if close:
            self.con.close()


class _StaleConnection(Exception):
    def __init__(self, engine: _Engine, detail: str) -> None:
        super().__init__(detail)
        self.engine = engine


class AnalystSQL:
    """``db.analytics.sql`` and ``sql_arrow`` (one per ``connect()`` object, thread-safe)."""

    def __init__(self, db: CausalCluster, *, timeout_s: float) -> None:
        self._db = db
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._engine: _Engine | None = None
        self._closed = False

    # ----------------------------------------------------------- public

    def arrow(self, query: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run ``query`` and return its result as a ``pyarrow.Table`` (see the module doc)."""
        return self.run(query, params)[0]

    def run(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> tuple[pa.Table, dict[str, str]]:
        """Like :meth:`arrow`, also returning ``{shard: node label}`` of the nodes read."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be a non-empty SQL string")
        values = check_params(params)
        try:
            return self._run(query, values)
        except _StaleConnection as stale:
            # Every node answers, yet an attached connection broke (a restarted
            # server): nothing was returned, so a fresh instance may run it again.
            log.info("analyst SQL: reattaching after a dropped connection: %s", stale)
            self._discard(stale.engine)
            return self._run(query, values, retry=False)

    def _run(
        self, query: str, values: dict[str, Any], *, retry: bool = True
    ) -> tuple[pa.Table, dict[str, str]]:
        nodes = self._choose_nodes()
        engine = self._ensure_engine(nodes)
        try:
            table = self._run_on(engine, nodes, query, values, retry=retry)
        finally:
            engine.release()
        return table, {shard: node.label for shard, node in nodes.items()}

    @property
    def configured(self) -> bool:
        """True when analyst credentials are set (the engine can be built)."""
        settings = self._db.settings
        return settings.analyst_password is not None and bool(settings.analyst_user)

    def _run_on(
        self,
        engine: _Engine,
        nodes: Mapping[str, Node],
        query: str,
        values: dict[str, Any],
        *,
        retry: bool,
    ) -> pa.Table:
        import duckdb  # noqa: PLC0415

        schema = self._route(engine, nodes)
        cursor = engine.con.cursor()
        timer = threading.Timer(self.timeout_s, cursor.interrupt)
        try:
            check_statement(cursor, query)
            cursor.execute(f"SET search_path = {_literal('memory.' + schema)}")
            timer.start()
            try:
                result = cursor.execute(query, values)
                types = [str(d[1]) for d in (result.description or ())]
                table = result.fetch_arrow_table()
            except duckdb.InterruptException as exc:
                raise AnalyticsTimeout(
                    f"analyst query interrupted after {self.timeout_s:g} s (analytics_timeout_s)"
                ) from exc
            except duckdb.Error as exc:
                error = self._translate(exc, nodes)
                if error is None:
                    if retry:
                        raise _StaleConnection(engine, str(exc)) from exc
                    error = InvalidInput(f"query failed: {str(exc).strip()}")
                raise error from exc
        finally:
            timer.cancel()
            cursor.close()
        return _narrow_hugeints(table, types)

    def _discard(self, engine: _Engine) -> None:
        with self._lock:
            if self._engine is not engine:
                return
            self._engine = None
        engine.close()

    def frame(self, query: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run ``query`` and return a pandas DataFrame (numeric columns as Decimal)."""
        need("db.analytics.sql", "pandas")
        return self.arrow(query, params).to_pandas()

    def explain(self, query: str, params: Mapping[str, Any] | None = None) -> str:
        """Return DuckDB's physical plan of ``query`` (what each shard's scan pushes down)."""
        import duckdb  # noqa: PLC0415

        values = check_params(params)
        nodes = self._choose_nodes()
        engine = self._ensure_engine(nodes)
        try:
            schema = self._route(engine, nodes)
            cursor = engine.con.cursor()
            try:
                check_statement(cursor, query)
                cursor.execute(f"SET search_path = {_literal('memory.' + schema)}")
                try:
                    rows = cursor.execute("EXPLAIN " + query, values).fetchall()
                except duckdb.Error as exc:
                    raise (
                        self._translate(exc, nodes) or InvalidInput(f"query failed: {exc}")
                    ) from exc
            finally:
                cursor.close()
        finally:
            engine.release()
        return "\n".join(str(r[1]) for r in rows)

    def close(self) -> None:
        """Close the DuckDB instance (and with it every attached connection)."""
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def attached_paths(self) -> list[str]:
        """Return what ``duckdb_databases()`` shows of the attachments (for checks)."""
        engine = self._engine
        if engine is None:
            return []
        cursor = engine.con.cursor()
        try:
            rows = cursor.execute(
                "SELECT path FROM duckdb_databases() WHERE type = 'postgres'"
            ).fetchall()
        finally:
            cursor.close()
        return [str(r[0]) for r in rows]

    # -------------------------------------------------------- choosing nodes

    def _choose_nodes(self) -> dict[str, Node]:
        """Per shard, the node that has replayed the caller's writes (replica, else primary)."""
        selector = self._db.cluster.selector
        token = self._db.token
        chosen: dict[str, Node] = {}
        for shard in self._db.router.shards:
            try:
                conn, choice = selector.connect(shard, token.get(shard))
            except SQLAlchemyError as exc:
                raise ShardUnavailable(shard, _first_line(exc)) from exc
            conn.close()
            chosen[shard] = choice.node
        return chosen

    # --------------------------------------------------------------- engine

    def _credentials(self) -> tuple[str, str]:
        settings = self._db.settings
        if settings.analyst_password is None or not settings.analyst_user:
            raise ConfigurationError(
                "analyst SQL needs the read-only analyst role: set ELEARN_ANALYST_USER and "
                "ELEARN_ANALYST_PASSWORD (the embedded cluster writes them to settings.json), "
                "and run the migrations so that the role gets its grants"
            )
        return settings.analyst_user, settings.analyst_password.get_secret_value()

    def _ensure_engine(self, nodes: Mapping[str, Node]) -> _Engine:
        need("db.analytics.sql", "duckdb", "pyarrow")
        with self._lock:
            if self._closed:
                raise ConfigurationError("this connect() object is closed")
            engine = self._engine
            if engine is not None and all(id(n) in engine.attached for n in nodes.values()):
                engine.acquire()
                return engine
            # A node that could not be attached before is wanted now: a new instance
            # (attachments cannot be added once the configuration is locked).
            fresh = self._build()
            fresh.acquire()
            self._engine = fresh
        if engine is not None:
            engine.close()
        for shard, node in nodes.items():
            if id(node) in fresh.attached:
                continue
            why = fresh.failures.get(id(node), "not attached")
            fresh.release()
            if "password authentication failed" in why:
                raise ConfigurationError(
                    f"the analyst role cannot log in to {node.label}: check "
                    "ELEARN_ANALYST_USER / ELEARN_ANALYST_PASSWORD"
                )
            raise ShardUnavailable(shard, f"{node.label}: {why}")
        return fresh

    def _build(self) -> _Engine:
        import duckdb  # noqa: PLC0415

        user, password = self._credentials()
        settings = self._db.settings
        con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                # Scans wait on the shards more than they compute: more threads
                # than cores keep every shard's scan going at once.
                "threads": max(4, 2 * len(settings.shard_names)),
            },
        )
        try:
            con.execute(f"LOAD {_literal(str(extension_path()))}")
            for name, value in GLOBAL_SETTINGS:
                con.execute(f"SET GLOBAL {name} = {_literal(value)}")
            con.execute(
                f"CREATE SECRET {SECRET_NAME} (TYPE postgres, PASSWORD {_literal(password)})"
            )
            attached: dict[int, Attachment] = {}
            failures: dict[int, str] = {}
            timeout_ms = max(1, math.ceil(self.timeout_s * 1000))
            for shard in settings.shard_names:
                engines = self._db.cluster.engines
                for index, node in enumerate([engines.primary(shard), *engines.replicas(shard)]):
                    alias = f"{shard}_{'p' if index == 0 else f'r{index}'}"
                    dsn = analyst_dsn(
                        node.url,
                        user=user,
                        role=node.role,
                        timeout_ms=timeout_ms,
                        connect_timeout=settings.connect_timeout_s,
                    )
                    try:
                        con.execute(
                            f"ATTACH {_literal(dsn)} AS {_ident(alias)} "
                            f"(TYPE postgres, READ_ONLY, SECRET {SECRET_NAME})"
                        )
                    except duckdb.Error as exc:
                        log.warning("analyst SQL: cannot attach %s: %s", node.label, exc)
                        failures[id(node)] = _first_line(exc)
                        continue
                    attached[id(node)] = Attachment(alias, shard, node.url)
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return _Engine(con, attached, failures)

    # ---------------------------------------------------------------- routes

    def _route(self, engine: _Engine, nodes: Mapping[str, Node]) -> str:
        """Return the schema whose views read each shard from ``nodes`` (created once)."""
        aliases = tuple(engine.attached[id(nodes[s])].alias for s in self._db.router.shards)
        schema = engine.routes.get(aliases)
        if schema is not None:
            return schema
        with engine.lock:
            schema = engine.routes.get(aliases)
            if schema is not None:
                return schema
            schema = "route_" + "__".join(aliases)
            by_shard = dict(zip(self._db.router.shards, aliases, strict=True))
            self._create_views(engine, schema, by_shard)
            engine.routes[aliases] = schema
        return schema

    def _create_views(self, engine: _Engine, schema: str, by_shard: dict[str, str]) -> None:
        cursor = engine.con.cursor()
        try:
            present: dict[str, dict[str, list[str]]] = {}
            for shard, alias in by_shard.items():
                rows = cursor.execute(
                    "SELECT table_name, column_name FROM duckdb_columns() "
                    "WHERE database_name = $db AND schema_name = 'public' "
                    "ORDER BY table_name, column_index",
                    {"db": alias},
                ).fetchall()
                columns: dict[str, list[str]] = {}
                for table, column in rows:
                    columns.setdefault(str(table), []).append(str(column))
                present[shard] = columns
            tables = visible_tables()
            for shard_columns in present.values():
                tables = restrict(tables, shard_columns)
            home = self._db.settings.home_shard
            statements = [f"CREATE SCHEMA IF NOT EXISTS memory.{_ident(schema)}"]
            for table in tables:
                statements.append(
                    f"CREATE OR REPLACE VIEW memory.{_ident(schema)}.{_ident(table.name)} AS "
                    + _view_body(table, by_shard, home)
                )
            cursor.execute("BEGIN")
            for statement in statements:
                cursor.execute(statement)
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    # ---------------------------------------------------------------- errors

    def _translate(self, exc: Exception, nodes: Mapping[str, Node]) -> ElearnDataError | None:
        """Map an engine error: a shard that is down is named, anything else is bad input.

        None: a connection broke although every node answers (worth one retry).
        """
        import duckdb  # noqa: PLC0415

        message = str(exc).strip()
        connection_trouble = isinstance(exc, duckdb.IOException) or any(
            marker in message
            for marker in (
                "connection",
                "Connection",
                "server closed",
                "terminating",
                "could not connect",
                "Unable to connect",
            )
        )
        if "statement timeout" in message:
            return AnalyticsTimeout(
                f"analyst query cancelled by the shard after {self.timeout_s:g} s "
                f"(analytics_timeout_s): {message.splitlines()[0]}"
            )
        if connection_trouble:
            for shard, node in nodes.items():
                probe = self._db.cluster.engines.probe(node, timeout=2)
                if not probe.reachable:
                    node.health.mark_down(
                        probe.error or "unreachable",
                        self._db.settings.replica.retry_down_after_s,
                    )
                    return ShardUnavailable(shard, f"{node.label}: {probe.error or message}")
            return None
        hidden = hidden_column_message(message)
        if hidden is not None:
            return InvalidInput(hidden)
        if "Did you mean" in message:
            # The suggestions name the attached nodes (na_p.users, ...), which no query may use.
            message = message.split("Did you mean")[0].strip()
        return InvalidInput(f"query failed: {message}")


def hidden_column_message(message: str) -> str | None:
    """Return why a column the engine could not find is hidden (None: not a hidden column).

    A query naming ``users.email`` fails in DuckDB's binder (the view has no
    such column); the analyst is told it exists but is not visible to them.
    """
    hidden = hidden_columns()
    for pattern in _MISSING_COLUMN:
        found = pattern.search(message)
        if found is None or found.group(1).lower() not in hidden:
            continue
        name = found.group(1).lower()
        tables = hidden[name]
        where = ", ".join(f"{table}.{name}" for table in sorted(tables))
        reason = sorted(set(tables.values()))[0]
        return f"column {where} is not visible to analysts ({reason}: {_WHY_HIDDEN[reason]})"
    return None


def _view_body(table: VisibleTable, by_shard: Mapping[str, str], home: str) -> str:
    # Identifiers only (model table and column names, attachment aliases), quoted.
    columns = ", ".join(_ident(c) for c in table.columns)
    if not table.union:
        return f"SELECT {columns} FROM {_ident(by_shard[home])}.public.{_ident(table.name)}"  # noqa: S608
    parts = [
        f"SELECT {columns}, {_literal(shard)} AS {_ident(SHARD_COLUMN)} "  # noqa: S608
        f"FROM {_ident(alias)}.public.{_ident(table.name)}"
        for shard, alias in by_shard.items()
    ]
    return " UNION ALL ".join(parts)


def _narrow_hugeints(table: pa.Table, types: list[str]) -> pa.Table:
    """Give back int64 where DuckDB widened an integer sum to HUGEINT (PostgreSQL: bigint)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    for index, kind in enumerate(types):
        if kind != "HUGEINT" or index >= table.num_columns:
            continue
        try:
            narrowed = pc.cast(table.column(index), pa.int64(), safe=True)
        except pa.ArrowInvalid:
            continue  # beyond int64: keep the exact decimal
        table = table.set_column(index, table.schema.field(index).name, narrowed)
    return table


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
