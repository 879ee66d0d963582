"""``elearn health --deep``: what an operator looks at before the platform slows down.

Per shard: table and index sizes, indexes no node has used since the
statistics were reset (a shard's index counts as used when its primary *or any
replica* scanned it: reads run on replicas), duplicate indexes (same table,
columns, expressions and predicate), a bloat estimate (dead over live and dead
tuples, from the statistics collector; ``pgstattuple`` would be exact but
reads every page), long-running transactions, prepared transactions, and the
WAL each replication slot holds back.

Everything is read with the application role. PostgreSQL shows it other
roles' sessions without their times, so long transactions of other roles
(e.g. a migration) are counted as ``hidden``, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.sharding.engines import Node

if TYPE_CHECKING:
    from elearn_data.database import Database

LONG_TRANSACTION_S = 60.0

_TABLES = text(
    "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid), "
    "       coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)
_INDEXES = text(
    "SELECT t.relname, i.relname, pg_relation_size(i.oid), x.indisunique OR x.indisprimary, "
    "       coalesce(s.idx_scan, 0), "
    "       x.indrelid::text || ':' || x.indkey::text || ':' || "
    "       coalesce(pg_get_expr(x.indexprs, x.indrelid), '') || ':' || "
    "       coalesce(pg_get_expr(x.indpred, x.indrelid), '') || ':' || x.indclass::text "
    "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
    "LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid "
    "WHERE n.nspname = 'public' ORDER BY t.relname, i.relname"
)
_SCANS = text(
    "SELECT s.indexrelname, s.idx_scan FROM pg_stat_user_indexes s WHERE s.schemaname = 'public'"
)
_ACTIVITY = text(
    "SELECT pid, usename, state, extract(epoch FROM now() - xact_start), "
    "       backend_type = 'client backend' "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
_PREPARED = text(
    "SELECT gid, extract(epoch FROM now() - prepared) FROM pg_prepared_xacts "
    "WHERE database = current_database()"
)
_SLOTS = text(
    "SELECT slot_name, active, "
    "       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint "
    "FROM pg_replication_slots"
)


@dataclass(frozen=True)
class TableSize:
    table: str
    table_bytes: int
    index_bytes: int
    live_rows: int
    dead_rows: int

    @property
    def bloat_ratio(self) -> float:
        total = self.live_rows + self.dead_rows
        return self.dead_rows / total if total else 0.0


@dataclass(frozen=True)
class IndexInfo:
    table: str
    index: str
    bytes: int
    unique: bool
    scans: int  # summed over the shard's primary and replicas


@dataclass(frozen=True)
class LongTransaction:
    node: str
    pid: int
    user: str | None
    state: str | None
    seconds: float


@dataclass
class ShardDeepReport:
    shard: str
    tables: list[TableSize] = field(default_factory=list)
    indexes: list[IndexInfo] = field(default_factory=list)
    unused_indexes: list[str] = field(default_factory=list)
    duplicate_indexes: list[list[str]] = field(default_factory=list)
    long_transactions: list[LongTransaction] = field(default_factory=list)
    hidden_sessions: int = 0
    prepared_transactions: list[tuple[str, float]] = field(default_factory=list)
    slots: list[tuple[str, bool, int]] = field(default_factory=list)  # name, active, bytes
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row, table in zip(data["tables"], self.tables, strict=True):
            row["bloat_ratio"] = round(table.bloat_ratio, 4)
        return data


@dataclass(frozen=True)
class DeepReport:
    shards: list[ShardDeepReport]

    def to_dict(self) -> dict[str, Any]:
        return {"shards": [s.to_dict() for s in self.shards]}


def _scans(node: Node) -> dict[str, int]:
    with node.engine.connect() as conn:
        result = {str(name): int(scans or 0) for name, scans in conn.execute(_SCANS)}
        conn.rollback()
    return result


def _shard_report(db: Database, shard: str, long_s: float) -> ShardDeepReport:
    report = ShardDeepReport(shard)
    primary = db.cluster.engines.primary(shard)
    try:
        with primary.engine.connect() as conn:
            report.tables = [
                TableSize(str(t), int(ts), int(ix), int(live), int(dead))
                for t, ts, ix, live, dead in conn.execute(_TABLES)
            ]
            index_rows = list(conn.execute(_INDEXES))
            activity = list(conn.execute(_ACTIVITY))
            report.prepared_transactions = [
                (str(gid), float(age)) for gid, age in conn.execute(_PREPARED)
            ]
            report.slots = [
                (str(name), bool(active), int(held)) for name, active, held in conn.execute(_SLOTS)
            ]
            conn.rollback()
    except SQLAlchemyError as exc:
        report.errors.append(f"{primary.label}: {str(getattr(exc, 'orig', exc)).strip()}")
        return report
    scans: dict[str, int] = defaultdict(int)
    for row in index_rows:
        scans[str(row[1])] += int(row[4])
    for replica in db.cluster.engines.replicas(shard):
        try:
            for name, count in _scans(replica).items():
                scans[name] += count
        except SQLAlchemyError as exc:
            report.errors.append(f"{replica.label}: {str(getattr(exc, 'orig', exc)).strip()}")
    shapes: dict[str, list[str]] = defaultdict(list)
    for table, index, size, unique, _scans_here, shape in index_rows:
        info = IndexInfo(str(table), str(index), int(size), bool(unique), scans[str(index)])
        report.indexes.append(info)
        # Unique and primary-key indexes enforce a rule even when nobody reads them.
        if info.scans == 0 and not info.unique:
            report.unused_indexes.append(info.index)
        shapes[str(shape)].append(info.index)
    report.duplicate_indexes = [sorted(names) for names in shapes.values() if len(names) > 1]
    for pid, user, state, age, client in activity:
        if age is None:
            # No transaction, or another role's session (PostgreSQL hides its state).
            if client and state is None:
                report.hidden_sessions += 1
            continue
        if float(age) >= long_s:
            report.long_transactions.append(
                LongTransaction(primary.label, int(pid), user, state, float(age))
            )
    return report


def deep_report(db: Database, *, long_transaction_s: float = LONG_TRANSACTION_S) -> DeepReport:
    """Read every shard's sizes, index use, bloat, long transactions and slots (in parallel)."""
    shards = list(db.router.shards)
    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        reports = list(pool.map(lambda s: _shard_report(db, s, long_transaction_s), shards))
    return DeepReport(reports)
