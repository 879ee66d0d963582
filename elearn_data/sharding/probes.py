"""Probing one PostgreSQL node: is it up, is it in recovery, where is its WAL.

One query answers all of it (:data:`PROBE_SQL`), on a connection made outside
any pool, and :func:`probe` never raises for a node that is down or refuses
us: the answer says so. Every place that asks these questions calls it -- the
engine map (:meth:`~elearn_data.sharding.engines.EngineMap.probe`, as the
application role), the health report (:mod:`elearn_data.health`) and the
embedded cluster's status, promotion and readiness checks
(:mod:`elearn_data.cluster`, as the cluster superuser) -- and replication lag
in bytes is computed from two probes by :func:`replay_lag_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2

# A primary reports its current WAL position, a standby the position it has
# replayed (both as bytes since 0/0). Only a standby has a replay age and a
# replay that can be paused (the functions raise on a primary: CASE keeps them
# from running there).
PROBE_SQL = (
    "SELECT pg_is_in_recovery(), inet_server_port(),"
    " pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery()"
    "   THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0'),"
    " CASE WHEN pg_is_in_recovery() THEN"
    "   extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,"
    " CASE WHEN pg_is_in_recovery() THEN"
    "   pg_is_wal_replay_paused() AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() END"
)


@dataclass(frozen=True)
class NodeProbe:
    """Result of probing one node (never raises for a down node)."""

    reachable: bool
    in_recovery: bool | None = None
    lsn: int | None = None  # current WAL LSN (primary) or replay LSN (replica), as bytes
    replay_lag_seconds: float | None = None
    server_port: int | None = None
    error: str | None = None
    # A standby whose replay is paused while received WAL waits (never True on a primary).
    replay_paused_with_wal_waiting: bool = False

    @property
    def writable(self) -> bool:
        """True for a reachable node out of recovery (a primary)."""
        return self.reachable and self.in_recovery is False

    @classmethod
    def down(cls, error: BaseException | str) -> NodeProbe:
        """Return the probe of a node that did not answer, with the first line of why."""
        return cls(reachable=False, error=error if isinstance(error, str) else first_line(error))


def probe_connection(conn: Any) -> NodeProbe:
    """Probe the node behind an open psycopg2 connection (raises psycopg2.Error)."""
    with conn.cursor() as cur:
        cur.execute(PROBE_SQL)
        row = cur.fetchone()
    assert row is not None
    return NodeProbe(
        reachable=True,
        in_recovery=bool(row[0]),
        server_port=row[1],
        lsn=int(row[2]) if row[2] is not None else None,
        replay_lag_seconds=float(row[3]) if row[3] is not None else None,
        replay_paused_with_wal_waiting=bool(row[4]),
    )


def probe(
    connect: Callable[[], Any], then: Callable[[Any, NodeProbe], None] | None = None
) -> NodeProbe:
    """Connect with ``connect``, probe the node, close; never raises for a database error.

    Args:
        connect: returns a new psycopg2 connection to the node (outside any pool).
        then: runs further queries on the same connection once the node answered
            (e.g. the cluster's replication states of a primary); a database
            error there reports the node as unreachable, like a failed probe.
    """
    try:
        conn = connect()
    except psycopg2.Error as exc:
        return NodeProbe.down(exc)
    try:
        conn.autocommit = True
        result = probe_connection(conn)
        if then is not None:
            then(conn, result)
        return result
    except psycopg2.Error as exc:
        return NodeProbe.down(exc)
    finally:
        conn.close()


def replay_lag_bytes(primary: NodeProbe, replica: NodeProbe) -> int | None:
    """Return how many bytes of the primary's WAL ``replica`` has not replayed (None: unknown).

    Known when both answered, the primary as a primary: never negative (the
    replica's probe may run after the primary's).
    """
    if not (primary.writable and replica.reachable):
        return None
    if primary.lsn is None or replica.lsn is None:
        return None
    return max(0, primary.lsn - replica.lsn)


def first_line(exc: BaseException) -> str:
    """Return the first line of an error's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
