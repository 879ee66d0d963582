"""The one exception tree of elearn_data.

Every public method raises these and nothing else: driver errors (psycopg2,
SQLAlchemy, pymongo) are translated once, at the repository boundary, with
``raise ... from exc`` so the cause stays visible in tracebacks. Messages name the
offending value (never a secret).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable


class ElearnDataError(Exception):
    """Root of every error elearn_data raises on purpose."""

    # The database constraint behind the error, when there is one (e.g. the
    # unique index that turned a unique violation into Duplicate).
    constraint: str | None = None


class NotFound(ElearnDataError):
    """A row, document or id that does not exist (or was never issued by us)."""


class ForeignId(NotFound):
    """A UUID that elearn_data did not issue, so it names no row of ours.

    Also importable as ``elearn_data.ids.ForeignId`` (the same class).
    """

    def __init__(self, value: uuid.UUID, reason: str) -> None:
        self.value = value
        super().__init__(f"id {value} was not issued by elearn_data ({reason})")


class Duplicate(ElearnDataError):
    """A value that must be unique already exists."""


class DuplicateEmail(Duplicate):
    """The email is registered already, in this or any other region."""


class InvalidInput(ElearnDataError, ValueError):
    """An argument is malformed or out of range; nothing was written."""


class UnknownRegion(InvalidInput):
    """A region name that is not one of the platform's regions."""

    def __init__(self, region: object, valid: Iterable[str]) -> None:
        self.region = region
        self.valid = tuple(valid)
        super().__init__(f"unknown region {region!r}; valid regions: {', '.join(self.valid)}")


class InvalidState(ElearnDataError):
    """The operation is not allowed in the current state of the row."""


class CourseFull(InvalidState):
    """Every seat of the course is taken (capacity holds across all regions)."""


class AlreadyEnrolled(InvalidState):
    """The learner holds an active or completed enrollment in the course."""


class Unavailable(ElearnDataError):
    """A store behind the call cannot serve it: a shard (PostgreSQL) or the content store.

    Nothing the caller passed is wrong; the same call may succeed later.
    """


class ShardUnavailable(Unavailable):
    """A shard's primary (or every node able to serve the call) cannot be reached.

    ``disconnect`` is True when the connection failed, not the statement: the
    node went away (or a pooled connection to it had gone stale), so a call
    that had not begun to commit wrote nothing and may run again on a fresh
    connection. It is decided once, where the driver error is translated
    (``elearn_data.dberrors``); ``elearn_data.retry`` reads it.
    """

    def __init__(self, shard: str, detail: str = "", *, disconnect: bool = False) -> None:
        self.shard = shard
        self.disconnect = disconnect
        suffix = f": {detail}" if detail else ""
        super().__init__(f"shard {shard!r} is unavailable{suffix}")


class ContentUnavailable(Unavailable):
    """The content store (MongoDB) cannot serve the call: unreachable, closed or failing.

    Nothing can be assumed written when this is raised by a write, except that an
    injected fault (see ``FaultInjector``) is raised before anything is sent.
    Also importable as ``elearn_data.content.ContentUnavailable`` (the same class).
    """


class AnalyticsTimeout(ElearnDataError, TimeoutError):
    """An analytics query ran longer than ``Settings.analytics_timeout_s`` and was cancelled."""


class ConcurrencyConflict(ElearnDataError):
    """A concurrent transaction won a race (serialization failure, deadlock, lock timeout).

    Nothing was written; the call may be retried. The facade retries these a few
    times itself before raising.
    """


class AbortedByRecovery(ConcurrencyConflict):
    """Two-phase recovery aborted this transaction before its coordinator decided.

    A recoverer settles prepared transactions older than its grace period; one
    that reached a live transaction first claims its abort, and the commit then
    fails with this error. Nothing was written; the call may be retried (the
    facade retries it like any concurrency conflict).
    """

    def __init__(self, gid: str) -> None:
        self.gid = gid
        super().__init__(
            f"transaction {gid} was aborted by two-phase recovery before it committed; "
            "nothing was written, retry the call"
        )


class OutcomeUnknown(ElearnDataError):
    """A multi-shard commit whose outcome could not be read back in time.

    The coordinator's commit of the decision failed ambiguously (the connection
    was lost while committing) and its decision record could not be read from
    the coordinator within ``Settings.twophase_resolve_s``. The participants
    stay prepared; recovery settles them by the decision record, so the
    transaction ends up either fully committed or fully rolled back. Do not
    blindly retry a non-idempotent call: look the result up first.
    """

    def __init__(self, gid: str, coordinator: str, detail: str = "") -> None:
        self.gid = gid
        self.coordinator = coordinator
        suffix = f": {detail}" if detail else ""
        super().__init__(
            f"the outcome of transaction {gid} is unknown (its decision record on shard "
            f"{coordinator!r} could not be read); recovery will settle it{suffix}"
        )


class CommitPending(ShardUnavailable):
    """The transaction is committed, but one participant shard has not applied it yet.

    The decision is durable (the transaction *will* be fully committed: recovery
    finishes it), but the committing call could not run ``COMMIT PREPARED`` on
    ``shard`` within ``Settings.twophase_resolve_s``, so reads of that shard do
    not show the writes yet.
    """

    def __init__(self, shard: str, gid: str, detail: str = "") -> None:
        self.gid = gid
        super().__init__(
            shard,
            f"transaction {gid} is committed but not yet applied on this shard "
            f"(recovery will finish it){': ' + detail if detail else ''}",
        )


class LoginThrottled(ElearnDataError):
    """Too many consecutive failed logins of one account: wait ``retry_after_s`` seconds.

    The password is not checked while the wait lasts; each further failure
    doubles the wait (up to ``Settings.login.max_backoff_s``); a success resets it.
    """

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(0.0, float(retry_after_s))
        super().__init__(
            f"too many failed logins for this account; retry in {self.retry_after_s:.0f} s"
        )


class ConfigurationError(ElearnDataError):
    """Settings are incomplete or inconsistent, or the local cluster is missing."""


class MissingExtra(ConfigurationError, ImportError):
    """A feature needs an optional part of the package that is not installed.

    The message names the extra to install (``pip install 'elearn-data[seed]'``);
    it is also an ImportError, raised where the missing import would have been.
    """


class RoutingError(ElearnDataError):
    """A statement or object the routing rule cannot place, or places outside its scope.

    Raised before anything is sent: a scoped unit of work given criteria that
    name another shard's ids, a learner-owned statement with nothing to route
    it by, a catalog row changed outside ``db.catalog``. The message says what
    to do instead.
    """


class CrossShardQuery(ElearnDataError):
    """A statement whose exact answer needs rows of several shards in a way that cannot be merged.

    Also raised for an UPDATE or DELETE of learner-owned rows that does not
    narrow to the shards it changes (nothing is written). Analyst queries of
    any shape go through ``db.analytics.sql``.
    """


__all__ = [
    "AbortedByRecovery",
    "AlreadyEnrolled",
    "AnalyticsTimeout",
    "CommitPending",
    "ConcurrencyConflict",
    "ConfigurationError",
    "ContentUnavailable",
    "CourseFull",
    "CrossShardQuery",
    "Duplicate",
    "DuplicateEmail",
    "ElearnDataError",
    "ForeignId",
    "InvalidInput",
    "InvalidState",
    "LoginThrottled",
    "MissingExtra",
    "NotFound",
    "OutcomeUnknown",
    "RoutingError",
    "ShardUnavailable",
    "Unavailable",
    "UnknownRegion",
]
