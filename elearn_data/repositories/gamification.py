"""Gamification: point values and badges (catalog writes), a learner's points (their shard).

Catalog writes (``set_event_points``, ``create_badge``) run the same PL/pgSQL
function with the same values on every shard, in sorted shard order, inside one
unit of work -- the catalog writer's two-phase commit. ``create_badge``
backfills each shard's learners who already meet the badge in the same
statement. A learner's summary, history and badges are read on their shard;
the leaderboard's per-shard rounds are :data:`LEADERS_TOP`, :data:`LEADERS_ALL`
and :data:`LEADERS_SINCE` (see :mod:`elearn_data.services.gamification`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, column, select, text

from elearn_data.errors import NotFound
from elearn_data.models import Badge, BadgeAward, LearnerPoints, PointsLedgerEntry, User
from elearn_data.repositories.views import BadgeAwardView, PointEventView
from elearn_data.sharding.unit_of_work import PreparedRead, UnitOfWork

_CREATE_BADGE = text(
    "SELECT create_badge(:id, :code, :name, :description, :criterion, :threshold, :at)"
)
_SET_POINTS = text("SELECT set_event_points(:event, :points, :at)")

# One shard's part of the leaderboard (revision 0012's SQL functions, which the
# planner inlines): its top :limit learners by points, ties by user id, all
# time (the summary rows) or over the ledger since a time and/or in a course.
# Prepared once per pooled replica connection (a leaderboard is a hot read).
# The user id comes back as its canonical text, which orders as the uuid does
# (lower-case hex digits and dashes at fixed places: text order is byte order,
# PostgreSQL's uuid order), so the merge ranks and breaks ties on it unparsed;
# only the entries returned become UUIDs (parsing every shard's rows cost more
# than the merge).
_LEADER_COLUMNS = (
    column("user_id", String),
    column("points", BigInteger),
    column("first_name", String),
    column("region", String),
)
# The hot shape (all time, every region): one plan whatever the limit (the walk
# down ix_learner_points_points), so its generic plan serves every EXECUTE; the
# planner would otherwise plan each call anew (0.1 ms of 0.2 ms on a replica
# with 333 000 summary rows). A region or the ledger shapes keep custom plans:
# their best plan depends on the values (a rare region is found by its index).
LEADERS_TOP = PreparedRead(
    "elearn_points_leaders_top",
    text(
        "SELECT CAST(user_id AS text), points, first_name, region"
        " FROM get_points_leaders_all(NULL, CAST(:limit AS int))"
    ).columns(*_LEADER_COLUMNS),
    ("limit",),
    generic_plan=True,
)
LEADERS_ALL = PreparedRead(
    "elearn_points_leaders_all",
    text(
        "SELECT CAST(user_id AS text), points, first_name, region"
        " FROM get_points_leaders_all(CAST(:region AS text), CAST(:limit AS int))"
    ).columns(*_LEADER_COLUMNS),
    ("region", "limit"),
)
LEADERS_SINCE = PreparedRead(
    "elearn_points_leaders_since",
    text(
        "SELECT CAST(user_id AS text), points, first_name, region FROM get_points_leaders_since("
        "CAST(:since AS timestamptz), CAST(:course_id AS uuid), CAST(:region AS text),"
        " CAST(:limit AS int))"
    ).columns(*_LEADER_COLUMNS),
    ("since", "course_id", "region", "limit"),
)


class GamificationRepository:
    """Every statement of ``db.gamification``, inside the caller's unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def _everywhere(self, statement: Any, params: Mapping[str, Any]) -> list[Any]:
        return [
            self.uow.execute(statement, params, shard=shard).scalar()
            for shard in self.uow.router.shards
        ]

    # ------------------------------------------------------------ catalog writes

    def create_badge(self, values: Mapping[str, Any], at: datetime) -> int:
        """Create a badge on every shard and award it there; return how many learners got it."""
        return sum(int(n or 0) for n in self._everywhere(_CREATE_BADGE, {**values, "at": at}))

    def set_points(self, event: str, points: int, at: datetime) -> None:
        """Set what an event pays, on every shard."""
        self._everywhere(_SET_POINTS, {"event": event, "points": points, "at": at})

    # ------------------------------------------------------------ leaderboard

    def leaders(
        self, filters: Mapping[str, Any], limit: int
    ) -> dict[str, list[tuple[str, int, str, str]]]:
        """Return each shard's top ``limit`` learners as (user id, points, first name, region).

        The user id is its canonical text (see :data:`LEADERS_ALL`: it orders as the uuid).

        ``filters``: since (timestamptz or None), course_id, region. Every shard
        is asked at once; each list is in the merge's order (points descending,
        then user id).
        """
        since, course, region = filters["since"], filters["course_id"], filters["region"]
        query: PreparedRead
        args: tuple[Any, ...]
        if since is not None or course is not None:
            query, args = LEADERS_SINCE, (since, course, region, limit)
        elif region is not None:
            query, args = LEADERS_ALL, (region, limit)
        else:
            query, args = LEADERS_TOP, (limit,)
        return {
            shard: [(user, int(points), name, place) for user, points, name, place in rows]
            for shard, rows in self.uow.fetch_prepared_on_shards(query, args).items()
        }

    # ------------------------------------------------------------ a learner's reads

    def _shard(self, user_id: uuid.UUID) -> str:
        return self.uow.router.shard_of_owner(user_id)

    def require_user(self, user_id: uuid.UUID) -> None:
        """Raise NotFound unless the user exists (on their shard)."""
        found = self.uow.execute(
            select(User.id).where(User.id == user_id), shard=self._shard(user_id)
        ).first()
        if found is None:
            raise NotFound(f"user {user_id} not found")

    def summary(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        """Return the learner's summary row (None before their first paid event)."""
        row = (
            self.uow.execute(
                select(
                    LearnerPoints.points,
                    LearnerPoints.streak_days,
                    LearnerPoints.longest_streak,
                ).where(LearnerPoints.user_id == user_id),
                shard=self._shard(user_id),
            )
            .mappings()
            .first()
        )
        return None if row is None else dict(row)

    def history(self, user_id: uuid.UUID, limit: int) -> list[PointEventView]:
        """Return the learner's paid events, newest first."""
        rows = self.uow.execute(
            select(
                PointsLedgerEntry.event,
                PointsLedgerEntry.points,
                PointsLedgerEntry.source_id,
                PointsLedgerEntry.awarded_at,
            )
            .where(PointsLedgerEntry.user_id == user_id)
            .order_by(
                PointsLedgerEntry.awarded_at.desc(),
                PointsLedgerEntry.event,
                PointsLedgerEntry.source_id,
            )
            .limit(limit),
            shard=self._shard(user_id),
        ).mappings()
        return [PointEventView(**dict(r)) for r in rows]

    def badges(self, user_id: uuid.UUID) -> list[BadgeAwardView]:
        """Return the learner's badges, oldest award first."""
        rows = self.uow.execute(
            select(BadgeAward.badge_id, Badge.code, Badge.name, BadgeAward.awarded_at)
            .join(Badge, Badge.id == BadgeAward.badge_id)
            .where(BadgeAward.user_id == user_id)
            .order_by(BadgeAward.awarded_at, Badge.code),
            shard=self._shard(user_id),
        ).mappings()
        return [BadgeAwardView(**dict(r)) for r in rows]
