"""The platform's health report: every node, schema drift, MongoDB, pools, merged statistics.

:func:`health_report` (``db.health()``, ``elearn health``) checks everything at
once -- one worker per node, one for the content store, one for the platform
statistics -- each with a short timeout, and always returns a complete report:
a node that is down, slow or refuses us is listed as such (``reachable`` False
and the reason), never left out, and never makes the check itself fail.

Replication lag is measured from the probes: a replica's replay LSN against its
primary's current LSN (bytes), and the age of the last replayed transaction
(seconds; 0 when the replica has replayed everything, since an idle primary
sends nothing to replay and the age would otherwise grow forever). A replica
is ``degraded`` (readers skip it, and ``ok`` is False) when it lags more than
``Settings.replica.max_lag_bytes``, or has WAL waiting while its replay is
paused, or while this process's readers saw its replay stand still for
``replica.max_lag_s``. The age alone is not used: after an idle period the
first commit to arrive makes it look old for a moment.

``ok`` is False when a node is unreachable, degraded or in the wrong role, a shard's
schema is not at the code's head revision, the content store is unreachable,
or the statistics could not be computed; ``problems`` says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data import migrations
from elearn_data.analytics import Analytics
from elearn_data.config import Settings, url_hosts
from elearn_data.sharding.consistency import ReplicaSelector
from elearn_data.sharding.engines import Node, NodeProbe, build_engine

if TYPE_CHECKING:
    from elearn_data.database import Database

log = logging.getLogger(__name__)

R = TypeVar("R")

SchemaState = Literal["ok", "behind", "ahead", "unreachable", "unknown"]

DEFAULT_TIMEOUT_S = 3.0
_PAUSED_WITH_WAL = text(
    "SELECT pg_is_wal_replay_paused() AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
)


@dataclass(frozen=True)
class NodeReport:
    """One PostgreSQL node as the health check saw it."""

    shard: str
    role: str
    address: str  # the configured host:port list, never credentials
    reachable: bool
    server: str | None = None  # host:port of the server that answered (multi-host URLs)
    in_recovery: bool | None = None
    replay_lag_bytes: int | None = None  # replicas: primary's current LSN - replay LSN
    replay_lag_seconds: float | None = None
    schema_revision: str | None = None
    error: str | None = None
    degraded: bool = False  # replicas: replay paused/stalled with WAL waiting, or too far behind


@dataclass(frozen=True)
class SchemaReport:
    """One shard's schema revision against the code's head."""

    shard: str
    revision: str | None
    head: str
    state: SchemaState
    error: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """Everything :func:`health_report` found (``to_dict()`` is JSON-ready)."""

    ok: bool
    problems: tuple[str, ...]
    nodes: tuple[NodeReport, ...]
    schema: tuple[SchemaReport, ...]
    mongo: dict[str, Any]
    pools: tuple[dict[str, Any], ...]
    stats: dict[str, Any] | None  # the merged ("all") platform figures
    stats_by_shard: dict[str, dict[str, Any]] | None = None
    stats_error: str | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON types (money as strings, times in ISO 8601)."""
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "nodes": [_jsonable(asdict(n)) for n in self.nodes],
            "schema": [_jsonable(asdict(s)) for s in self.schema],
            "mongo": _jsonable(self.mongo),
            "pools": [_jsonable(p) for p in self.pools],
            "stats": _jsonable(self.stats),
            "stats_by_shard": _jsonable(self.stats_by_shard),
            "stats_error": self.stats_error,
            "checked_at": self.checked_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class _NodeCheck:
    node: Node
    probe: NodeProbe
    revision: str | None = None
    revision_error: str | None = None
    replay_paused_with_wal_waiting: bool = False


def health_report(
    db: Database, *, timeout_s: float = DEFAULT_TIMEOUT_S, stats_timeout_s: float | None = None
) -> HealthReport:
    """Check every node, the schema, the content store, the pools and the statistics.

    Never raises for an unavailable component: it is reported.

    Args:
        db: the ``connect()`` object to check.
        timeout_s: budget of each node probe and of the content store check.
        stats_timeout_s: per-shard budget of the statistics (default:
            ``Settings.analytics_timeout_s``).
    """
    started = time.monotonic()
    settings = db.settings
    engines = db.cluster.engines
    nodes = list(engines.nodes())
    quick = _quick_settings(settings, timeout_s)
    stats_budget = stats_timeout_s if stats_timeout_s is not None else settings.analytics_timeout_s

    pool = ThreadPoolExecutor(max_workers=len(nodes) + 2, thread_name_prefix="elearn-health")
    try:
        node_futures = [pool.submit(_check_node, db, quick, node, timeout_s) for node in nodes]
        mongo_future = pool.submit(_mongo_status, db)
        stats_future = pool.submit(_platform_stats, db, stats_budget)
        # Probes connect with a whole-second timeout (libpq's unit): allow for it.
        pending: list[Future[Any]] = [*node_futures, mongo_future]
        wait(pending, timeout=max(1.0, timeout_s) + 1.0)
        checks = [
            _result(future, partial(_late, node, timeout_s))
            for node, future in zip(nodes, node_futures, strict=True)
        ]
        mongo = _result(
            mongo_future,
            lambda: {"reachable": False, "error": f"no answer within {timeout_s:g} s"},
        )
        wait([stats_future], timeout=stats_budget + 1.0)
        stats, by_shard, stats_error = _result(
            stats_future, lambda: (None, None, f"no answer within {stats_budget:g} s")
        )
    finally:
        # A stuck probe is not waited for; its own timeouts end it.
        pool.shutdown(wait=False, cancel_futures=True)

    node_reports = _node_reports(checks, settings, db.cluster.selector)
    schema = _schema_reports(settings, checks)
    pools = tuple(asdict(p) for p in engines.pool_stats())
    problems = _problems(node_reports, schema, mongo, stats_error)
    return HealthReport(
        ok=not problems,
        problems=tuple(problems),
        nodes=tuple(node_reports),
        schema=tuple(schema),
        mongo=mongo,
        pools=pools,
        stats=stats,
        stats_by_shard=by_shard,
        stats_error=stats_error,
        elapsed_s=time.monotonic() - started,
    )


# ------------------------------------------------------------------ workers


def _quick_settings(settings: Settings, timeout_s: float) -> Settings:
    ms = max(1, int(timeout_s * 1000))
    return settings.model_copy(
        update={
            "connect_timeout_s": max(1, round(timeout_s)),
            "statement_timeout_ms": ms,
            "lock_timeout_ms": ms,
        }
    )


def _check_node(db: Database, quick: Settings, node: Node, timeout_s: float) -> _NodeCheck:
    probe = db.cluster.engines.probe(node, timeout=timeout_s)
    if not probe.reachable:
        return _NodeCheck(node, probe)
    # An unpooled connection: the check never disturbs (or depends on) the pools.
    engine = build_engine(
        node.url,
        settings=quick,
        password=quick.shard_password(node.shard),
        application="elearn-health",
        pooled=False,
    )
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            revision = (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if exists
                else None
            )
            paused = bool(probe.in_recovery) and bool(conn.execute(_PAUSED_WITH_WAL).scalar())
        return _NodeCheck(node, probe, revision=revision, replay_paused_with_wal_waiting=paused)
    except SQLAlchemyError as exc:
        return _NodeCheck(node, probe, revision_error=_first_line(exc))
    finally:
        engine.dispose()


def _mongo_status(db: Database) -> dict[str, Any]:
    try:
        return db.content_store.status()
    except Exception as exc:  # the report lists a broken store; it never fails itself
        return {"reachable": False, "error": _first_line(exc)}


def _platform_stats(
    db: Database, budget: float
) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]] | None, str | None]:
    try:
        frame = Analytics(db, timeout_s=budget).platform_stats()
    except Exception as exc:  # a shard that cannot answer is reported, not raised
        return None, None, _first_line(exc)
    rows: dict[str, dict[str, Any]] = {
        str(r["shard"]): {str(k): v for k, v in r.items() if k != "shard"}
        for r in frame.to_dict(orient="records")
    }
    merged = rows.pop("all")
    return merged, rows, None


def _result(future: Future[R], fallback: Callable[[], R]) -> R:
    if future.done() and not future.cancelled():
        exc = future.exception()
        if exc is None:
            return future.result()
        log.warning("health check task failed: %s", exc)
    return fallback()


def _late(node: Node, timeout_s: float) -> _NodeCheck:
    return _NodeCheck(node, NodeProbe(reachable=False, error=f"no answer within {timeout_s:g} s"))


# ------------------------------------------------------------------ assembly


def _node_reports(
    checks: list[_NodeCheck], settings: Settings, selector: ReplicaSelector
) -> list[NodeReport]:
    primary_lsn = {
        c.node.shard: c.probe.lsn
        for c in checks
        if c.node.role == "primary" and c.probe.reachable and c.probe.in_recovery is False
    }
    reports: list[NodeReport] = []
    for check in checks:
        node, probe = check.node, check.probe
        lag_bytes: int | None = None
        lag_seconds: float | None = None
        if node.role == "replica" and probe.reachable and probe.lsn is not None:
            head = primary_lsn.get(node.shard)
            if head is not None:
                lag_bytes = max(0, head - probe.lsn)
            lag_seconds = 0.0 if lag_bytes == 0 else probe.replay_lag_seconds
        degraded = node.role == "replica" and (
            check.replay_paused_with_wal_waiting
            or selector.is_stalled(node)
            or (lag_bytes is not None and lag_bytes > settings.replica.max_lag_bytes)
        )
        reports.append(
            NodeReport(
                shard=node.shard,
                role=node.role,
                address=node.address,
                reachable=probe.reachable,
                server=_server(node, probe),
                in_recovery=probe.in_recovery,
                replay_lag_bytes=lag_bytes,
                replay_lag_seconds=lag_seconds,
                schema_revision=check.revision,
                error=probe.error or check.revision_error,
                degraded=degraded,
            )
        )
    return reports


def _server(node: Node, probe: NodeProbe) -> str | None:
    if not probe.reachable or probe.server_port is None:
        return None
    hosts = [h for h, port in url_hosts(node.url) if port == probe.server_port]
    return f"{hosts[0] if hosts else '?'}:{probe.server_port}"


def _known_revisions() -> tuple[str, set[str]]:
    script = ScriptDirectory(str(migrations.PROJECT_ROOT / "alembic"))
    head = script.get_current_head() or "?"
    return head, {rev.revision for rev in script.walk_revisions()}


def _schema_reports(settings: Settings, checks: list[_NodeCheck]) -> list[SchemaReport]:
    try:
        head, known = _known_revisions()
    except Exception as exc:  # no migration scripts (an installed wheel): say so
        head, known = "?", set()
        log.warning("cannot read the migration scripts: %s", exc)
    reports: list[SchemaReport] = []
    for shard in settings.shard_names:
        # The primary's revision is the shard's; a replica's stands in while it is down.
        answered = sorted(
            (c for c in checks if c.node.shard == shard and c.probe.reachable),
            key=lambda c: c.node.role != "primary",
        )
        answered = [c for c in answered if c.revision_error is None]
        if not answered:
            errors = [c.probe.error or c.revision_error for c in checks if c.node.shard == shard]
            detail = next((e for e in errors if e), "no node answered")
            reports.append(SchemaReport(shard, None, head, "unreachable", detail))
            continue
        revision = answered[0].revision
        state: SchemaState
        if not known:
            state = "unknown"
        elif revision == head:
            state = "ok"
        elif revision is None or revision in known:
            state = "behind"
        else:
            state = "ahead"
        reports.append(SchemaReport(shard, revision, head, state))
    return reports


def _problems(
    nodes: list[NodeReport],
    schema: list[SchemaReport],
    mongo: dict[str, Any],
    stats_error: str | None,
) -> list[str]:
    problems: list[str] = []
    for n in nodes:
        where = f"{n.shard}/{n.role} {n.address}"
        if not n.reachable:
            problems.append(f"{where} is down: {n.error}")
        elif n.role == "primary" and n.in_recovery:
            problems.append(f"{where} is in recovery (a standby where a primary belongs)")
        elif n.role == "replica" and n.in_recovery is False:
            problems.append(f"{where} is not in recovery (promoted or detached)")
        elif n.degraded:
            problems.append(
                f"{where} is degraded: replay paused, stalled or too far behind "
                f"({n.replay_lag_bytes} bytes, {n.replay_lag_seconds or 0:.1f} s; readers skip it)"
            )
        elif n.error:
            problems.append(f"{where}: {n.error}")
    for s in schema:
        if s.state != "ok":
            problems.append(
                f"shard {s.shard} schema is {s.state} (revision {s.revision}, head {s.head})"
            )
    if not mongo.get("reachable"):
        problems.append(f"content store unreachable: {mongo.get('error')}")
    if stats_error:
        problems.append(f"platform statistics unavailable: {stats_error}")
    return problems


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars from pandas
        return _jsonable(value.item())
    return value


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__
