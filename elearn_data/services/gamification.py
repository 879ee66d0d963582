"""``db.gamification``: points, levels, streaks, badges and leaderboards.

Points are paid by the database (triggers of revision 0009) in the same
transaction as the event -- a lesson completed, a course completed, an
assessment passed, a review written, a streak day -- exactly once per event:
the append-only ledger's key (learner, event, source) refuses a second payment
whatever races. What an event pays is catalog data (``set_points``). A level is
computed from the points and ``Settings.gamification.level_thresholds`` when it
is read; it is never stored.

A badge (catalog data: a criterion and a threshold) is awarded once, the moment
a learner's summary reaches it (a trigger on the summary row); a new badge is
awarded at once to every learner who already meets it, set-based on each shard
in the badge's two-phase commit.

The leaderboard is exact over every shard: the threshold top-N merge of
:func:`elearn_data.analytics.merge.threshold_top_n` (the one ``popular_courses``
uses) over each shard's per-learner totals. A learner's total lives on one
shard, so the merge's first round -- every shard's own top N, asked at once --
is exact and the last.
"""

from __future__ import annotations

import bisect
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from elearn_data import ids, validation
from elearn_data.analytics.merge import threshold_top_n
from elearn_data.errors import InvalidInput
from elearn_data.models.gamification import BADGE_CRITERIA, POINT_EVENTS
from elearn_data.regions import REGION_NAMES
from elearn_data.repositories.gamification import GamificationRepository
from elearn_data.repositories.views import (
    BadgeAwardView,
    LeaderEntryView,
    PointEventView,
    PointsView,
)
from elearn_data.services.base import CausalCluster, Units
from elearn_data.services.learning import owned_id
from elearn_data.sharding.unit_of_work import UnitOfWork

PERIODS = ("all", "month", "week")


class GamificationHost(Units, CausalCluster, Protocol):
    """What the service uses: units of work, and the router and settings."""


BADGE_CODE = re.compile(r"[A-Z0-9][A-Z0-9_.-]{1,31}", re.ASCII)
MAX_LEADERBOARD = 1000
MAX_HISTORY = 1000
MAX_POINTS = 1_000_000
MAX_THRESHOLD = 1_000_000_000


def period_start(period: str, now: datetime) -> datetime | None:
    """Return the start of the UTC calendar ``period`` containing ``now`` (None for "all").

    Weeks are ISO weeks (from Monday 00:00 UTC), months start on the 1st at 00:00 UTC.
    """
    if period == "all":
        return None
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def level_of(points: int, thresholds: tuple[int, ...]) -> tuple[int, int | None]:
    """Return (level, points at which the next level starts or None at the top)."""
    level = bisect.bisect_right(thresholds, points)
    following = thresholds[level] if level < len(thresholds) else None
    return max(level, 1), following


class Gamification:
    """The gamification part of the API (see docs/api.md, "Gamification").

    ``clock`` returns the current time; the leaderboard's week and month are the
    UTC calendar periods containing it. Tests may replace it (``db.gamification.clock
    = lambda: datetime(...)``); the points' own times are the events' timestamps.
    """

    def __init__(self, db: GamificationHost) -> None:
        self._db = db
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def _shard(self, owned: uuid.UUID) -> str:
        return self._db.router.shard_of_owner(owned)

    # ------------------------------------------------------------ catalog writes

    def set_points(self, event: str, points: int) -> None:
        """Set the points ``event`` pays from now on (on every shard; paid events keep theirs).

        Raises:
            InvalidInput: unknown event, points negative or not an integer.
        """
        clean_event = validation.choice("event", event, POINT_EVENTS)
        clean_points = validation.required_integer("points", points, minimum=0, maximum=MAX_POINTS)
        at = self.clock()
        self._db.write(
            None, lambda uow: GamificationRepository(uow).set_points(clean_event, clean_points, at)
        )

    def create_badge(
        self,
        code: str,
        *,
        name: str,
        description: str | None = None,
        criterion: str,
        threshold: int,
    ) -> uuid.UUID:
        """Create a badge on every shard; award it to every learner who already meets it.

        ``criterion``: lessons_completed, courses_completed, assessments_passed,
        reviews_written, streak_days (the longest streak) or points; a learner
        whose figure reaches ``threshold`` gets the badge, once.

        Raises:
            Duplicate: a badge with this code exists.
            InvalidInput: unknown criterion, negative threshold, malformed code,
                blank name.
        """
        clean_code = validation.required_text("code", code, max_length=32)
        clean_code = clean_code.upper() if clean_code.isascii() else clean_code
        if not BADGE_CODE.fullmatch(clean_code):
            raise InvalidInput(
                f"code must be 2-32 letters, digits, '-', '_' or '.': {code!r}"[:200]
            )
        values: dict[str, Any] = {
            "id": ids.new_reference_id(),
            "code": clean_code,
            "name": validation.required_text("name", name, max_length=100),
            "description": validation.text(
                "description", description, max_length=5000, required=False
            ),
            "criterion": validation.choice("criterion", criterion, BADGE_CRITERIA),
            "threshold": validation.required_integer(
                "threshold", threshold, minimum=0, maximum=MAX_THRESHOLD
            ),
        }
        at = self.clock()
        self._db.write(None, lambda uow: GamificationRepository(uow).create_badge(values, at))
        return uuid.UUID(str(values["id"]))

    # ------------------------------------------------------------ a learner

    def summary(self, user_id: uuid.UUID) -> PointsView:
        """Return a learner's points, level, streaks and badges.

        Raises:
            NotFound: no such user.
        """
        user = owned_id("user_id", user_id)

        def work(uow: UnitOfWork) -> PointsView:
            repo = GamificationRepository(uow)
            repo.require_user(user)
            row = repo.summary(user) or {"points": 0, "streak_days": 0, "longest_streak": 0}
            badges = repo.badges(user)
            points = int(row["points"])
            level, following = level_of(points, self._db.settings.gamification.level_thresholds)
            return PointsView(
                user_id=user,
                points=points,
                level=level,
                next_level_points=following,
                streak_days=int(row["streak_days"]),
                longest_streak=int(row["longest_streak"]),
                badges=tuple(badges),
            )

        with self._db.reader(self._shard(user)) as uow:
            return work(uow)

    def history(self, user_id: uuid.UUID, limit: int = 50) -> list[PointEventView]:
        """Return a learner's paid events, newest first.

        Raises:
            NotFound: no such user.
            InvalidInput: limit outside 1..1000.
        """
        user = owned_id("user_id", user_id)
        clean_limit = validation.required_integer("limit", limit, minimum=1, maximum=MAX_HISTORY)

        def work(uow: UnitOfWork) -> list[PointEventView]:
            repo = GamificationRepository(uow)
            repo.require_user(user)
            return repo.history(user, clean_limit)

        with self._db.reader(self._shard(user)) as uow:
            return work(uow)

    def badges(self, user_id: uuid.UUID) -> list[BadgeAwardView]:
        """Return a learner's badges, first awarded first.

        Raises:
            NotFound: no such user.
        """
        user = owned_id("user_id", user_id)

        def work(uow: UnitOfWork) -> list[BadgeAwardView]:
            repo = GamificationRepository(uow)
            repo.require_user(user)
            return repo.badges(user)

        with self._db.reader(self._shard(user)) as uow:
            return work(uow)

    # ------------------------------------------------------------ leaderboard

    def leaderboard(
        self,
        *,
        limit: int = 10,
        period: str = "all",
        region: str | None = None,
        course_id: uuid.UUID | None = None,
    ) -> list[LeaderEntryView]:
        """Return the best ``limit`` learners by points, exact over every shard.

        ``period``: all (every point), month or week (points awarded since the
        start of the current UTC calendar month, or ISO week from Monday);
        ``region`` keeps that region's learners; ``course_id`` counts the points
        earned in that course. Ties go to the lower user id; learners without
        points are not listed. Entries show first names only.

        Raises:
            InvalidInput: unknown period or region, limit outside 1..1000, a
                course id that is not a UUID.
        """
        n = validation.required_integer("limit", limit, minimum=1, maximum=MAX_LEADERBOARD)
        clean_period = validation.choice("period", period, PERIODS)
        clean_region = None if region is None else validation.choice("region", region, REGION_NAMES)
        course = None if course_id is None else validation.identifier("course_id", course_id)
        filters: dict[str, Any] = {
            "since": period_start(clean_period, self.clock()),
            "course_id": course,
            "region": clean_region,
        }

        # A learner's points live on their own shard only: each shard's top n is
        # exact, and the merge's first round is its last (threshold_top_n,
        # shards_per_key=1). One statement per shard, all at once, on the
        # replicas of a global reader.
        # Keyed by the user id's text, which orders as the uuid (repositories' LEADERS_ALL).
        names: dict[str, tuple[str, str]] = {}
        with self._db.reader() as uow:
            repo = GamificationRepository(uow)

            def local_top(count: int) -> dict[str, list[tuple[str, int]]]:
                found = repo.leaders(filters, count)
                for rows in found.values():
                    for user, _, first_name, user_region in rows:
                        names[user] = (first_name, user_region)
                return {shard: [(r[0], r[1]) for r in rows] for shard, rows in found.items()}

            top = threshold_top_n(n, len(uow.router.shards), local_top, shards_per_key=1)
        return [
            LeaderEntryView(
                rank=rank,
                user_id=uuid.UUID(user),
                first_name=names[user][0],
                region=names[user][1],
                points=total,
            )
            for rank, (user, total) in enumerate(top.ranked, start=1)
        ]
