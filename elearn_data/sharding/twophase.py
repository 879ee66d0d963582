"""Two-phase commit across shards with a durable decision record (the Citus protocol).

``ShardedSession(twophase=True)`` prepares and commits, but keeps no record of
its decision, so a crash between PREPARE and COMMIT leaves transactions nobody
can resolve. Here:

1. One participant is the coordinator: the shard the unit of work was built
   for, which the gid names (``elearn:<coordinator>:<hex>``). The gid
   **always** names the shard that holds the decision; a unit of work that
   never touched its own shard opens it at commit time just to hold the
   decision (every shard's transaction is given the unit of work's gid when
   it begins, and the gid names the unit's own shard). Recovery trusts the gid.
2. Every other participant that wrote anything runs ``PREPARE TRANSACTION gid``.
   Whether it wrote is tracked on the client (:attr:`Participant.wrote`): a
   participant the unit of work knows it wrote on (an INSERT/UPDATE/DELETE, an
   ORM flush, a statement marked as writing) is prepared without asking; only
   one whose writes are unknown is asked (``pg_current_xact_id_if_assigned()``)
   and, when it has no transaction id, committed plainly instead (a read-only
   participant is never left prepared). The error is only ever in the safe
   direction: a participant the client did not see write is asked, never
   assumed read-only; one it marked as written but that wrote nothing is
   prepared (legal, merely a little slower). A participant whose transaction
   libpq reports failed is always asked, so the server's error aborts the
   commit before anything is decided (PREPARE of a failed transaction would
   silently roll it back).
3. The coordinator inserts ``(gid, committed=true)`` into ``twophase_decisions``
   in its own transaction and commits. That commit is the decision. It first
   takes the decision fence (a shared advisory lock) that a cross-shard restore
   point holds exclusively for the instant it takes. The fence, the insert,
   the COMMIT and the causal token's position are sent as one query string
   (one round trip, run in that order, stopping at the first error): a
   failure that leaves the transaction aborted on the server (libpq reports
   it with the reply) came before the COMMIT, so nothing is decided.
   If the COMMIT itself fails (a cut connection, a shutdown while a synchronous
   standby is awaited) the outcome is **unknown, not an abort**: the decision
   may be durable already. The participants stay prepared and the outcome is
   read back from the decision record on fresh connections (claiming an abort
   exactly as recovery does, so a decision still in flight is waited for);
   :class:`~elearn_data.errors.OutcomeUnknown` is raised only when the record
   cannot be read within ``Settings.twophase_resolve_s``.
4. ``COMMIT PREPARED gid`` on the other participants. A participant whose
   connection fails here is finished by the committing call itself on a fresh
   connection (following a promotion), so the call returns only once every
   shard shows the writes (read-your-writes);
   :class:`~elearn_data.errors.CommitPending` is raised when a participant
   stays unreachable for ``Settings.twophase_resolve_s`` (recovery then
   finishes it: the decision stands).

Recovery (:func:`recover`, ``elearn recover``, and on start-up) looks at every
prepared transaction of ours older than a grace period and settles it by the
decision row on its coordinator. It *claims* an abort by inserting
``(gid, committed=false)`` with ``ON CONFLICT DO NOTHING``: the primary key
makes the claim and a late coordinator's decision mutually exclusive (the
insert waits for an in-flight coordinator, and a coordinator that arrives after
the claim fails on the key, which its caller sees as
:class:`~elearn_data.errors.AbortedByRecovery`, a retryable conflict), so
recovery is safe even with a zero grace period.

A prepared participant is never rolled back once the decision may have been
sent: on any interruption after that point (``KeyboardInterrupt`` included)
its connection is invalidated instead -- the unit of work's rollback would run
``ROLLBACK PREPARED`` -- and recovery settles it by the record.

Lock order: participants are written in the caller's order and prepared in
sorted shard order; multi-shard writers in this package touch shards in sorted
order (catalog) or seat-ledger-first (enrollment), and ``lock_timeout`` bounds
any wait PostgreSQL cannot see as a deadlock.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from psycopg2.extensions import (
    TRANSACTION_STATUS_IDLE,
    TRANSACTION_STATUS_INERROR,
    TRANSACTION_STATUS_INTRANS,
)
from sqlalchemy import Connection, RootTransaction, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from elearn_data.errors import AbortedByRecovery, CommitPending, OutcomeUnknown
from elearn_data.retry import Backoff
from elearn_data.sharding.consistency import commit_and_position, current_lsn
from elearn_data.sharding.engines import BeginsFirst, EngineMap, end_pending_begin
from elearn_data.sharding.locks import advisory_lock

log = logging.getLogger(__name__)

GID_PREFIX = "elearn"

# Asked only of a participant whose writes the client does not know (Participant.wrote).
_HAS_WRITES = text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
# Taken in shared mode by every decision commit; `elearn backup restore-point`
# takes it exclusively on every coordinator while it creates the restore points,
# so no decision lands between two shards' points (Citus's
# citus_create_restore_point). Single-shard commits never take it.
DECISION_FENCE_KEY = 0x656C6561726E3270  # "elearn2p"
# One recoverer per shard at a time, across processes: a recovery pass settles a
# shard on the connection that holds this session-level advisory lock on its
# primary ("elearnrc"; sharding/locks.py), released when the shard is done. A
# background pass that finds it taken skips the shard (another process is
# recovering it); `elearn recover` waits for it.
RECOVERY_LOCK_KEY = 0x656C6561726E7263
# Decisions are written only through the owner's functions (revision 0005): the
# application role may read twophase_decisions but not change it directly.
# decide: INSERT (gid, true), failing on the key; claim: INSERT (gid, false) ON
# CONFLICT DO NOTHING.
# The fence and the decision in one round trip: a multi-statement string runs
# its statements in order and stops at the first error (the fence is held from
# before the insert until the decision commits, as with two round trips).
# The fence and the decision go first in the coordinator's COMMIT string
# (ServerTransaction.commit_after): one round trip for all three, run in order,
# stopping at the first error (so no COMMIT without its decision row).
_FENCE_AND_DECIDE = (
    "SELECT pg_advisory_xact_lock_shared(%(key)s); SELECT elearn_twophase_decide(%(gid)s); "
)
_CLAIM_ABORT = text("SELECT elearn_twophase_claim_abort(:gid)")
_DECISION = text("SELECT committed FROM twophase_decisions WHERE gid = :gid")
_IN_DOUBT = text(
    "SELECT gid FROM pg_prepared_xacts "
    "WHERE database = current_database() AND gid LIKE :prefix "
    "AND prepared < now() - make_interval(secs => :grace) ORDER BY prepared"
)
_ALL_OURS = text(
    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE :prefix"
)
# DELETE of decisions older than :age seconds whose gid is not in :keep; returns the count.
_FORGET = text("SELECT elearn_twophase_forget(:age, :keep)")
# SQLSTATEs: the decision row exists already (a recoverer claimed an abort), and
# COMMIT PREPARED of a gid that is no longer prepared (recovery finished it).
_UNIQUE_VIOLATION = "23505"
_UNDEFINED_OBJECT = "42704"
# Pauses between attempts on a fresh connection (a promotion takes seconds).
_BACKOFF = Backoff(first_s=0.05, max_s=1.0)

DEFAULT_RESOLVE_S = 30.0

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


# COMMIT PREPARED cannot share a query string with the position query: the
# server refuses it inside the implicit transaction block of a multi-statement
# query. The gid is bound by the driver as a literal (no parameter is allowed).
_COMMIT_PREPARED = "COMMIT PREPARED %(gid)s"


class ServerTransaction:
    """A writer's transaction on one shard, sent as SQL over an autocommit driver connection.

    psycopg2 outside autocommit begins a transaction by itself, in a round
    trip of its own before the first statement, and ends it with ``commit()``,
    which sends nothing but ``COMMIT``: a one-shard write was four round trips
    (``BEGIN``, the write, ``COMMIT``, the causal token's position). Here the
    driver is in autocommit (SQLAlchemy's ``isolation_level="AUTOCOMMIT"`` on
    the connection) and the transaction is the unit of work's: ``BEGIN`` goes
    with the first statement (:class:`BeginsFirst`), ``PREPARE TRANSACTION
    gid`` when the shard takes part in a two-phase commit, and a plain commit
    reads the position in its own round trip (``COMMIT; SELECT ...``,
    :func:`~elearn_data.sharding.consistency.commit_and_position`): two round
    trips for a one-shard write. ``COMMIT PREPARED``, which the server runs only
    as a query string of its own, is followed by the position query.
    SQLAlchemy's own transaction on the connection is begun and ended around it
    (the ORM session joins it) and sends nothing to an autocommit driver. A
    connection returned to its pool with this transaction still open on the
    server is rolled back by the engines' ``reset`` hook; one that is
    invalidated takes an open transaction with it and leaves a prepared one to
    recovery.

    ``begin_now``: send ``BEGIN`` at once (a caller that uses the driver
    connection directly, as the seeding bulk path does).
    """

    def __init__(self, connection: Connection, gid: str, *, begin_now: bool = False) -> None:
        self.connection = connection
        self.gid = gid
        self._outer: RootTransaction = connection.begin()
        self.prepared = False
        self._ended = False
        if begin_now:
            connection.exec_driver_sql("BEGIN")
        else:
            self._dbapi().cursor_factory = BeginsFirst

    @property
    def is_active(self) -> bool:
        """True until the transaction was committed or rolled back (a prepared one too).

        False once the connection was invalidated (:func:`_detach`): nothing is
        ever sent on it again, and a prepared transaction is left to recovery.
        """
        return not self._ended and not self.connection.invalidated

    def prepare(self) -> None:
        """``PREPARE TRANSACTION gid``: phase one; the server keeps it past this session."""
        self.connection.exec_driver_sql("PREPARE TRANSACTION %(gid)s", {"gid": self.gid})
        self.prepared = True

    def commit(self) -> int | None:
        """Commit (``COMMIT PREPARED`` once prepared); return the WAL position just after it.

        A plain commit and its position are one round trip: if it fails, the
        commit failed, or its outcome is unknown when the connection was lost
        (as for any ``COMMIT`` whose reply never came). A transaction that never
        began (no statement ran) only reads the position. After ``COMMIT
        PREPARED`` succeeded, a position query that fails returns None: the
        caller reads the position elsewhere.
        """
        conn = self.connection
        if not self.prepared:
            if self._dbapi().cursor_factory is BeginsFirst:
                self._dbapi().cursor_factory = None
                position = current_lsn(conn)
            else:
                position = commit_and_position(conn)
            self._end(committed=True)
            return position
        conn.exec_driver_sql(_COMMIT_PREPARED, {"gid": self.gid})
        self._end(committed=True)
        try:
            return current_lsn(conn)
        except SQLAlchemyError as exc:
            log.warning("committed %s; its WAL position could not be read: %s", self.gid, exc)
            return None

    def commit_after(self, statements: str, params: Mapping[str, Any]) -> int:
        """Run ``statements`` and commit, in one query string; return the position after it.

        The string stops at the first error: when one of ``statements`` fails,
        nothing was committed and :meth:`failed_before_commit` says so.
        """
        position = commit_and_position(self.connection, statements, params)
        self._end(committed=True)
        return position

    def failed_before_commit(self) -> bool:
        """True when the last query string failed inside the transaction (its COMMIT never ran).

        libpq reports the server's state with each reply: a transaction block
        that an error aborted. A connection that was lost cannot say (False).
        """
        return bool(self.server_status() == TRANSACTION_STATUS_INERROR)

    def rollback(self) -> None:
        """Roll back (``ROLLBACK PREPARED`` once prepared); nothing is sent for a transaction
        the server has not begun or has ended already (a failed COMMIT ended it)."""
        if self.prepared:
            self.connection.exec_driver_sql("ROLLBACK PREPARED %(gid)s", {"gid": self.gid})
        elif self._open_on_server():
            self.connection.exec_driver_sql("ROLLBACK")
        self._end(committed=False)

    def _dbapi(self) -> Any:
        return self.connection.connection.dbapi_connection

    def server_status(self) -> int | None:
        """libpq's transaction status from the server's last reply (no round trip).

        None when the connection was invalidated or cannot say.
        """
        if self.connection.invalidated:
            return None
        try:
            return int(self._dbapi().info.transaction_status)
        except (SQLAlchemyError, AttributeError):
            return None

    def _open_on_server(self) -> bool:
        return bool(self.server_status() != TRANSACTION_STATUS_IDLE)

    def _end(self, *, committed: bool) -> None:
        self._ended = True
        if not self.connection.invalidated:
            end_pending_begin(self._dbapi())
        if self._outer.is_active:  # SQLAlchemy's bookkeeping: nothing reaches the driver
            if committed:
                self._outer.commit()
            else:
                self._outer.rollback()


@dataclass
class Participant:
    """One shard's connection and its open transaction."""

    shard: str
    connection: Connection
    transaction: ServerTransaction
    # True once the client knows it wrote here: PREPAREd without asking the
    # server. False means "unknown", never "read-only": the server is asked.
    wrote: bool = False


def _prepare_without_asking(part: Participant) -> bool:
    """True when ``part`` is known to have written and libpq shows its transaction healthy.

    No round trip: libpq keeps the transaction status the server reported with
    its last reply. Any other status (a failed transaction, none at all) or a
    connection that cannot say sends the participant to the server's check,
    which raises for a failed transaction before anything is decided.
    """
    return part.wrote and bool(part.transaction.server_status() == TRANSACTION_STATUS_INTRANS)


@dataclass
class CommitResult:
    """What :func:`commit_all` committed.

    ``committed``: the shards committed (the coordinator first, then the
    writers); ``positions``: the WAL position of each whose commit returned
    it (read with the commit, or after finishing it on a fresh connection).
    A committed shard without a position (a decision whose COMMIT reported an
    error, then read back as committed) is read on a fresh connection by the
    caller; ``gid``: the gid used.
    """

    committed: list[str]
    positions: dict[str, int] = field(default_factory=dict)
    gid: str = ""


def _pgcode(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    return getattr(orig, "pgcode", None)


def _detach(part: Participant) -> None:
    """Drop a prepared participant's connection without rolling its transaction back.

    The unit of work's rollback would run ``ROLLBACK PREPARED``; an invalidated
    connection runs nothing (and is never used again), and the prepared
    transaction outlives it on the server until it is settled.
    """
    try:
        part.connection.invalidate()
    except SQLAlchemyError as exc:  # already gone: nothing left to drop
        log.debug("invalidating the connection of shard %s failed: %s", part.shard, exc)


def commit_all(
    participants: Mapping[str, Participant],
    coordinator: str,
    gid: str,
    *,
    engines: EngineMap | None = None,
    resolve_s: float = DEFAULT_RESOLVE_S,
) -> CommitResult:
    """Commit a unit of work that touched several shards atomically.

    ``engines`` lets the call settle an ambiguous decision and finish a failed
    COMMIT PREPARED on fresh connections; without it (tests of the bare
    protocol) those cases raise at once.

    Raises:
        SQLAlchemyError: before the decision; every participant is rolled back.
        AbortedByRecovery: a recoverer claimed the abort first; everything is rolled back.
        OutcomeUnknown: the decision's commit failed and its record could not be read.
        CommitPending: decided, but a participant could not be committed in time.
    """
    if coordinator_of(gid) != coordinator or coordinator not in participants:
        # Every participant's transaction was given the gid when it began, and
        # recovery looks for the decision on the shard the gid names.
        raise ValueError(f"gid {gid} does not name the participating coordinator {coordinator}")
    writers: list[str] = []
    for shard in sorted(participants):
        if shard == coordinator:
            continue
        part = participants[shard]
        if _prepare_without_asking(part) or part.connection.execute(_HAS_WRITES).scalar_one():
            writers.append(shard)
        else:
            part.transaction.commit()  # read-only here: nothing to prepare
    coord = participants[coordinator]
    if not writers:
        return CommitResult([coordinator], _known(coordinator, coord.transaction.commit()), gid=gid)

    prepared: list[str] = []
    positions: dict[str, int] = {}
    decision_sent = False
    try:
        for shard in writers:
            participants[shard].transaction.prepare()
            prepared.append(shard)
        if after_prepare is not None:
            after_prepare(gid)
        # No COMMIT was sent before this point: everything above is undecided.
        # The fence, the decision and the COMMIT (the decision point) go now.
        decision_sent = True
        try:
            positions[coordinator] = coord.transaction.commit_after(
                _FENCE_AND_DECIDE, {"key": DECISION_FENCE_KEY, "gid": gid}
            )
        except SQLAlchemyError as exc:
            if not coord.transaction.failed_before_commit():
                raise  # the COMMIT may have been applied: read the outcome below
            decision_sent = False  # the string stopped before its COMMIT
            if _pgcode(exc) == _UNIQUE_VIOLATION:
                # Our own decision row cannot exist yet: a recoverer claimed the abort.
                _roll_back(participants, coord, prepared, writers)
                raise AbortedByRecovery(gid) from exc
            raise
    except AbortedByRecovery:
        raise
    except Exception as exc:
        if not decision_sent:
            _roll_back(participants, coord, prepared, writers)
            raise
        # The COMMIT was sent: it may have been applied (and be durable) even
        # though it reported an error. Read the outcome back; never guess.
        _detach(coord)
        outcome = _read_outcome(engines, coordinator, gid, resolve_s)
        if outcome is None:
            for shard in prepared:
                _detach(participants[shard])
            raise OutcomeUnknown(gid, coordinator, _first_line(exc)) from exc
        committed, claimed_here = outcome
        if not committed:
            _roll_back(participants, coord, prepared, writers)
            if not claimed_here:
                raise AbortedByRecovery(gid) from exc
            raise
        log.warning("the decision of %s committed although its COMMIT reported: %s", gid, exc)
    except BaseException:
        # KeyboardInterrupt, SystemExit...: roll back only what is provably undecided.
        if decision_sent:
            for shard in prepared:
                _detach(participants[shard])
            _detach(coord)
            log.error("interrupted while deciding %s; recovery settles it by its record", gid)
        else:
            _roll_back(participants, coord, prepared, writers)
        raise
    try:
        if after_decision is not None:
            after_decision(gid)
        return _finish_all(
            participants, coordinator, writers, gid, positions, engines=engines, resolve_s=resolve_s
        )
    except BaseException:
        # Decided: whatever is still prepared must be committed, never rolled back.
        for shard in writers:
            part = participants[shard]
            if part.transaction.is_active:
                _detach(part)
        raise


def _known(shard: str, position: int | None) -> dict[str, int]:
    return {} if position is None else {shard: position}


def _finish_all(
    participants: Mapping[str, Participant],
    coordinator: str,
    writers: list[str],
    gid: str,
    positions: dict[str, int],
    *,
    engines: EngineMap | None,
    resolve_s: float,
) -> CommitResult:
    """Run COMMIT PREPARED on every participant; finish failed ones on fresh connections.

    ``positions``: those known already (the coordinator's, read with its commit).
    """
    result = CommitResult([coordinator, *writers], dict(positions), gid=gid)
    for shard in writers:
        part = participants[shard]
        try:
            result.positions.update(_known(shard, part.transaction.commit()))
            continue
        except SQLAlchemyError as exc:
            log.warning("COMMIT PREPARED %s on shard %s failed, retrying: %s", gid, shard, exc)
            _detach(part)
            failure: BaseException = exc
        if engines is None:
            raise CommitPending(shard, gid, _first_line(failure)) from failure
        result.positions[shard] = finish(engines, shard, gid, resolve_s=resolve_s)
    return result


def finish(engines: EngineMap, shard: str, gid: str, *, resolve_s: float) -> int:
    """Commit the prepared ``gid`` on ``shard`` (decided: commit) on a fresh connection.

    Retries until ``resolve_s`` has passed, following a promotion of the shard's
    primary (libpq's host walk). A gid that is no longer prepared was committed
    by recovery (the decision is commit, so nothing can have rolled it back).
    Returns the primary's WAL position afterwards (a valid causal token).

    Raises:
        CommitPending: the shard stayed unreachable.
    """
    pauses = _BACKOFF.pauses(time.monotonic() + resolve_s)
    while True:
        try:
            with engines.primary(shard).engine.connect() as raw:
                conn = raw.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    # The gid is bound by the driver as a literal (see _settle).
                    conn.exec_driver_sql("COMMIT PREPARED %(gid)s", {"gid": gid})
                except DBAPIError as exc:
                    if _pgcode(exc) != _UNDEFINED_OBJECT:
                        raise
                    log.info("%s on shard %s was committed by recovery already", gid, shard)
                return current_lsn(conn)
        except SQLAlchemyError as exc:
            pause = next(pauses, None)
            if pause is None:
                raise CommitPending(shard, gid, _first_line(exc)) from exc
            log.info("COMMIT PREPARED %s on shard %s failed, retrying: %s", gid, shard, exc)
            time.sleep(pause)


def _read_outcome(
    engines: EngineMap | None, coordinator: str, gid: str, resolve_s: float
) -> tuple[bool, bool] | None:
    """Return (committed, the abort was claimed here) from the decision record, or None.

    Claims an abort exactly as recovery does: the insert waits for a decision
    still in flight and loses to a committed one, so the answer is final. Each
    attempt uses a fresh connection to the coordinator's (possibly new) primary.
    """
    if engines is None:
        return None
    pauses = _BACKOFF.pauses(time.monotonic() + resolve_s)
    while True:
        try:
            with engines.primary(coordinator).engine.begin() as conn:
                claimed = bool(conn.execute(_CLAIM_ABORT, {"gid": gid}).scalar_one())
                committed = bool(conn.execute(_DECISION, {"gid": gid}).scalar_one())
            return committed, claimed
        except SQLAlchemyError as exc:
            pause = next(pauses, None)
            if pause is None:
                log.error("the decision of %s on %s is unknown: %s", gid, coordinator, exc)
                return None
            time.sleep(pause)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


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
    # Shards skipped because another recoverer held their recovery lock.
    busy: list[str] = field(default_factory=list)
    forgotten_decisions: int = 0

    @property
    def resolved(self) -> int:
        return len(self.committed) + len(self.rolled_back)


def recover(
    engines: EngineMap,
    *,
    grace: timedelta = timedelta(seconds=30),
    forget_after: timedelta = timedelta(hours=1),
    wait: bool = True,
) -> RecoveryReport:
    """Settle every in-doubt prepared transaction of ours by its decision record.

    Each shard is settled under its recovery lock (:data:`RECOVERY_LOCK_KEY`):
    with ``wait`` False a shard whose lock another recoverer holds is skipped
    (listed in ``report.busy``), else it is waited for. Decision rows older than
    ``forget_after`` are deleted once no shard holds a prepared transaction with
    their gid (only when every shard was reachable and none was skipped).
    """
    report = RecoveryReport()
    prefix = f"{GID_PREFIX}:%"
    still_prepared: set[str] = set()
    for shard in engines.shards:
        try:
            with advisory_lock(engines.primary(shard).engine, RECOVERY_LOCK_KEY, wait=wait) as conn:
                if conn is None:
                    log.info("recovery of shard %s skipped: another recoverer holds it", shard)
                    report.busy.append(shard)
                    continue
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
    if not report.unreachable and not report.busy:
        for shard in engines.shards:
            with engines.primary(shard).engine.begin() as conn:
                forgotten = conn.execute(
                    _FORGET,
                    {"age": forget_after.total_seconds(), "keep": sorted(still_prepared)},
                ).scalar_one()
                report.forgotten_decisions += int(forgotten)
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
