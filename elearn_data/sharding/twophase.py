"""Two-phase commit across shards with a durable decision record (the Citus protocol).

``ShardedSession(twophase=True)`` prepares and commits, but keeps no record of
its decision, so a crash between PREPARE and COMMIT leaves transactions nobody
can resolve. Here:

1. One participant is the coordinator (the unit of work's home shard).
2. Every other participant that wrote anything runs ``PREPARE TRANSACTION gid``;
   the gid names the coordinator shard: ``elearn:<coordinator>:<hex>``.
3. The coordinator inserts ``(gid, committed=true)`` into ``twophase_decisions``
   in its own transaction and commits. That commit is the decision. It first
   takes the decision fence (a shared advisory lock) that a cross-shard restore
   point holds exclusively for the instant it takes.
4. ``COMMIT PREPARED gid`` on the other participants. A failure here is logged,
   not raised: the decision stands and recovery finishes the job.

Recovery (:func:`recover`, ``elearn recover``, and on start-up) looks at every
prepared transaction of ours older than a grace period and settles it by the
decision row on its coordinator. It *claims* an abort by inserting
``(gid, committed=false)`` with ``ON CONFLICT DO NOTHING``: the primary key
makes the claim and a late coordinator's decision mutually exclusive (the
insert waits for an in-flight coordinator, and a coordinator that arrives after
the claim fails on the key), so recovery is safe even with a zero grace period.

Lock order: participants are written in the caller's order and prepared in
sorted shard order; multi-shard writers in this package touch shards in sorted
order (catalog) or seat-ledger-first (enrollment), and ``lock_timeout`` bounds
any wait PostgreSQL cannot see as a deadlock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection, TwoPhaseTransaction, text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.sharding.engines import EngineMap

log = logging.getLogger(__name__)

GID_PREFIX = "elearn"

_HAS_WRITES = text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
# Taken in shared mode by every decision commit; `elearn backup restore-point`
# takes it exclusively on every coordinator while it creates the restore points,
# so no decision lands between two shards' points (Citus's
# citus_create_restore_point). Single-shard commits never take it.
DECISION_FENCE_KEY = 0x656C6561726E3270  # "elearn2p"
_DECISION_FENCE = text("SELECT pg_advisory_xact_lock_shared(:key)")
_DECIDE = text("INSERT INTO twophase_decisions (gid, committed) VALUES (:gid, true)")
_CLAIM_ABORT = text(
    "INSERT INTO twophase_decisions (gid, committed) VALUES (:gid, false) "
    "ON CONFLICT (gid) DO NOTHING"
)
_DECISION = text("SELECT committed FROM twophase_decisions WHERE gid = :gid")
_IN_DOUBT = text(
    "SELECT gid FROM pg_prepared_xacts "
    "WHERE database = current_database() AND gid LIKE :prefix "
    "AND prepared < now() - make_interval(secs => :grace) ORDER BY prepared"
)
_ALL_OURS = text(
    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE :prefix"
)
_FORGET = text(
    "DELETE FROM twophase_decisions WHERE created_at < now() - make_interval(secs => :age) "
    "AND NOT (gid = ANY(:keep))"
)


# Fault-injection points for crash drills (tests set these; None in production):
# called after every participant is PREPAREd, and after the coordinator's commit.
after_prepare: Callable[[str], None] | None = None
after_decision: Callable[[str], None] | None = None


def new_gid(coordinator: str) -> str:
    """Return a fresh global transaction id naming its coordinator shard."""
    return f"{GID_PREFIX}:{coordinator}:{secrets.token_hex(12)}"


def coordinator_of(gid: str) -> str | None:
    """Return the coordinator shard named in one of our gids (None for foreign gids)."""
    parts = gid.split(":")
    if len(parts) != 3 or parts[0] != GID_PREFIX:
        return None
    return parts[1]


@dataclass
class Participant:
    """One shard's connection and its open two-phase-capable transaction."""

    shard: str
    connection: Connection
    transaction: TwoPhaseTransaction


def commit_all(participants: Mapping[str, Participant], coordinator: str, gid: str) -> list[str]:
    """Commit a unit of work that touched several shards atomically.

    Returns the shards whose changes are committed now (a participant whose
    COMMIT PREPARED failed is left to recovery and is not listed).

    Raises:
        SQLAlchemyError: before the decision; every participant is rolled back.
    """
    writers: list[str] = []
    for shard in sorted(participants):
        if shard == coordinator:
            continue
        part = participants[shard]
        if part.connection.execute(_HAS_WRITES).scalar_one():
            writers.append(shard)
        else:
            part.transaction.commit()  # read-only here: nothing to prepare
    coord = participants[coordinator]
    if not writers:
        coord.transaction.commit()
        return [coordinator]

    prepared: list[str] = []
    try:
        for shard in writers:
            participants[shard].transaction.prepare()
            prepared.append(shard)
        if after_prepare is not None:
            after_prepare(gid)
        coord.connection.execute(_DECISION_FENCE, {"key": DECISION_FENCE_KEY})
        coord.connection.execute(_DECIDE, {"gid": gid})
        coord.transaction.commit()  # the decision point
    except BaseException:
        _roll_back(participants, coord, prepared, writers)
        raise
    if after_decision is not None:
        after_decision(gid)

    committed = [coordinator]
    for shard in writers:
        try:
            participants[shard].transaction.commit()
            committed.append(shard)
        except SQLAlchemyError as exc:
            log.error(
                "COMMIT PREPARED %s on shard %s failed; recovery will commit it: %s",
                gid,
                shard,
                exc,
            )
    return committed


def _roll_back(
    participants: Mapping[str, Participant],
    coord: Participant,
    prepared: list[str],
    writers: list[str],
) -> None:
    for part in [coord, *(participants[s] for s in writers)]:
        try:
            if part.transaction.is_active:
                part.transaction.rollback()
        except SQLAlchemyError as exc:
            state = "prepared" if part.shard in prepared else "open"
            log.warning(
                "rollback of %s transaction on shard %s failed (recovery settles it): %s",
                state,
                part.shard,
                exc,
            )


@dataclass
class RecoveryReport:
    """What :func:`recover` did."""

    committed: list[tuple[str, str]] = field(default_factory=list)  # (shard, gid)
    rolled_back: list[tuple[str, str]] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    forgotten_decisions: int = 0

    @property
    def resolved(self) -> int:
        return len(self.committed) + len(self.rolled_back)


def recover(
    engines: EngineMap,
    *,
    grace: timedelta = timedelta(seconds=30),
    forget_after: timedelta = timedelta(hours=1),
) -> RecoveryReport:
    """Settle every in-doubt prepared transaction of ours by its decision record.

    Decision rows older than ``forget_after`` are deleted once no shard holds a
    prepared transaction with their gid (only when every shard was reachable).
    """
    report = RecoveryReport()
    prefix = f"{GID_PREFIX}:%"
    still_prepared: set[str] = set()
    for shard in engines.shards:
        try:
            with engines.primary(shard).engine.connect() as raw:
                conn = raw.execution_options(isolation_level="AUTOCOMMIT")
                in_doubt = list(
                    conn.execute(
                        _IN_DOUBT, {"prefix": prefix, "grace": grace.total_seconds()}
                    ).scalars()
                )
                for gid in in_doubt:
                    _settle(engines, conn, shard, gid, report)
                still_prepared.update(conn.execute(_ALL_OURS, {"prefix": prefix}).scalars())
        except SQLAlchemyError as exc:
            log.warning("recovery skipped shard %s: %s", shard, exc)
            report.unreachable.append(shard)
    if not report.unreachable:
        for shard in engines.shards:
            with engines.primary(shard).engine.begin() as conn:
                result = conn.execute(
                    _FORGET,
                    {"age": forget_after.total_seconds(), "keep": sorted(still_prepared)},
                )
                report.forgotten_decisions += result.rowcount
    return report


def _settle(
    engines: EngineMap, conn: Connection, shard: str, gid: str, report: RecoveryReport
) -> None:
    coordinator = coordinator_of(gid)
    if coordinator is None or coordinator not in engines.shards:
        log.error(
            "prepared transaction %s on %s names no known coordinator; left alone", gid, shard
        )
        return
    with engines.primary(coordinator).engine.begin() as coord:
        coord.execute(_CLAIM_ABORT, {"gid": gid})
        committed = bool(coord.execute(_DECISION, {"gid": gid}).scalar_one())
    # COMMIT/ROLLBACK PREPARED take the gid as a literal, never as a parameter;
    # the gid comes from pg_prepared_xacts and is bound by the driver here.
    verb = "COMMIT PREPARED" if committed else "ROLLBACK PREPARED"
    conn.exec_driver_sql(f"{verb} %(gid)s", {"gid": gid})
    (report.committed if committed else report.rolled_back).append((shard, gid))
    log.warning("recovered in-doubt transaction %s on shard %s: %s", gid, shard, verb)
