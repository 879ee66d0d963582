"""The catalog: written to every shard primary in one unit of work, read on the local shard.

Catalog rows are reference rows: the same values (ids and timestamps included)
on every shard. :class:`CatalogRepository` writes each change to every shard in
sorted shard order (the lock order of catalog writes); the unit of work then
commits all of them atomically with two-phase commit. Course statistics are
per-shard partials (``course_stats``), merged here: sums of sums and counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Executable, TextClause, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from elearn_data.aggregates import average
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.models import (
    ContentOutbox,
    Course,
    CourseCategory,
    CourseLesson,
    CourseModule,
    CourseStats,
)
from elearn_data.repositories.views import CategoryView, CourseView, LessonView, ModuleView
from elearn_data.sharding.unit_of_work import UnitOfWork, writing

_COURSE_COLUMNS = (
    Course.id,
    Course.code,
    Course.title,
    Course.description,
    Course.instructor_id,
    Course.category_id,
    Course.level,
    Course.price,
    Course.currency,
    Course.status,
    Course.max_enrollments,
    Course.duration_hours,
    Course.language,
    Course.published_at,
    Course.lesson_count,
)

# Module-level statements: the router reads a statement's tables once per
# statement object (routing.statement_tables), which for an ORM select costs
# about a millisecond, so a statement built per call paid it on every call.
_COURSE_ROWS = select(*_COURSE_COLUMNS).where(Course.id.in_(bindparam("ids", expanding=True)))
_PARTIALS = select(
    CourseStats.course_id,
    CourseStats.rating_sum,
    CourseStats.rating_count,
    CourseStats.enrollment_count,
)
_PARTIALS_OF = _PARTIALS.where(CourseStats.course_id.in_(bindparam("ids", expanding=True)))

_LIVE_ENROLLMENTS = text(
    "SELECT count(*) FROM enrollments WHERE course_id = :c AND status <> 'dropped'"
)
_SET_LEDGER = text(
    "INSERT INTO course_seats (course_id, capacity, taken, updated_at)"
    " VALUES (:c, :capacity, :taken, :at)"
    " ON CONFLICT (course_id) DO UPDATE"
    " SET capacity = excluded.capacity, taken = excluded.taken, updated_at = excluded.updated_at"
)
_CREATE_COURSE = text(
    "SELECT create_course(:id, :code, :title, :instructor_id, :description, :category_id,"
    " :level, :price, :currency, :duration_hours, :max_enrollments, :language,"
    " :with_seat_ledger, :at)"
)
# Marked as writing: every shard is a participant of the catalog's two-phase commit.
_PUBLISH = writing(text("SELECT publish_course(:course_id, :at)"))
_ARCHIVE = writing(text("SELECT archive_course(:course_id, :at)"))
_CURRICULUM = text("SELECT * FROM get_course_curriculum(:course_id)")
_SEARCH = text(
    "SELECT course_id, rank FROM search_courses(:query, :category_id, :level, :max_price, :limit)"
)

# The rounds of the popular-courses top N (see PopularRounds).
# Round 1: this shard's own top N published courses.
POPULAR_TOP = text("SELECT course_id, enrollment_count FROM get_popular_courses(:limit)")
# Round 2: every published course whose partial reaches the threshold on this shard
# (served by ix_course_stats_enrollment_count).
POPULAR_ABOVE = text(
    "SELECT s.course_id FROM course_stats s JOIN courses c ON c.id = s.course_id"
    " WHERE s.enrollment_count >= :threshold AND c.status = 'published'"
)
# Round 3: this shard's exact partials of the candidates, with their catalog columns.
POPULAR_EXACT: TextClause = text(
    "SELECT c.id AS course_id, c.code, c.title, c.instructor_id,"
    " coalesce(s.enrollment_count, 0) AS enrollments,"
    " coalesce(s.rating_sum, 0)::bigint AS rating_sum,"
    " coalesce(s.rating_count, 0) AS rating_count"
    " FROM courses c LEFT JOIN course_stats s ON s.course_id = c.id"
    " WHERE c.id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
# Filler when fewer than N published courses have any enrollment: catalog rows
# (the same on every shard), lowest ids first, which is the order of ties.
POPULAR_FILL: TextClause = text(
    "SELECT c.id AS course_id, c.code, c.title, c.instructor_id FROM courses c"
    " WHERE c.status = 'published' AND c.id <> ALL(:exclude) ORDER BY c.id LIMIT :limit"
).bindparams(bindparam("exclude", type_=ARRAY(UUID(as_uuid=True))))


class Partials:
    """Merged per-shard statistics of some courses."""

    def __init__(self) -> None:
        self.rating_sum: dict[uuid.UUID, int] = {}
        self.rating_count: dict[uuid.UUID, int] = {}
        self.enrollments: dict[uuid.UUID, int] = {}

    def add(self, course_id: uuid.UUID, rating_sum: int, rating_count: int, enrolled: int) -> None:
        self.rating_sum[course_id] = self.rating_sum.get(course_id, 0) + int(rating_sum)
        self.rating_count[course_id] = self.rating_count.get(course_id, 0) + int(rating_count)
        self.enrollments[course_id] = self.enrollments.get(course_id, 0) + int(enrolled)

    def rating(self, course_id: uuid.UUID) -> Decimal | None:
        """Global average: total of ratings over number of ratings (never a mean of means)."""
        return average(self.rating_sum.get(course_id, 0), self.rating_count.get(course_id, 0))


# Runs one statement on some shards (None: every shard) and returns each shard's rows.
ShardRows = Callable[
    [Executable, Mapping[str, Any], Sequence[str] | None],
    Mapping[str, Sequence[Mapping[Any, Any]]],
]


class PopularRounds:
    """The per-shard rounds of the popular-courses top N, however the shards are reached.

    ``run`` reaches the shards: one unit of work's connections, every shard of a
    round at once (:meth:`CatalogRepository.popular_rounds`, for
    ``db.catalog.popular``: ``UnitOfWork.rows_on_shards``), or the analytics
    fan-out's replicas in parallel (``db.analytics.popular_courses``).
    :meth:`local_top`, :meth:`above`, :meth:`exact` and :meth:`fill` are the
    callbacks of :func:`~elearn_data.analytics.merge.threshold_top_n`; ``exact``
    and ``fill`` also keep each course's catalog columns and rating partials
    (summed over shards) in :attr:`details`.
    """

    def __init__(self, shards: Sequence[str], run: ShardRows) -> None:
        self.shards = tuple(shards)
        self._run = run
        self.details: dict[uuid.UUID, dict[str, Any]] = {}

    def local_top(self, n: int) -> dict[str, list[tuple[uuid.UUID, int]]]:
        """Round 1: ``{shard: [(course, live enrollments), ...]}`` of each shard's top ``n``."""
        found = self._run(POPULAR_TOP, {"limit": n}, None)
        return {
            shard: [(row["course_id"], int(row["enrollment_count"])) for row in rows]
            for shard, rows in found.items()
        }

    def above(self, threshold: int) -> dict[str, list[uuid.UUID]]:
        """Round 2: ``{shard: courses}`` with at least ``threshold`` enrollments there."""
        found = self._run(POPULAR_ABOVE, {"threshold": threshold}, None)
        return {shard: [row["course_id"] for row in rows] for shard, rows in found.items()}

    def exact(self, courses: list[uuid.UUID]) -> dict[str, dict[uuid.UUID, int]]:
        """Round 3: ``{shard: {course: enrollments}}`` of the candidates."""
        found = self._run(POPULAR_EXACT, {"ids": courses}, None)
        counts: dict[str, dict[uuid.UUID, int]] = {}
        for shard, rows in found.items():
            counts[shard] = {}
            for row in rows:
                counts[shard][row["course_id"]] = int(row["enrollments"])
                slot = self._detail(row)
                slot["rating_sum"] += int(row["rating_sum"])
                slot["rating_count"] += int(row["rating_count"])
        return counts

    def fill(self, ranked: list[uuid.UUID], count: int) -> list[uuid.UUID]:
        """Up to ``count`` published courses not in ``ranked``, lowest ids first.

        Asked when fewer courses than wanted have any enrollment: the others have
        none anywhere, and the catalog (the same on every shard) lists them.
        """
        first = self.shards[0]
        found = self._run(POPULAR_FILL, {"exclude": ranked, "limit": count}, (first,))
        filled: list[uuid.UUID] = []
        for row in found[first]:
            self._detail(row)
            filled.append(row["course_id"])
        return filled

    def _detail(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return self.details.setdefault(
            row["course_id"],
            {key: row[key] for key in ("code", "title", "instructor_id")}
            | {"rating_sum": 0, "rating_count": 0},
        )


class CatalogRepository:
    """Catalog reads and replicated writes inside one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        # Catalog functions called as text() name no table the router could read:
        # they run where the router sends catalog reads (a scoped unit of work's
        # shard, else the catalog shard).
        self._catalog_shard = uow.scoped_to or uow.router.catalog_shard

    # ----------------------------------------------------------------- writes

    def _everywhere(self, statement: Any, params: Mapping[Any, Any] | None = None) -> list[Any]:
        return self.uow.execute_on_every_shard(statement, params)

    def create_category(
        self,
        category_id: uuid.UUID,
        name: str,
        description: str | None,
        parent_id: uuid.UUID | None,
        at: datetime,
    ) -> None:
        self._everywhere(
            insert(CourseCategory).values(
                id=category_id,
                name=name,
                description=description,
                parent_id=parent_id,
                created_at=at,
                updated_at=at,
            )
        )

    def create_course(self, values: Mapping[Any, Any], home_shard: str, at: datetime) -> None:
        """Create the course on every shard; its seat ledger only on ``home_shard``."""
        for shard in self.uow.router.shards:
            params = {**values, "at": at, "with_seat_ledger": shard == home_shard}
            self.uow.execute(_CREATE_COURSE, params, shard=shard)

    def add_module(
        self,
        module_id: uuid.UUID,
        course_id: uuid.UUID,
        *,
        title: str,
        order: int,
        description: str | None,
        at: datetime,
    ) -> None:
        self._everywhere(
            insert(CourseModule).values(
                id=module_id,
                course_id=course_id,
                title=title,
                module_order=order,
                description=description,
                created_at=at,
                updated_at=at,
            )
        )

    def add_lesson(self, values: Mapping[Any, Any], at: datetime) -> None:
        self._everywhere(insert(CourseLesson).values(**values, created_at=at, updated_at=at))

    def set_content_status(self, lesson_ids: Sequence[uuid.UUID], status: str) -> None:
        """Mark lessons' content ready or pending, on every shard (one timestamp for all)."""
        if not lesson_ids:
            return
        self._everywhere(
            update(CourseLesson)
            .where(
                CourseLesson.id.in_(lesson_ids),
                CourseLesson.content_id.is_not(None),
                CourseLesson.content_status != status,
            )
            .values(content_status=status, updated_at=datetime.now(UTC))
        )

    def enqueue_content_deletion(self, course_id: uuid.UUID) -> None:
        """Record (on the local shard, whose outbox the caller drains) that the content must go."""
        self.uow.execute(
            insert(ContentOutbox).values(
                kind="delete_course_content", payload={"course_id": str(course_id)}
            ),
            shard=self.uow.router.local_shard,
        )

    def set_capacity(self, course_id: uuid.UUID, capacity: int | None, at: datetime) -> int:
        """Set the course's capacity on every shard and in its seat ledger; return the live count.

        Lock order: the course row on every shard (in the catalog writer's order),
        then the seat ledger.
        Every enroll and drop reads the capacity ``FOR SHARE`` on the learner's
        shard after writing the enrollment, so once all course rows are locked
        no enrollment can change the count unseen: one that read the old
        capacity has committed (the lock waited for it) and is counted; one
        that had not blocks on the lock, then reads the new capacity and takes
        (or gives back) its seat in the ledger after this commit.

        Raises:
            NotFound: no such course.
            InvalidInput: the capacity is below the course's live enrollments.
        """
        for result in self._everywhere(
            update(Course)
            .where(Course.id == course_id)
            .values(max_enrollments=capacity, updated_at=at)
            .returning(Course.id)
        ):
            if result.first() is None:
                raise NotFound(f"course {course_id} not found")
        live = sum(
            int(self.uow.execute(_LIVE_ENROLLMENTS, {"c": course_id}, shard=shard).scalar_one())
            for shard in sorted(self.uow.router.shards)
        )
        if capacity is not None and capacity < live:
            raise InvalidInput(
                f"capacity {capacity} is below the {live} live enrollments of course {course_id}"
            )
        # The ledger counts every live enrollment from now on, whatever it knew before.
        home = self.uow.router.home_shard_of(course_id)
        self.uow.execute(
            _SET_LEDGER, {"c": course_id, "capacity": capacity, "taken": live, "at": at}, shard=home
        )
        return live

    def delete_course(self, course_id: uuid.UUID) -> None:
        """Delete the course (modules, lessons, stats, seat ledger cascade) on every shard."""
        for result in self._everywhere(
            delete(Course).where(Course.id == course_id).returning(Course.id)
        ):
            if result.first() is None:
                raise NotFound(f"course {course_id} not found")

    def publish(self, course_id: uuid.UUID, at: datetime) -> None:
        self._everywhere(_PUBLISH, {"course_id": course_id, "at": at})

    def archive(self, course_id: uuid.UUID, at: datetime) -> None:
        self._everywhere(_ARCHIVE, {"course_id": course_id, "at": at})

    # ------------------------------------------------------------------ reads

    def module_course(self, module_id: uuid.UUID) -> uuid.UUID:
        """Return the course of a module (NotFound when missing)."""
        course_id = self.uow.execute(
            select(CourseModule.course_id).where(CourseModule.id == module_id)
        ).scalar()
        if course_id is None:
            raise NotFound(f"module {module_id} not found")
        return uuid.UUID(str(course_id))

    def course_rows(self, course_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Mapping[Any, Any]]:
        wanted = list(course_ids)
        if not wanted:
            return {}
        rows = self.uow.execute(_COURSE_ROWS, {"ids": wanted}).mappings()
        return {row["id"]: row for row in rows}

    def partials(self, course_ids: Iterable[uuid.UUID] | None = None) -> Partials:
        """Merge every shard's course_stats for the given courses (all when None).

        A reader's: every shard is asked at once (``UnitOfWork.rows_on_shards``).
        """
        stmt, params = _PARTIALS, None
        if course_ids is not None:
            wanted = list(course_ids)
            if not wanted:
                return Partials()
            stmt, params = _PARTIALS_OF, {"ids": wanted}
        merged = Partials()
        for rows in self.uow.rows_on_shards(stmt, params).values():
            for row in rows:
                merged.add(
                    row["course_id"],
                    row["rating_sum"],
                    row["rating_count"],
                    row["enrollment_count"],
                )
        return merged

    def views(self, course_ids: Sequence[uuid.UUID]) -> list[CourseView]:
        """Return CourseViews with global statistics, in the order of ``course_ids``."""
        rows = self.course_rows(course_ids)
        merged = self.partials(rows)
        return [_view(rows[cid], merged) for cid in course_ids if cid in rows]

    def view(self, course_id: uuid.UUID) -> CourseView:
        found = self.views([course_id])
        if not found:
            raise NotFound(f"course {course_id} not found")
        return found[0]

    def category(self, category_id: uuid.UUID) -> CategoryView | None:
        row = self.uow.execute(
            select(
                CourseCategory.id,
                CourseCategory.name,
                CourseCategory.description,
                CourseCategory.parent_id,
            ).where(CourseCategory.id == category_id)
        ).first()
        return None if row is None else CategoryView(row[0], row[1], row[2], row[3])

    def curriculum(self, course_id: uuid.UUID) -> list[ModuleView]:
        modules: dict[uuid.UUID, tuple[str, int, list[LessonView]]] = {}
        rows = self.uow.execute(_CURRICULUM, {"course_id": course_id}, shard=self._catalog_shard)
        for row in rows.mappings():
            entry = modules.setdefault(
                row["module_id"], (row["module_title"], row["module_order"], [])
            )
            if row["lesson_id"] is not None:
                entry[2].append(
                    LessonView(
                        id=row["lesson_id"],
                        title=row["lesson_title"],
                        order=row["lesson_order"],
                        lesson_type=row["lesson_type"],
                        content_id=row["content_id"],
                        content_status=row["content_status"],
                        duration_minutes=row["duration_minutes"],
                        is_preview=row["is_preview"],
                    )
                )
        return [
            ModuleView(id=mid, title=title, order=order, lessons=tuple(lessons))
            for mid, (title, order, lessons) in modules.items()
        ]

    def lessons_with_content(self, content_id: str) -> list[uuid.UUID]:
        rows = self.uow.execute(
            select(CourseLesson.id).where(CourseLesson.content_id == content_id)
        )
        return [row[0] for row in rows]

    def search_candidates(self, params: Mapping[Any, Any]) -> list[uuid.UUID]:
        return [row[0] for row in self.uow.execute(_SEARCH, params, shard=self._catalog_shard)]

    def popular_rounds(self) -> PopularRounds:
        """The popular-courses rounds over this unit of work's shards (all shards at once)."""
        return PopularRounds(self.uow.router.shards, self._rows_by_shard)

    def _rows_by_shard(
        self, statement: Executable, params: Mapping[str, Any], shards: Sequence[str] | None
    ) -> Mapping[str, Sequence[Mapping[Any, Any]]]:
        return self.uow.rows_on_shards(statement, params, shards)

    def lesson_course(self, lesson_id: uuid.UUID) -> uuid.UUID | None:
        """Return the course of a lesson (None when there is no such lesson)."""
        course_id = self.uow.execute(
            select(CourseLesson.course_id).where(CourseLesson.id == lesson_id)
        ).scalar()
        return None if course_id is None else uuid.UUID(str(course_id))

    def content_lessons(self, course_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str]]:
        """Return (lesson id, content id, content status) of the course's lessons with content."""
        rows = self.uow.execute(
            select(CourseLesson.id, CourseLesson.content_id, CourseLesson.content_status).where(
                CourseLesson.course_id == course_id, CourseLesson.content_id.is_not(None)
            )
        )
        return [(row[0], row[1], row[2]) for row in rows]


def _view(row: Mapping[Any, Any], merged: Partials) -> CourseView:
    cid = row["id"]
    return CourseView(
        id=cid,
        code=row["code"],
        title=row["title"],
        description=row["description"],
        instructor_id=row["instructor_id"],
        category_id=row["category_id"],
        level=row["level"],
        price=row["price"],
        currency=row["currency"],
        status=row["status"],
        max_enrollments=row["max_enrollments"],
        duration_hours=row["duration_hours"],
        language=row["language"],
        rating=merged.rating(cid),
        rating_count=merged.rating_count.get(cid, 0),
        enrollment_count=merged.enrollments.get(cid, 0),
        published_at=row["published_at"],
        lesson_count=row["lesson_count"],
    )
