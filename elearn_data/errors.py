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


class ShardUnavailable(ElearnDataError):
    """A shard's primary (or every node able to serve the call) cannot be reached."""

    def __init__(self, shard: str, detail: str = "") -> None:
        self.shard = shard
        suffix = f": {detail}" if detail else ""
        super().__init__(f"shard {shard!r} is unavailable{suffix}")


class ConcurrencyConflict(ElearnDataError):
    """A concurrent transaction won a race (serialization failure, deadlock, lock timeout).

    Nothing was written; the call may be retried. The facade retries these a few
    times itself before raising.
    """


class ConfigurationError(ElearnDataError):
    """Settings are incomplete or inconsistent, or the local cluster is missing."""


__all__ = [
    "AlreadyEnrolled",
    "ConcurrencyConflict",
    "ConfigurationError",
    "CourseFull",
    "Duplicate",
    "DuplicateEmail",
    "ElearnDataError",
    "ForeignId",
    "InvalidInput",
    "InvalidState",
    "NotFound",
    "ShardUnavailable",
    "UnknownRegion",
]
