"""Units of work: the only place where transactions begin, commit and roll back.

A **writer** binds every shard it touches to that shard's primary, opening the
connection on first use. On commit it flushes the ORM session and then commits
one shard plainly, or several shards atomically with the two-phase protocol of
:mod:`~elearn_data.sharding.twophase` (coordinator: the writer's own shard,
which its gid names, even when it wrote nothing there), and returns only once
every shard shows the writes. It tracks which shards it wrote on (Core
INSERT/UPDATE/DELETE, ORM flushes, statements marked with :func:`writing`), so
the two-phase commit prepares those without asking the server whether they
wrote; a shard it only read, or wrote through an unmarked statement, is asked.
After the commit it reads each written primary's WAL position and returns it
as a :class:`~elearn_data.sharding.consistency.CausalToken`.

A **reader** binds each shard it touches to a replica that has replayed the
caller's token (or to the primary), in autocommit mode: one statement, one
round trip. ``snapshot=True`` gives one REPEATABLE READ snapshot per shard.

A unit of work is **scoped** (built for one shard: every statement runs there)
or **global** (statements are routed by their criteria); ORM and Core
statements follow the same rule, :meth:`Router.route
<elearn_data.sharding.routing.Router.route>`. Repositories receive
``uow.session`` (ORM) or call ``uow.execute(..., shard=)`` (Core); they never
commit. The hottest point reads use ``uow.fetch_prepared``:
a :class:`PreparedRead` is prepared on the server once per pooled connection
and then run with ``EXECUTE``, without SQLAlchemy's per-call machinery.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    Executable,
    Insert,
    Result,
    RowMapping,
    Select,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import TextualSelect

from elearn_data.config import Settings
from elearn_data.dberrors import translate
from elearn_data.errors import RoutingError, ShardUnavailable
from elearn_data.monitoring.metrics import Instruments
from elearn_data.sharding import crossshard, multiplex, sqla, twophase
from elearn_data.sharding.consistency import (
    PRIMARY_ONLY,
    CausalToken,
    ReadChoice,
    Remaining,
    ReplicaSelector,
    current_lsn,
)
from elearn_data.sharding.engines import EngineMap, ends_session
from elearn_data.sharding.multiplex import ALREADY_PREPARED, NOT_PREPARED, PREPARED_KEY
from elearn_data.sharding.routing import Router, refuse_catalog_write
from elearn_data.sharding.session import RoutedSession

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=Executable)
Role = Literal["writer", "reader"]
# A result of any shape (SQLAlchemy 2.1 types rows by their column tuple).
AnyResult: TypeAlias = Result[*tuple[Any, ...]]

# Tokens are immutable: one empty token serves every unit of work that has none.
_NO_TOKEN = CausalToken()
# A reader's snapshot (see UnitOfWork._begin_snapshot), and its end. The timeout
# stops the server's work when the caller has stopped waiting for it;
# set_config(..., true) is SET LOCAL with a bind parameter: it ends with the
# transaction, so the pooled connection keeps its usual statement_timeout.
_BEGIN_SNAPSHOT = text("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
_BEGIN_SNAPSHOT_WITH_TIMEOUT = text(
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
    " SELECT set_config('statement_timeout', :ms, true)"
)
_END_SNAPSHOT = text("ROLLBACK")
# One statement with its own time limit in one round trip (execute_with_timeout):
# a query string of several statements runs as one implicit transaction, so
# set_config(..., true) lasts for the statement after it only, and the pooled
# connection keeps its usual statement_timeout.
_WITH_TIMEOUT = "SELECT set_config('statement_timeout', %(elearn_timeout_ms)s, true); "
# The same for a timed PreparedRead, whose first positional argument is the timeout.
_WITH_TIMEOUT_FIRST = "SELECT set_config('statement_timeout', %s::text, true); "


# The generic plan for the one query string it starts (a multi-statement string is
# one implicit transaction, so set_config(..., true) ends with it, as _WITH_TIMEOUT).
_GENERIC_PLAN = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true); "
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# The execution option that marks a statement as writing although it is no
# INSERT/UPDATE/DELETE (``SELECT some_writing_function(...)``): see writing().
WRITES = "elearn_writes"


def writing(statement: E) -> E:
    """Return ``statement`` marked as writing (for a SELECT of a function that writes).

    A writer unit of work that runs a marked statement on a shard knows it wrote
    there: a two-phase commit prepares that shard without asking the server.
    An unmarked statement is not assumed read-only (the server is asked), so a
    missing mark costs one round trip, never atomicity.
    """
    return statement.execution_options(**{WRITES: True})


def writes(statement: object) -> bool:
    """True when ``statement`` is known to write: Core DML, or marked by :func:`writing`."""
    if isinstance(statement, UpdateBase):
        return True
    options = getattr(statement, "get_execution_options", None)
    return options is not None and bool(options().get(WRITES))


class PreparedRead:
    """A SELECT the server prepares once per pooled connection and then runs with EXECUTE.

    Two costs of a point read disappear: the server's parse and plan of the
    statement (the plan is kept per connection), and SQLAlchemy's per-call
    execution machinery (the statement is compiled once, here). Rows come back
    as the driver returns them, in the statement's column order, with the same
    Python values SQLAlchemy would return: the constructor refuses a statement
    with a column SQLAlchemy would post-process.

    Args:
        name: the server-side name (a lower-case SQL identifier, unique per statement).
        statement: a Core SELECT whose parameters are all ``bindparam(name)``, or a
            ``text(...).columns(...)`` whose parameters are all ``:name``.
        params: the names of those parameters, in the order ``fetch_prepared`` takes them.
        generic_plan: run every EXECUTE on the statement's generic plan (planned
            once per connection), ``plan_cache_mode`` set for that one query
            string. PostgreSQL otherwise plans each EXECUTE anew whenever it
            estimates the generic plan dearer than a custom one -- always for a
            parameter in ``LIMIT``, which it takes for 10 % of the rows -- and
            the planning can cost more than the execution. Only for a statement
            whose best plan does not depend on its parameters' values.
        timed: every call gives the server a time limit of its own: the first
            argument of each call is the ``statement_timeout`` in milliseconds,
            followed by the statement's parameters. It is set for that one query
            string, in the same round trip (as ``UnitOfWork.execute_with_timeout``
            sends it), so the pooled connection keeps its usual timeout. Runs on
            autocommit readers only (a transaction would keep the setting).
    """

    def __init__(
        self,
        name: str,
        statement: Select[*tuple[Any, ...]] | TextualSelect,
        params: Sequence[str],
        *,
        generic_plan: bool = False,
        timed: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"not a prepared statement name: {name!r}")
        dialect: Any = PGDialect_psycopg2()  # type: ignore[no-untyped-call]
        compiled = statement.compile(dialect=dialect)
        if set(compiled.params) != set(params):
            raise ValueError(f"{name}: parameters {sorted(compiled.params)} != {sorted(params)}")
        for column in statement.selected_columns:
            if column.type._cached_result_processor(dialect, None) is not None:
                raise ValueError(f"{name}: column {column.key!r} needs SQLAlchemy's processing")
        sql = str(compiled)
        for index, param in enumerate(params, start=1):
            sql = sql.replace(f"%({param})s", f"${index}")
        placeholders = ", ".join(["%s"] * len(params))
        self.name = name
        # The statement's text with $1..$n (what PREPARE takes).
        self.sql = sql
        self.statement = statement
        self.params = tuple(params)
        self.columns: tuple[str, ...] = tuple(str(c.key) for c in statement.selected_columns)
        # The compiled text escapes "%" for the driver; it is only ever sent with
        # arguments (as part of the first EXECUTE), so the driver unescapes it.
        execute = f"EXECUTE {name}({placeholders})" if params else f"EXECUTE {name}"
        self.execute_sql = (_GENERIC_PLAN if generic_plan else "") + execute
        self.prepare_sql = f"PREPARE {name} AS {sql}"
        self.prepare_and_execute_sql = f"{self.prepare_sql}; {self.execute_sql}"
        self.timed = timed
        if timed:
            self.execute_sql = _WITH_TIMEOUT_FIRST + self.execute_sql
            self.prepare_and_execute_sql = _WITH_TIMEOUT_FIRST + self.prepare_and_execute_sql

    def bind(self, args: Sequence[Any]) -> tuple[int | None, dict[str, Any]]:
        """Split one call's ``args`` into (its timeout in ms or None, the parameters)."""
        if not self.timed:
            return None, dict(zip(self.params, args, strict=True))
        timeout_ms, *rest = args
        return int(timeout_ms), dict(zip(self.params, rest, strict=True))


# Compiled forms for execute_with_timeout, by (statement, dialect) identity: the
# statements are module constants. Keyed by id() with the objects kept in the
# entry (a statement's == builds SQL, so it cannot be a dictionary key).
_TIMED: dict[tuple[int, int], tuple[Any, Any, str, Any]] = {}
_TIMED_MAX = 256


def _compiled_with_timeout(statement: Executable, dialect: Any) -> tuple[str, Any]:
    """Return (the timeout prefix and the compiled text of ``statement``, its compiled form)."""
    key = (id(statement), id(dialect))
    entry = _TIMED.get(key)
    if entry is not None and entry[0] is statement and entry[1] is dialect:
        return entry[2], entry[3]
    compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if any(bind.expanding for bind in compiled.binds.values()):
        raise RuntimeError("a statement with expanding parameters needs the snapshot path")
    sql = _WITH_TIMEOUT + str(compiled)
    if len(_TIMED) >= _TIMED_MAX:
        _TIMED.clear()
    _TIMED[key] = (statement, dialect, sql, compiled)
    return sql, compiled


def _fetch_prepared(
    fairy: PoolProxiedConnection,
    engine: Engine,
    query: PreparedRead,
    args: Sequence[Any],
    invalidate: Callable[[BaseException], None],
) -> list[tuple[Any, ...]]:
    """Run ``query`` on the driver connection of ``fairy`` (a pooled connection of ``engine``).

    Returns its rows. Driver errors become SQLAlchemy's ``DBAPIError``, and a
    lost connection is invalidated (``invalidate``: the pooled connection's, or
    that of the ``Connection`` around it) together with the rest of the
    engine's pool, exactly as
    SQLAlchemy's own execution would do.
    """
    dbapi_connection: Any = fairy.dbapi_connection
    info = fairy.info
    prepared: set[str] | None = info.get(PREPARED_KEY)
    if prepared is None:
        prepared = info[PREPARED_KEY] = set()
    dialect = engine.dialect
    error = dialect.loaded_dbapi.Error
    cursor = None
    sql = query.execute_sql if query.name in prepared else query.prepare_and_execute_sql
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, args)
        except error as exc:
            # Only in autocommit, where a failed statement leaves nothing behind:
            # the server lost the statement (a pooler switched server connections,
            # DISCARD ALL) or has it already; prepare again, or just execute.
            code = getattr(exc, "pgcode", None)
            if code == NOT_PREPARED and sql is query.execute_sql:
                cursor.execute(query.prepare_and_execute_sql, args)
            elif code == ALREADY_PREPARED and sql is not query.execute_sql:
                cursor.execute(query.execute_sql, args)
            else:
                raise
        prepared.add(query.name)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        cursor.close()
        return rows
    except error as exc:
        # What SQLAlchemy's execution and the engine's handle_error hook decide.
        disconnect = dialect.is_disconnect(exc, dbapi_connection, cursor) or ends_session(exc)
        if disconnect:
            # This connection first (invalidating it twice would warn), then
            # every connection the pool made before it.
            invalidate(exc)
            sqla.invalidate_pool(engine, fairy, exc)
        raise DBAPIError.instance(
            sql, args, exc, error, connection_invalidated=disconnect, dialect=dialect
        ) from exc


@dataclass(frozen=True)
class Cluster:
    """What every unit of work of one ``connect()`` object shares."""

    settings: Settings
    engines: EngineMap
    router: Router
    selector: ReplicaSelector
    instruments: Instruments

    @classmethod
    def build(cls, settings: Settings, *, application: str = "elearn_data") -> Cluster:
        engines = EngineMap(settings, application=application)
        return cls(
            settings,
            engines,
            Router(settings),
            ReplicaSelector(engines, settings.replica),
            Instruments(),
        )


class UnitOfWork:
    """One transaction per shard touched, committed together (a context manager).

    ``with uow:`` commits on success and rolls back on error, translating driver
    errors; a writer then hands its causal token to ``on_commit``.
    """

    def __init__(
        self,
        cluster: Cluster,
        role: Role,
        scope: str | None,
        *,
        token: CausalToken | None = None,
        snapshot: bool = False,
        statement_timeout_ms: int | None = None,
        on_commit: Callable[[CausalToken], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.router = cluster.router
        self.role = role
        # The shard of a scoped unit of work (every statement runs there), None
        # for a global one (statements are routed by their criteria).
        self.scoped_to = scope
        default_shard = scope if scope is not None else cluster.router.local_shard
        self.default_shard = default_shard
        self.token = token if token is not None else _NO_TOKEN
        self.snapshot = snapshot
        # A snapshot's statement timeout (the analytics fan-out's budget), or None.
        self.statement_timeout_ms = statement_timeout_ms
        # Shards whose connection holds an open snapshot (ended by close()).
        self._snapshots: set[str] = set()
        self.choices: dict[str, ReadChoice] = {}
        self._connections: dict[str, Connection] = {}
        # Reader shards served so far by a replica's pooled driver connection alone
        # (fetch_prepared's path; see _open): no Connection was built around it.
        self._pooled: dict[str, PoolProxiedConnection] = {}
        self._participants: dict[str, twophase.Participant] = {}
        self._gid = twophase.new_gid(default_shard) if role == "writer" else ""
        self._session: RoutedSession | None = None
        self._closed = False
        self._on_commit = on_commit
        # Reader connections are in autocommit unless they hold a snapshot.
        self._autocommit = role == "reader" and not snapshot
        # Shards whose connection was replaced after a lost connection (once each),
        # and, for a snapshot, shards that answered a statement already.
        self._replaced: set[str] = set()
        self._answered: set[str] = set()
        self.commit_started = False
        # The token of the last commit (what a reader must see to read these writes).
        self.committed_token = _NO_TOKEN

    # ------------------------------------------------------------ connections

    @property
    def session(self) -> RoutedSession:
        """The ORM session of this unit of work (created on first use)."""
        if self._session is None:
            self._session = RoutedSession(self)
        return self._session

    @property
    def shards_touched(self) -> tuple[str, ...]:
        return (*self._connections, *self._pooled)

    def connection(self, shard: str) -> Connection:
        """Return this unit of work's connection to ``shard``, opening it on first use.

        A shard read so far through a pooled driver connection alone (see
        :meth:`fetch_prepared`) gets a ``Connection`` around that same
        connection: one node and one pooled connection per shard.

        Raises:
            ShardUnavailable: the node cannot be reached.
        """
        conn = self._connections.get(shard)
        if conn is not None:
            return conn
        pooled = self._pooled.pop(shard, None)
        if pooled is not None:
            conn = sqla.connection_on(self.choices[shard].node.engine, pooled)
            self._connections[shard] = conn
            return conn
        opened = self._open(shard, pooled=False)
        assert isinstance(opened, Connection)
        return opened

    def _open(self, shard: str, *, pooled: bool) -> Connection | PoolProxiedConnection:
        """Open this unit of work's connection to ``shard`` (not open yet).

        ``pooled`` (an autocommit reader's prepared read): a replica that the
        selector can take without a query and that nothing observes
        (:func:`~elearn_data.sharding.sqla.observed_engine`) is read through its
        pooled driver connection alone, without a ``Connection`` built and
        closed around it; anything else (a lag check or a causal wait due, the
        primary) gets the ``Connection`` :meth:`connection` would open.
        """
        if self._closed:
            raise RuntimeError("this unit of work is finished")
        if shard not in self.cluster.engines.shards:
            raise ShardUnavailable(shard, "not a configured shard")
        started = time.perf_counter()
        raw: PoolProxiedConnection | None = None
        selector = self.cluster.selector
        try:
            if self.role == "writer":
                # The transaction is sent as SQL (twophase.ServerTransaction): its
                # BEGIN goes with the first statement, and its commit returns the
                # causal token's position in the same round trip.
                primary = self.cluster.engines.primary(shard).engine
                conn = primary.connect().execution_options(isolation_level="AUTOCOMMIT")
                try:
                    transaction = twophase.ServerTransaction(conn, self._gid)
                except BaseException:
                    conn.close()
                    raise
                self._participants[shard] = twophase.Participant(shard, conn, transaction)
            elif pooled:
                lsn = self.token.get(shard)
                found = selector.connect_pooled(shard, lsn)
                if isinstance(found, Remaining):
                    conn, choice = selector.connect_from(shard, lsn, found)
                else:
                    raw, choice = found
                    engine = choice.node.engine
                    if sqla.observed_engine(engine):
                        conn, raw = sqla.connection_on(engine, raw), None
                self.choices[shard] = choice
            else:
                conn, choice = selector.connect(shard, self.token.get(shard))
                self.choices[shard] = choice
                if self.snapshot:
                    conn = self._begin_snapshot(shard, conn)
        except (DBAPIError, PoolTimeout) as exc:
            raise translate(exc, shard) from exc
        self.cluster.instruments.checked_out(shard, self.role, time.perf_counter() - started)
        if raw is not None:
            self._pooled[shard] = raw
            return raw
        self._connections[shard] = conn
        return conn

    def _begin_snapshot(self, shard: str, conn: Connection) -> Connection:
        """Begin one read-only REPEATABLE READ snapshot on a reader's autocommit connection.

        The one snapshot mechanism of the package (readers with ``snapshot=True``
        and the analytics fan-out): the connection stays in autocommit and the
        snapshot is an explicit ``BEGIN ISOLATION LEVEL REPEATABLE READ, READ
        ONLY``, sent together with the statement timeout when there is one (one
        round trip), and always ended by :meth:`close`. Switching the isolation
        level through SQLAlchemy instead costs two ``SET`` round trips per
        snapshot (psycopg2 restores the session defaults whenever it leaves
        autocommit). The engines' ``reset`` hook rolls back a transaction a
        connection would otherwise take back into the pool.

        A pooled connection found lost here (nothing was read yet) is replaced
        once, like a reader's first statement.
        """
        if self.statement_timeout_ms is None:
            begin: Any = _BEGIN_SNAPSHOT
            params: Any = None
        else:
            begin = _BEGIN_SNAPSHOT_WITH_TIMEOUT
            params = {"ms": str(self.statement_timeout_ms)}
        try:
            conn.execute(begin, params)
        except DBAPIError as exc:
            conn.close()
            if not exc.connection_invalidated or shard in self._replaced:
                raise
            self._replaced.add(shard)
            log.info("shard %s: connection lost, reading on a new one: %s", shard, exc)
            conn, self.choices[shard] = self.cluster.selector.connect(shard, self.token.get(shard))
            try:
                conn.execute(begin, params)
            except DBAPIError:
                conn.close()
                raise
        self._snapshots.add(shard)
        return conn

    def may_reconnect(self, shard: str, exc: DBAPIError) -> bool:
        """True when a reader may run the failed statement again on a new connection.

        The connection was lost (SQLAlchemy invalidated it: a stale pooled
        connection, or a node that went away) and nothing depends on it: an
        autocommit read leaves nothing behind, and a snapshot that answered no
        statement yet has read nothing. Once per shard and unit of work.
        """
        return (
            self.role == "reader"
            and exc.connection_invalidated
            and shard not in self._replaced
            and (self._autocommit or shard not in self._answered)
        )

    def reconnect(self, shard: str, exc: DBAPIError) -> Connection:
        """Replace the lost connection to ``shard`` by a new one chosen for the same token.

        The ORM session (if any) first lets go of the lost connection: its
        transaction is rolled back (a reader's session holds nothing to keep;
        loaded objects are expired and reload on access).
        """
        log.info("shard %s: connection lost, reading on a new one: %s", shard, exc)
        self._replaced.add(shard)
        if self._session is not None:
            self._session.rollback()
        conn = self._connections.pop(shard)
        self.choices.pop(shard, None)
        try:
            conn.close()
        except SQLAlchemyError as error:
            log.debug("closing a lost connection failed: %s", error)
        return self.connection(shard)

    def on_shard(self, shard: str, run: Callable[[Connection], T]) -> T:
        """Return ``run(connection to shard)``; a reader's lost connection is replaced once.

        Driver errors are left to the caller (SQLAlchemy's, untranslated).
        """
        try:
            result = run(self.connection(shard))
        except DBAPIError as exc:
            if not self.may_reconnect(shard, exc):
                raise
            result = run(self.reconnect(shard, exc))
        if self.snapshot:
            self._answered.add(shard)
        return result

    def _on_shard(self, shard: str, statement: Any, params: Any) -> AnyResult:
        try:
            result = self.on_shard(shard, lambda conn: conn.execute(statement, params))
        except SQLAlchemyError as exc:
            raise translate(exc, shard) from exc
        if self._participants and writes(statement):
            self.wrote_on(shard)
        return result

    def wrote_on(self, shard: str) -> None:
        """Record that this writer wrote on ``shard`` (its two-phase commit prepares it unasked).

        Only ever a known write: a shard never recorded here is asked at commit
        whether it wrote, so recording too little is safe and too much merely
        prepares a read-only transaction.
        """
        part = self._participants.get(shard)
        if part is not None:
            part.wrote = True

    def execute(
        self, statement: Executable, params: Any = None, *, shard: str | None = None
    ) -> AnyResult:
        """Run a Core statement where the routing rule places it (or on ``shard``).

        Without ``shard`` the :class:`~elearn_data.sharding.routing.Router`
        decides, as for ORM statements: a scoped unit of work runs it on its
        shard, a global one by its criteria; a SELECT placed on several shards
        runs on them in parallel and is merged exactly
        (:mod:`~elearn_data.sharding.crossshard`). ``shard`` names the shard
        explicitly (the repositories' path); a write of catalog rows is refused
        either way. A reader whose pooled connection turns out to be lost runs
        the statement again on a new connection (see :meth:`may_reconnect`).

        Raises:
            RoutingError: the statement cannot be placed, leaves the scope, or
                writes catalog rows.
            CrossShardQuery: no exact answer across shards, or an UPDATE/DELETE
                of learner-owned rows that does not narrow (nothing is written).
            ShardUnavailable: a node cannot be reached.
        """
        if shard is not None:
            if isinstance(statement, UpdateBase):
                refuse_catalog_write(statement)
            return self._on_shard(shard, statement, params)
        targets = self.router.route(statement, params, self.scoped_to)
        if len(targets) == 1:
            return self._on_shard(targets[0], statement, params)
        if isinstance(statement, Select | CompoundSelect):
            return crossshard.execute_core(self, statement, params, targets)
        return self._write_on(statement, params, targets)

    def _write_on(self, statement: Any, params: Any, targets: Sequence[str]) -> AnyResult:
        """Run a write narrowed to several shards on each (one two-phase commit)."""
        if isinstance(statement, Insert):
            placed = self.router.split_insert(statement, params)
        else:
            placed = dict.fromkeys(targets, params)
        results: list[Any] = []
        for target, shard_params in placed.items():
            try:
                results.append(self.connection(target).execute(statement, shard_params))
            except SQLAlchemyError as exc:
                raise translate(exc, target) from exc
            if writes(statement):
                self.wrote_on(target)
        merged: AnyResult = results[0].merge(*results[1:])
        return merged

    def execute_with_timeout(
        self, statement: Executable, params: Any, *, shard: str, timeout_ms: int
    ) -> AnyResult:
        """Run one read on ``shard`` under its own statement timeout, in one round trip.

        An autocommit reader's path for a statement that is its own snapshot
        (the analytics fan-out's one-statement calls): the timeout and the
        statement go to the server as one query string, so the server stops
        the work when the caller's budget ends without a ``BEGIN`` and a
        ``ROLLBACK`` around it. Listeners see the combined string. A lost
        pooled connection is replaced once, as in :meth:`execute`.

        Raises:
            RuntimeError: the unit of work is not an autocommit reader, or the
                statement has parameters SQLAlchemy expands at execution.
        """
        if not self._autocommit:
            raise RuntimeError("execute_with_timeout runs on an autocommit reader only")

        def run(conn: Connection) -> AnyResult:
            sql, compiled = _compiled_with_timeout(statement, conn.dialect)
            bound = dict(compiled.construct_params(params or {}))
            bound["elearn_timeout_ms"] = str(timeout_ms)
            result: AnyResult = conn.exec_driver_sql(sql, bound)
            return result

        try:
            return self.on_shard(shard, run)
        except SQLAlchemyError as exc:
            raise translate(exc, shard) from exc

    def execute_on_every_shard(self, statement: Executable, params: Any = None) -> list[AnyResult]:
        """Run ``statement`` on every shard in sorted order; return each shard's result.

        The catalog writer's path (``db.catalog``): every copy of a catalog row
        changes in this unit of work, hence in one two-phase commit.
        """
        results: list[AnyResult] = []
        wrote = writes(statement)
        for target in self.router.shards:
            try:
                results.append(self.connection(target).execute(statement, params))
            except SQLAlchemyError as exc:
                raise translate(exc, target) from exc
            if wrote:
                self.wrote_on(target)
        return results

    def rows_on_shards(
        self, statement: Executable, params: Any = None, shards: Sequence[str] | None = None
    ) -> dict[str, list[RowMapping]]:
        """Run one read on each of ``shards`` (default: every shard) at once; rows by shard.

        A reader's round of a per-shard merge (``db.catalog.popular``'s top-N
        rounds): each shard answers on this unit of work's connection to it,
        as :meth:`execute` with ``shard=`` runs it (a snapshot included, a lost
        connection replaced once), the shards in parallel
        (:func:`~elearn_data.sharding.crossshard.in_parallel`: one in the
        calling thread, and a connection is never used by two threads at
        once). Returns ``{shard: rows as mappings}`` in the order of ``shards``.

        Raises:
            RuntimeError: called on a writer (writes go shard by shard, in order).
            ShardUnavailable: a node cannot be reached (the first failing shard).
        """
        if self.role != "reader":
            raise RuntimeError("a fan-out of reads runs on a reader unit of work")
        targets = list(self.router.shards if shards is None else shards)

        def run(shard: str) -> list[RowMapping]:
            return list(self.execute(statement, params, shard=shard).mappings())

        return dict(zip(targets, crossshard.in_parallel(run, targets), strict=True))

    def fetch_prepared(
        self, query: PreparedRead, args: Sequence[Any], *, shard: str | None = None
    ) -> tuple[Any, ...] | None:
        """Return the first row of a prepared read on one shard (None when there is none).

        See :meth:`fetch_prepared_rows`.
        """
        rows = self.fetch_prepared_rows(query, args, shard=shard)
        return rows[0] if rows else None

    def fetch_prepared_rows(
        self, query: PreparedRead, args: Sequence[Any], *, shard: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Return the rows of a prepared read on one shard.

        The fast path (server-side prepared statement, driver cursor) serves
        autocommit readers; on a shard the unit has no connection to yet, a
        replica the selector takes without a query is read through its pooled
        driver connection alone (see :meth:`_open`). A connection inside a
        transaction (a writer, a snapshot reader) or one that something
        observes (engine events, echo) runs the same statement through
        SQLAlchemy instead, so listeners see
        every statement and a transaction never meets a PREPARE error. A lost
        pooled connection is replaced once, as in :meth:`execute`. A timed
        query (``PreparedRead(timed=True)``) runs on autocommit readers only
        (``RuntimeError`` elsewhere); listeners see it as
        :meth:`execute_with_timeout` sends it.
        """
        target = shard or self.scoped_to
        if target is None:
            raise RoutingError(
                f"prepared read {query.name}: pass shard=... in a global unit of work"
            )
        if self._autocommit:
            pooled = self._pooled.get(target)
            if pooled is None and target not in self._connections:
                opened = self._open(target, pooled=True)
                pooled = opened if not isinstance(opened, Connection) else None
            if pooled is not None:
                return self._fetch_pooled(target, pooled, query, args)
            if not sqla.observed(self.connection(target)):
                try:
                    return self.on_shard(
                        target,
                        lambda conn: _fetch_prepared(
                            conn.connection, conn.engine, query, args, conn.invalidate
                        ),
                    )
                except SQLAlchemyError as exc:
                    raise translate(exc, target) from exc
        timeout_ms, params = query.bind(args)
        if timeout_ms is not None:
            if not self._autocommit:
                raise RuntimeError(
                    f"prepared read {query.name} carries a timeout: autocommit readers only"
                )
            timed = self.execute_with_timeout(
                query.statement, params, shard=target, timeout_ms=timeout_ms
            )
            return [tuple(row) for row in timed]
        return [tuple(row) for row in self._on_shard(target, query.statement, params)]

    def _fetch_pooled(
        self, shard: str, pooled: PoolProxiedConnection, query: PreparedRead, args: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """:meth:`fetch_prepared_rows` on a pooled driver connection (a lost one replaced once)."""
        engine = self.choices[shard].node.engine
        try:
            return _fetch_prepared(pooled, engine, query, args, pooled.invalidate)
        except DBAPIError as exc:
            if not self.may_reconnect(shard, exc):
                raise translate(exc, shard) from exc
            log.info("shard %s: connection lost, reading on a new one: %s", shard, exc)
            self._replaced.add(shard)
            if self._session is not None:
                self._session.rollback()
            del self._pooled[shard]
            self.choices.pop(shard, None)
            self._close_pooled(pooled)
        # A new connection, chosen for the same token (once: the shard is in _replaced).
        return self.fetch_prepared_rows(query, args, shard=shard)

    @staticmethod
    def _close_pooled(pooled: PoolProxiedConnection) -> None:
        try:
            pooled.close()
        except SQLAlchemyError as exc:
            log.debug("closing a connection failed: %s", exc)

    def fetch_prepared_on_shards(
        self, query: PreparedRead, args: Sequence[Any], shards: Sequence[str] | None = None
    ) -> dict[str, list[tuple[Any, ...]]]:
        """Run a prepared read on each of ``shards`` (default: every shard) at once.

        A reader's path for a statement each shard answers about its own rows
        (a round of a per-shard top-N merge). Returns ``{shard: rows}`` in the
        order of ``shards``, the rows as :meth:`fetch_prepared_rows` returns
        them.

        An autocommit reader sends the statement from the calling thread to
        every shard it has no connection to yet whose replica the selector
        takes without a query and that nothing observes, on that replica's
        asynchronous connection (:mod:`~elearn_data.sharding.multiplex`, back
        in its pool when this returns); while those run, the calling thread
        reads the other shards (a lag check or a causal wait due, a primary,
        listeners, a shard it already reads on) as :meth:`fetch_prepared_rows`
        does, in parallel threads when there are several
        (:func:`~elearn_data.sharding.crossshard.in_parallel`), and then waits
        on every socket at once. A shard whose multiplexed connection was lost
        is read again that way (it reconnects). A snapshot reader asks every
        shard in parallel threads, each on its own connection.

        Raises:
            RuntimeError: called on a writer (writes go shard by shard, in order).
            ShardUnavailable: a node cannot be reached (the first failing shard).
        """
        if self.role != "reader":
            raise RuntimeError("a fan-out of reads runs on a reader unit of work")
        if self._closed:
            raise RuntimeError("this unit of work is finished")
        targets = list(self.router.shards if shards is None else shards)
        if self._autocommit and len(targets) > 1:
            return self._fetch_multiplexed(query, args, targets)
        return dict(zip(targets, self._fetch_in_threads(query, args, targets), strict=True))

    def _fetch_in_threads(
        self, query: PreparedRead, args: Sequence[Any], shards: Sequence[str]
    ) -> list[list[tuple[Any, ...]]]:
        def run(shard: str) -> list[tuple[Any, ...]]:
            return self.fetch_prepared_rows(query, args, shard=shard)

        return crossshard.in_parallel(run, shards)

    def _fetch_multiplexed(
        self, query: PreparedRead, args: Sequence[Any], targets: Sequence[str]
    ) -> dict[str, list[tuple[Any, ...]]]:
        sent: list[multiplex.Taken] = []
        rest: list[str] = []
        outcomes: dict[str, multiplex.Outcome] = {}
        try:
            for shard in targets:
                taken = self.take_multiplexed(shard)
                if taken is None:
                    rest.append(shard)
                else:
                    multiplex.send(taken, query, args)
                    sent.append(taken)
            if rest:
                outcomes.update(self._outcomes_in_threads(query, args, rest))
            outcomes.update(multiplex.collect(sent, query, args))
        finally:
            multiplex.abandon(sent)  # an error above, before collect: nothing waits for them
            for taken in sent:
                self._close_pooled(taken.fairy)
        for shard, outcome in list(outcomes.items()):
            if isinstance(outcome, multiplex.ConnectionLost):
                log.info("%s; reading it through the engine's connections", outcome)
                outcomes.update(self._outcomes_in_threads(query, args, [shard]))
        found: dict[str, list[tuple[Any, ...]]] = {}
        for shard in targets:  # the first failure in shard order, as in_parallel raises it
            outcome = outcomes[shard]
            if isinstance(outcome, BaseException):
                raise outcome
            found[shard] = outcome
        return found

    def _outcomes_in_threads(
        self, query: PreparedRead, args: Sequence[Any], shards: Sequence[str]
    ) -> dict[str, multiplex.Outcome]:
        """:meth:`_fetch_in_threads`, each shard's failure kept as its outcome (none raised)."""

        def run(shard: str) -> multiplex.Outcome:
            try:
                return self.fetch_prepared_rows(query, args, shard=shard)
            except Exception as exc:  # raised by the caller, in shard order
                return exc

        return dict(zip(shards, crossshard.in_parallel(run, shards), strict=True))

    def take_multiplexed(self, shard: str) -> multiplex.Taken | None:
        """The shard's multiplexed connection, or None when one cannot serve it.

        None: a shard this unit of work already reads on (it keeps one node
        per shard), an unknown shard, a replica the selector cannot take
        without a query, or an engine something observes (listeners must see
        every statement). The caller gives the connection back to its pool
        (``taken.fairy.close()``) after :func:`multiplex.collect`; the node
        is recorded in :attr:`choices`.
        """
        if (
            shard in self._connections
            or shard in self._pooled
            or shard not in self.cluster.engines.shards
        ):
            return None
        started = time.perf_counter()
        found = self.cluster.selector.connect_pooled(shard, self.token.get(shard), multiplexed=True)
        if isinstance(found, Remaining):
            return None
        fairy, choice = found
        node = choice.node
        if sqla.observed_engine(node.engine) or node.multiplexed is None:
            self._close_pooled(fairy)
            return None
        self.cluster.instruments.checked_out(shard, self.role, time.perf_counter() - started)
        self.choices[shard] = choice
        return multiplex.Taken(shard, fairy, node.engine, node.multiplexed)

    # ------------------------------------------------------------ completion

    def commit(self) -> CausalToken:
        """Flush and commit every shard touched; return the causal token of the writes."""
        if self._closed:
            raise RuntimeError("this unit of work is finished")
        if self._session is not None:
            self._session.flush()
        if self.role == "reader":
            for conn in self._connections.values():
                if conn.in_transaction():
                    conn.commit()
            self.close()
            return CausalToken()
        self.commit_started = True
        touched = list(self._participants)
        positions: dict[str, int] = {}
        try:
            if not touched:
                committed: list[str] = []
            elif len(touched) == 1:
                position = self._participants[touched[0]].transaction.commit()
                if position is not None:
                    positions[touched[0]] = position
                committed = touched
            else:
                # The gid names the default shard, so the decision must live there,
                # even when nothing was written on it (recovery trusts the gid).
                coordinator = self.default_shard
                if coordinator not in self._participants:
                    self.connection(coordinator)
                result = twophase.commit_all(
                    self._participants,
                    coordinator,
                    self._gid,
                    engines=self.cluster.engines,
                    resolve_s=self.cluster.settings.twophase_resolve_s,
                )
                committed = result.committed
                positions = result.positions
            token = self._read_positions(committed, positions)
        finally:
            self.close()
        self.committed_token = token
        return token

    def _read_positions(
        self, shards: list[str], known: dict[str, int] | None = None
    ) -> CausalToken:
        """Return the token of the committed shards (``known``: positions read already).

        A position that cannot be read on the committing connection is read on a
        fresh connection to the shard's primary (any later position is a valid
        token). If that fails too, the shard is pinned to its primary in the
        token (:data:`~elearn_data.sharding.consistency.PRIMARY_ONLY`): a reader
        must never take a replica of a shard it wrote to without waiting.
        """
        lsns: dict[str, int] = dict(known or {})
        for shard in shards:
            if shard in lsns:
                continue
            conn = self._connections[shard]
            try:
                lsns[shard] = current_lsn(conn)
            except SQLAlchemyError as exc:
                log.warning("could not read the WAL position of shard %s: %s", shard, exc)
                lsns[shard] = self._fresh_position(shard)
        return CausalToken(lsns)

    def _fresh_position(self, shard: str) -> int:
        try:
            with self.cluster.engines.primary(shard).engine.connect() as conn:
                return current_lsn(conn)
        except SQLAlchemyError as exc:
            log.warning("shard %s pinned to its primary for this token: %s", shard, exc)
            return PRIMARY_ONLY

    def rollback(self) -> None:
        """Roll back every shard touched (idempotent).

        A connection whose transaction could not be ended is invalidated: it
        never goes back to the pool with a transaction (a snapshot) open.
        """
        if self._session is not None:
            try:
                self._session.rollback()
            except SQLAlchemyError as exc:
                log.debug("session rollback failed: %s", exc)
        for shard, conn in self._connections.items():
            try:
                part = self._participants.get(shard)
                if part is not None and part.transaction.is_active:
                    part.transaction.rollback()
                elif conn.in_transaction():
                    conn.rollback()
            except SQLAlchemyError as exc:
                log.debug("rollback on shard %s failed: %s", shard, exc)
                if not conn.invalidated and not conn.closed:
                    conn.invalidate(exc)
        self.close()

    def close(self) -> None:
        """Return every connection to its pool."""
        if self._closed:
            return
        self._closed = True
        self.cluster.instruments.unit_closed(self.role, len(self._connections) + len(self._pooled))
        if self._session is not None:
            self._session.close()
        for pooled in self._pooled.values():
            self._close_pooled(pooled)
        for shard, conn in self._connections.items():
            if shard in self._snapshots:
                self._end_snapshot(shard, conn)
            try:
                conn.close()
            except SQLAlchemyError as exc:
                log.debug("closing a connection failed: %s", exc)

    @staticmethod
    def _end_snapshot(shard: str, conn: Connection) -> None:
        """End a snapshot; a connection whose snapshot state is unknown is discarded."""
        if conn.invalidated or conn.closed:
            return
        try:
            conn.execute(_END_SNAPSHOT)
            conn.commit()  # SQLAlchemy's autobegun (server-side no-op) transaction
        except SQLAlchemyError as exc:
            log.debug("ending the snapshot on shard %s failed: %s", shard, exc)
            if not conn.invalidated and not conn.closed:
                conn.invalidate(exc)

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit on success, roll back on error, translate driver errors."""
        if exc is not None:
            self.rollback()
            if isinstance(exc, SQLAlchemyError):
                raise translate(exc, self.default_shard) from exc
            return
        try:
            token = self.commit()
        except SQLAlchemyError as error:
            self.rollback()
            raise translate(error, self.default_shard) from error
        except BaseException:
            self.rollback()
            raise
        if self._on_commit is not None:
            self._on_commit(token)


def read_prepared(
    cluster: Cluster,
    shard: str,
    query: PreparedRead,
    args: Sequence[Any],
    *,
    token: CausalToken | None = None,
) -> list[tuple[Any, ...]]:
    """Return the rows of one prepared read on ``shard``, as a reader scoped to it reads them.

    What ``with UnitOfWork(cluster, "reader", shard, token=token) as uow:
    uow.fetch_prepared_rows(query, args)`` returns, for a call that is nothing
    but that one read (``db.users.get``). In the common case -- a replica the
    selector takes without a query, whose engine nothing observes -- the read
    runs on the replica's pooled driver connection with no unit of work built
    and closed around it (a tenth of a point read's client CPU); the pool's
    hooks and the instruments run as for a unit of work's read. Everything
    else is the unit of work's own path: a lag check or causal wait due, the
    primary fallback, an observed engine, and a lost connection, which is
    replaced once, the read run again on a new one.

    Raises:
        ShardUnavailable: no node of the shard could serve the read (as in a
            unit of work; other driver errors are translated the same way).
    """
    lsn = (token or _NO_TOKEN).get(shard)
    started = time.perf_counter()
    try:
        found = cluster.selector.connect_pooled(shard, lsn)
    except (DBAPIError, PoolTimeout) as exc:
        raise translate(exc, shard) from exc
    if isinstance(found, Remaining):
        return _read_in_unit(cluster, shard, query, args, token)
    pooled, choice = found
    engine = choice.node.engine
    if sqla.observed_engine(engine):
        UnitOfWork._close_pooled(pooled)
        return _read_in_unit(cluster, shard, query, args, token)
    instruments = cluster.instruments
    instruments.checked_out(shard, "reader", time.perf_counter() - started)
    try:
        try:
            return _fetch_prepared(pooled, engine, query, args, pooled.invalidate)
        finally:
            UnitOfWork._close_pooled(pooled)
            instruments.unit_closed("reader", 1)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise translate(exc, shard) from exc
        log.info("shard %s: connection lost, reading on a new one: %s", shard, exc)
    return _read_in_unit(cluster, shard, query, args, token, replaced=True)


def _read_in_unit(
    cluster: Cluster,
    shard: str,
    query: PreparedRead,
    args: Sequence[Any],
    token: CausalToken | None,
    *,
    replaced: bool = False,
) -> list[tuple[Any, ...]]:
    """:func:`read_prepared` in a reader unit of work (``replaced``: its replacement is spent)."""
    with UnitOfWork(cluster, "reader", shard, token=token) as uow:
        if replaced:
            uow._replaced.add(shard)
        return uow.fetch_prepared_rows(query, args)


def _note_flushed_shards(session: Session, flush: UOWTransaction) -> None:
    """``after_flush``: the shards a writer's ORM flush wrote on are known written.

    Every flushed object carries the shard it was written to (its identity
    token); one without (none is expected) leaves its shard to the server's check.
    """
    uow = getattr(session, "_uow", None)
    if not isinstance(uow, UnitOfWork) or not uow._participants:
        return
    for obj in [*session.new, *session.dirty, *session.deleted]:
        state = inspect(obj)
        shard = state.key[2] if state.key is not None else state.identity_token
        if isinstance(shard, str):
            uow.wrote_on(shard)


event.listen(RoutedSession, "after_flush", _note_flushed_shards)
