"""``elearn top``: the slowest and the most frequent statements of every shard, merged.

The numbers come from ``pg_stat_statements`` (loaded on every node of the
embedded cluster; installed in the ``elearn_stats`` schema). Each node counts
its own statements -- reads mostly run on replicas --, so a shard's figure is
the sum over its primary and replicas, and the platform's is the sum over the
shards, grouped by the normalised statement text (``queryid`` differs between
shards: it hashes the tables' OIDs). Means are total time over total calls,
never a mean of means.

The application role sees the text of its own statements only; PostgreSQL
hides other roles' text (``<insufficient privilege>``).
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.errors import ConfigurationError, InvalidInput
from elearn_data.sharding.engines import Node

if TYPE_CHECKING:
    from elearn_data.database import Database

STATS_SCHEMA = "elearn_stats"
# SQLSTATEs: the library is not preloaded (object_not_in_prerequisite_state),
# the extension or its schema is missing.
_NOT_LOADED = "55000"
_UNDEFINED_TABLE = "42P01"
_UNDEFINED_SCHEMA = "3F000"

_STATEMENTS = text(
    "SELECT query, calls, total_exec_time, rows "
    "FROM elearn_stats.pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND calls > 0"
)


@dataclass(frozen=True)
class StatementStats:
    """One normalised statement's figures over a shard (or over every shard: ``shard='all'``)."""

    shard: str
    query: str
    calls: int
    total_ms: float
    rows: int

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "query": self.query,
            "calls": self.calls,
            "total_ms": round(self.total_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "rows": self.rows,
        }


@dataclass(frozen=True)
class TopReport:
    """The top statements per shard and merged, by mean time and by calls."""

    slowest: list[StatementStats]
    most_frequent: list[StatementStats]
    unreachable: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slowest": [s.to_dict() for s in self.slowest],
            "most_frequent": [s.to_dict() for s in self.most_frequent],
            "unreachable": self.unreachable,
        }


def _node_rows(node: Node) -> list[tuple[str, int, float, int]]:
    with node.engine.connect() as conn:
        rows = [(str(q), int(c), float(t), int(r)) for q, c, t, r in conn.execute(_STATEMENTS)]
        conn.rollback()
    return rows


def top(db: Database, *, shard: str | None = None, limit: int = 10) -> TopReport:
    """Return the ``limit`` slowest (mean time) and most frequent statements.

    With ``shard`` only that shard's nodes are read and no ``all`` rows are
    given; otherwise each shard's top and the merged ``all`` top.

    Raises:
        InvalidInput: unknown shard or a limit below 1.
        ConfigurationError: pg_stat_statements is not loaded (names the fix).
    """
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1: {limit}")
    shards = [db.router.resolve(shard)] if shard is not None else list(db.router.shards)
    nodes = [
        n for s in shards for n in (db.cluster.engines.primary(s), *db.cluster.engines.replicas(s))
    ]
    unreachable: list[str] = []
    per_shard: dict[str, dict[str, list[float]]] = {
        s: defaultdict(lambda: [0, 0.0, 0]) for s in shards
    }

    def fetch(node: Node) -> tuple[Node, list[tuple[str, int, float, int]] | None]:
        try:
            return node, _node_rows(node)
        except SQLAlchemyError as exc:
            code = getattr(getattr(exc, "orig", None), "pgcode", None)
            if code == _NOT_LOADED:
                raise ConfigurationError(
                    f"pg_stat_statements is not loaded on {node.label}: it needs "
                    "shared_preload_libraries and a restart (`elearn cluster down` then "
                    "`elearn up` for the embedded cluster)"
                ) from exc
            if code in (_UNDEFINED_TABLE, _UNDEFINED_SCHEMA):
                raise ConfigurationError(
                    f"{node.label} has no {STATS_SCHEMA}.pg_stat_statements: run `elearn cluster "
                    "up` (embedded) or CREATE EXTENSION pg_stat_statements SCHEMA "
                    f"{STATS_SCHEMA} as a superuser"
                ) from exc
            return node, None

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        results = list(pool.map(fetch, nodes))
    for node, rows in results:
        if rows is None:
            unreachable.append(node.label)
            continue
        for query, calls, total, nrows in rows:
            acc = per_shard[node.shard][query]
            acc[0] += calls
            acc[1] += total
            acc[2] += nrows

    def stats_of(name: str, figures: dict[str, list[float]]) -> list[StatementStats]:
        return [
            StatementStats(name, q, int(f[0]), float(f[1]), int(f[2])) for q, f in figures.items()
        ]

    groups: list[list[StatementStats]] = [stats_of(s, per_shard[s]) for s in shards]
    if shard is None:
        merged: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
        for s in shards:
            for q, f in per_shard[s].items():
                acc = merged[q]
                acc[0] += f[0]
                acc[1] += f[1]
                acc[2] += f[2]
        groups.append(stats_of("all", merged))
    slowest: list[StatementStats] = []
    frequent: list[StatementStats] = []
    for group in groups:
        slowest += sorted(group, key=lambda s: (-s.mean_ms, s.query))[:limit]
        frequent += sorted(group, key=lambda s: (-s.calls, s.query))[:limit]
    return TopReport(slowest, frequent, unreachable)
