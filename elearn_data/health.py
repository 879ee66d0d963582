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

``ok`` is False when a node is unreachable, degraded or in the wrong role, a
shard has fewer replicas in service than it is configured with (degraded: e.g.
after a failover, until the fenced old primary is rebuilt), a shard's schema is
not at the code's head revision, the content store is unreachable, or the
statistics could not be computed; ``problems`` says which. Every configured
node is a row, the ones configured out of service
(``ShardSettings.out_of_service``) included.

For shards run by Patroni (``Settings.patroni_api``, written by ``elearn
cluster up --ha``) the report adds Patroni's view (``patroni``: leader,
timeline, synchronous standby, every member's state and lag) and gives each
node row the role Patroni assigns to the server behind it (``patroni_role``).
There every node is listed as a replica candidate, so the candidate that is
the leader at the moment refuses a standby connection: that is expected and
no problem. A shard without a running leader, a replica member that is not
streaming, or (synchronous mode) no synchronous standby is one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError

from elearn_data import migrations
from elearn_data.analytics import Analytics
from elearn_data.cluster.ha import ShardView, cluster_view
from elearn_data.config import Settings, url_hosts
from elearn_data.sharding.consistency import ReplicaSelector
from elearn_data.sharding.engines import Node, build_engine
from elearn_data.sharding.probes import NodeProbe, replay_lag_bytes
from elearn_data.sharding.probes import first_line as _first_line

if TYPE_CHECKING:
    from elearn_data.database import Database

log = logging.getLogger(__name__)

R = TypeVar("R")

SchemaState = Literal["ok", "behind", "ahead", "unreachable", "unknown"]

DEFAULT_TIMEOUT_S = 3.0


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
    patroni_role: str | None = None  # Patroni's role for the server behind the row (HA)
    # False for a node the settings list as out of service (fenced, awaiting a rebuild).
    in_service: bool = True


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
    patroni: tuple[dict[str, Any], ...] = ()  # Patroni's view of each HA shard
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
            "patroni": [_jsonable(p) for p in self.patroni],
            "checked_at": self.checked_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class _NodeCheck:
    node: Node
    probe: NodeProbe
    revision: str | None = None
    revision_error: str | None = None
    in_service: bool = True


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
    fenced = _out_of_service_nodes(quick)
    nodes += fenced
    stats_budget = stats_timeout_s if stats_timeout_s is not None else settings.analytics_timeout_s

    pool = ThreadPoolExecutor(max_workers=len(nodes) + 2, thread_name_prefix="elearn-health")
    try:
        node_futures = [pool.submit(_check_node, db, quick, node, timeout_s) for node in nodes]
        mongo_future = pool.submit(_mongo_status, db)
        patroni_futures = {
            shard: pool.submit(cluster_view, shard, list(urls), timeout=timeout_s)
            for shard, urls in settings.patroni_api.items()
        }
        stats_future = pool.submit(_platform_stats, db, stats_budget)
        # Probes connect with a whole-second timeout (libpq's unit): allow for it.
        pending: list[Future[Any]] = [*node_futures, mongo_future, *patroni_futures.values()]
        wait(pending, timeout=max(1.0, timeout_s) + 1.0)
        checks = [
            _result(future, partial(_late, node, timeout_s))
            for node, future in zip(nodes, node_futures, strict=True)
        ]
        checks = [replace(c, in_service=c.node not in fenced) for c in checks]
        mongo = _result(
            mongo_future,
            lambda: {"reachable": False, "error": f"no answer within {timeout_s:g} s"},
        )
        views = {
            shard: _result(
                future, partial(ShardView, shard, (), f"no answer within {timeout_s:g} s")
            )
            for shard, future in patroni_futures.items()
        }
        wait([stats_future], timeout=stats_budget + 1.0)
        stats, by_shard, stats_error = _result(
            stats_future, lambda: (None, None, f"no answer within {stats_budget:g} s")
        )
    finally:
        # A stuck probe is not waited for; its own timeouts end it.
        pool.shutdown(wait=False, cancel_futures=True)

    for node in fenced:
        node.engine.dispose()
    node_reports = _with_patroni_roles(_node_reports(checks, settings, db.cluster.selector), views)
    schema = _schema_reports(settings, [c for c in checks if c.in_service])
    pools = tuple(asdict(p) for p in engines.pool_stats())
    problems = _problems(
        node_reports, schema, mongo, stats_error, views=views, durability=settings.durability
    )
    problems += _degraded(settings, node_reports)
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
        patroni=tuple(v.to_dict() for v in views.values()),
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


def _out_of_service_nodes(quick: Settings) -> list[Node]:
    """Nodes the settings list as out of service, probed like the others (never pooled)."""
    nodes: list[Node] = []
    for shard in quick.shard_names:
        for url in quick.shards[shard].out_of_service:
            engine = build_engine(
                url,
                settings=quick,
                password=quick.shard_password(shard),
                application="elearn-health",
                pooled=False,
            )
            nodes.append(Node(shard=shard, role="replica", url=url, engine=engine))
    return nodes


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
            revision = migrations.current_revision(conn)
        return _NodeCheck(node, probe, revision=revision)
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
    primaries = {c.node.shard: c.probe for c in checks if c.node.role == "primary"}
    reports: list[NodeReport] = []
    for check in checks:
        node, probe = check.node, check.probe
        lag_bytes: int | None = None
        lag_seconds: float | None = None
        if node.role == "replica" and probe.reachable and probe.lsn is not None:
            primary = primaries.get(node.shard)
            if primary is not None:
                lag_bytes = replay_lag_bytes(primary, probe)
            lag_seconds = 0.0 if lag_bytes == 0 else probe.replay_lag_seconds
        degraded = node.role == "replica" and (
            probe.replay_paused_with_wal_waiting
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
                in_service=check.in_service,
            )
        )
    return reports


def _member_at(view: ShardView | None, address: str | None) -> str | None:
    """Patroni's role of the member serving ``host:port`` (None when not known)."""
    if view is None or address is None:
        return None
    for member in view.members:
        if f"{member.host}:{member.port}" == address:
            return member.role
    return None


def _with_patroni_roles(reports: list[NodeReport], views: dict[str, ShardView]) -> list[NodeReport]:
    if not views:
        return reports
    out = []
    for r in reports:
        view = views.get(r.shard)
        # The server that answered, else the row's own (single) address.
        role = _member_at(view, r.server) or (
            _member_at(view, r.address) if "," not in r.address else None
        )
        out.append(replace(r, patroni_role=role))
    return out


def _server(node: Node, probe: NodeProbe) -> str | None:
    if not probe.reachable or probe.server_port is None:
        return None
    hosts = [h for h, port in url_hosts(node.url) if port == probe.server_port]
    return f"{hosts[0] if hosts else '?'}:{probe.server_port}"


def _schema_reports(settings: Settings, checks: list[_NodeCheck]) -> list[SchemaReport]:
    code: migrations.CodeRevisions | None
    try:
        code = migrations.code_revisions()
    except Exception as exc:  # no migration scripts (an installed wheel): say so
        code = None
        log.warning("cannot read the migration scripts: %s", exc)
    head = code.head if code is not None else "?"
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
        state: SchemaState = "unknown" if code is None else code.state_of(revision)
        reports.append(SchemaReport(shard, revision, head, state))
    return reports


def _problems(
    nodes: list[NodeReport],
    schema: list[SchemaReport],
    mongo: dict[str, Any],
    stats_error: str | None,
    *,
    views: dict[str, ShardView] | None = None,
    durability: str = "async",
) -> list[str]:
    problems: list[str] = []
    views = views or {}
    for n in nodes:
        where = f"{n.shard}/{n.role} {n.address}"
        if n.role == "replica" and n.patroni_role == "leader" and not n.reachable:
            continue  # the candidate that leads now refuses a standby connection
        if not n.in_service:
            state = "running" if n.reachable else "down"
            problems.append(
                f"{where} is out of service ({state}; fenced by a failover): "
                "`elearn cluster up` rebuilds it as a replica"
            )
        elif not n.reachable:
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
    for view in views.values():
        problems.extend(_patroni_problems(view, durability))
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


def _patroni_problems(view: ShardView, durability: str) -> list[str]:
    where = f"shard {view.shard} (Patroni)"
    if view.error:
        return [f"{where} does not answer: {view.error}"]
    leader = view.leader
    if leader is None or leader.state != "running":
        return [f"{where} has no running leader"]
    problems = [
        f"{where}: member {m.name} is {m.state}"
        for m in view.members
        if m is not leader and m.state != "streaming"
    ]
    if durability == "sync" and len(view.members) > 1 and not view.sync_standbys:
        problems.append(f"{where}: no synchronous standby (commits wait)")
    return problems


def _degraded(settings: Settings, nodes: list[NodeReport]) -> list[str]:
    """A shard with fewer replicas in service than configured is degraded."""
    problems: list[str] = []
    for shard in settings.shard_names:
        if shard in settings.patroni_api:
            continue  # Patroni's view decides (every node is listed as a replica there)
        cfg = settings.shards[shard]
        configured = len(cfg.replicas) + len(cfg.out_of_service)
        serving = sum(
            1
            for n in nodes
            if n.shard == shard
            and n.role == "replica"
            and n.in_service
            and n.reachable
            and n.in_recovery is True
        )
        if serving < configured:
            problems.append(
                f"shard {shard} is degraded: {serving} of {configured} configured "
                f"replica(s) in service"
            )
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
