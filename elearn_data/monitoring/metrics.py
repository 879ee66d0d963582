"""Prometheus metrics of one ``connect()`` object: ``db.metrics()`` and ``elearn metrics``.

Two kinds of figures, in one registry per :class:`~elearn_data.database.Database`
(never the process-global registry: two objects in one process do not mix):

* **counted as they happen**, in this process: every public API call's
  latency (``elearn_api_call_seconds{method="users.register"}``) and errors
  by class (``elearn_api_errors_total``), the time to check a connection out of
  a pool (``elearn_pool_checkout_seconds``: waits show in its tail), and the
  units of work by how many shards they touched
  (``elearn_units_of_work_total{kind="single_shard"|"multi_shard"}``);
* **read at scrape time** from the databases, with short timeouts (a down node
  is ``elearn_node_up 0``, never a failed scrape): pool occupancy, replica lag
  in bytes and seconds, in-doubt two-phase transactions and the age of the
  oldest, and the outbox backlog.

``elearn metrics --serve PORT`` serves them on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.errors import InvalidInput
from elearn_data.sharding.twophase import GID_PREFIX

if TYPE_CHECKING:
    from elearn_data.sharding.unit_of_work import Cluster

# The public parts of a Database whose calls are timed (attribute names).
SERVICES = (
    "users",
    "catalog",
    "enrollments",
    "reviews",
    "payments",
    "content",
    "preferences",
    "analytics",
    "assessments",
    "gamification",
)
SCRAPE_TIMEOUT_S = 2.0
MAX_PORT = 32767  # servers we start stay below the ephemeral port range

_IN_DOUBT = text(
    "SELECT count(*), coalesce(max(extract(epoch FROM now() - prepared)), 0) "
    "FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE :prefix"
)
_OUTBOX = text("SELECT count(*) FROM content_outbox WHERE processed_at IS NULL")


class Instruments:
    """What the hot paths record (cheap: one histogram observation per event)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self.api_seconds = Histogram(
            "elearn_api_call_seconds",
            "Latency of public API calls",
            ["method"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.api_errors = Counter(
            "elearn_api_errors",
            "Public API calls that raised, by error class",
            ["method", "error"],
            registry=registry,
        )
        self.checkout_seconds = Histogram(
            "elearn_pool_checkout_seconds",
            "Time to get a connection from a node's pool (waits show in the tail)",
            ["shard", "role"],
            registry=registry,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
        )
        self.units = Counter(
            "elearn_units_of_work",
            "Units of work by the number of shards they touched",
            ["role", "kind"],
            registry=registry,
        )

        # Labelled series, made on first use and kept: ``labels()`` validates and
        # looks its arguments up on every call, a cost the per-call path need not pay.
        self._unit_series: dict[tuple[str, int], Any] = {}
        self._checkout_series: dict[tuple[str, str], Any] = {}

    def unit_closed(self, role: str, shards: int) -> None:
        key = (role, min(shards, 2))
        series = self._unit_series.get(key)
        if series is None:
            kind = "none" if shards == 0 else "single_shard" if shards == 1 else "multi_shard"
            series = self._unit_series[key] = self.units.labels(role, kind)
        series.inc()

    def checked_out(self, shard: str, role: str, seconds: float) -> None:
        key = (shard, role)
        series = self._checkout_series.get(key)
        if series is None:
            series = self._checkout_series[key] = self.checkout_seconds.labels(shard, role)
        series.observe(seconds)


class Observed(Protocol):
    """What the metrics read of a ``connect()`` object: its cluster (engines, instruments).

    The services named in ``SERVICES`` are found as its attributes. A protocol,
    not the Database class: units of work import this module for their
    instruments, and nothing below the facade imports the facade.
    """

    @property
    def cluster(self) -> Cluster: ...


class _Live(Collector):
    """Figures read from the databases when Prometheus scrapes."""

    def __init__(self, db: Observed) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        engines = self._db.cluster.engines
        pool = GaugeMetricFamily(
            "elearn_pool_connections",
            "Pooled connections by state",
            labels=["shard", "role", "pool", "state"],
        )
        size = GaugeMetricFamily("elearn_pool_size", "Pool size", labels=["shard", "role", "pool"])
        for stats in engines.pool_stats():
            which = [stats.shard, stats.role, stats.pool]
            size.add_metric(which, stats.size)
            pool.add_metric([*which, "checked_out"], stats.checked_out)
            pool.add_metric([*which, "checked_in"], stats.checked_in)
            pool.add_metric([*which, "overflow"], stats.overflow)
        yield size
        yield pool

        up = GaugeMetricFamily(
            "elearn_node_up", "1 if the node answered", labels=["shard", "role", "node"]
        )
        lag_bytes = GaugeMetricFamily(
            "elearn_replica_lag_bytes",
            "WAL a replica has not replayed yet",
            labels=["shard", "node"],
        )
        lag_seconds = GaugeMetricFamily(
            "elearn_replica_lag_seconds",
            "Age of the last transaction a replica replayed",
            labels=["shard", "node"],
        )
        nodes = list(engines.nodes())
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as workers:
            probes = list(workers.map(lambda n: engines.probe(n, timeout=SCRAPE_TIMEOUT_S), nodes))
        primary_lsn = {
            n.shard: p.lsn for n, p in zip(nodes, probes, strict=True) if n.role == "primary"
        }
        for node, probe in zip(nodes, probes, strict=True):
            up.add_metric([node.shard, node.role, node.address], 1 if probe.reachable else 0)
            if node.role == "replica" and probe.reachable:
                top = primary_lsn.get(node.shard)
                if top is not None and probe.lsn is not None:
                    lag_bytes.add_metric([node.shard, node.address], max(0, top - probe.lsn))
                if probe.replay_lag_seconds is not None:
                    lag_seconds.add_metric([node.shard, node.address], probe.replay_lag_seconds)
        yield up
        yield lag_bytes
        yield lag_seconds

        in_doubt = GaugeMetricFamily(
            "elearn_twophase_in_doubt", "Prepared two-phase transactions of ours", labels=["shard"]
        )
        oldest = GaugeMetricFamily(
            "elearn_twophase_oldest_prepared_seconds",
            "Age of the oldest prepared two-phase transaction",
            labels=["shard"],
        )
        outbox = GaugeMetricFamily(
            "elearn_outbox_pending", "Content-store work not yet applied", labels=["shard"]
        )
        for shard in engines.shards:
            try:
                with engines.primary(shard).engine.connect() as conn:
                    count, age = conn.execute(_IN_DOUBT, {"prefix": f"{GID_PREFIX}:%"}).one()
                    pending = conn.execute(_OUTBOX).scalar_one()
                    conn.rollback()
            except SQLAlchemyError:
                continue  # elearn_node_up says why
            in_doubt.add_metric([shard], int(count))
            oldest.add_metric([shard], float(age))
            outbox.add_metric([shard], int(pending))
        yield in_doubt
        yield oldest
        yield outbox


class Metrics:
    """The registry of one Database, with its API calls instrumented."""

    def __init__(self, db: Observed) -> None:
        self.instruments = db.cluster.instruments
        self.registry = self.instruments.registry
        self.registry.register(_Live(db))
        for name in SERVICES:
            service = getattr(db, name, None)
            if service is not None:
                _instrument(service, name, self.instruments)

    def render(self) -> str:
        """Return every metric in Prometheus's text format."""
        return generate_latest(self.registry).decode("utf-8")

    def serve(self, port: int, *, host: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
        """Serve ``/metrics`` on ``host:port`` in a background thread (127.0.0.1 only).

        Raises:
            InvalidInput: another host, or a port outside 1..32767.
        """
        from prometheus_client import start_http_server  # noqa: PLC0415

        if host not in ("127.0.0.1", "localhost"):
            raise InvalidInput(f"metrics are served on 127.0.0.1 only, not {host!r}")
        if not 0 < port <= MAX_PORT:
            raise InvalidInput(f"port must be between 1 and {MAX_PORT}: {port}")
        server, thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server, thread


def _instrument(service: object, prefix: str, instruments: Instruments) -> None:
    """Wrap every public method of ``service`` with a latency histogram and an error counter."""
    for attr, _member in inspect.getmembers(type(service), inspect.isfunction):
        if attr.startswith("_"):
            continue
        bound = getattr(service, attr)
        setattr(service, attr, _timed(bound, f"{prefix}.{attr}", instruments))


def _timed(fn: Callable[..., Any], method: str, instruments: Instruments) -> Callable[..., Any]:
    # The labelled series is made at the first call, so a scrape lists only the
    # methods this process has used.
    series: list[Any] = []
    errors = instruments.api_errors

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            errors.labels(method, type(exc).__name__).inc()
            raise
        finally:
            if not series:
                series.append(instruments.api_seconds.labels(method))
            series[0].observe(time.perf_counter() - started)

    return timed
