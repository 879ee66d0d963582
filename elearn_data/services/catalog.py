"""``db.catalog``: reference data written atomically to every shard, read locally."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from elearn_data import ids, validation
from elearn_data.analytics.merge import threshold_top_n
from elearn_data.errors import ElearnDataError, InvalidInput, NotFound
from elearn_data.models.base import LESSON_TYPES, LEVELS
from elearn_data.repositories.catalog import CatalogRepository
from elearn_data.repositories.users import UsersRepository
from elearn_data.repositories.views import CourseView, ModuleView
from elearn_data.services.base import ContentSource, OutboxRelay, Units
from elearn_data.sharding.routing import Router
from elearn_data.sharding.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9_.-]{1,31}", re.ASCII)
MAX_SEARCH_LIMIT = 100


def catalog_id(name: str, value: object) -> uuid.UUID:
    """Return ``value`` as a catalog id.

    Raises:
        InvalidInput: not a UUID.
        NotFound: a UUID that is not one of our catalog ids (it names no catalog row).
    """
    ident = validation.identifier(name, value)
    if not ids.decode(ident).reference:
        raise NotFound(f"{name} {ident} is not a catalog id")
    return ident


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    """The catalog part of the API.

    Args:
        units: runs each call as one unit of work.
        router: names the shards (a course's home shard, the local one).
        content: the content store, asked whether a lesson's content exists.
        outbox: applies the content-store work a deletion leaves in the outbox.
    """

    def __init__(
        self, units: Units, router: Router, *, content: ContentSource, outbox: OutboxRelay
    ) -> None:
        self._units = units
        self._router = router
        self._content = content
        self._outbox = outbox

    # ----------------------------------------------------------------- writes

    def create_category(
        self, name: str, description: str | None = None, parent_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Create a category on every shard; return its id.

        Raises:
            Duplicate: the name exists.
            NotFound: the parent does not exist.
        """
        clean_name = validation.required_text("name", name, max_length=100)
        clean_description = validation.text(
            "description", description, max_length=5000, required=False
        )
        parent = None if parent_id is None else catalog_id("parent_id", parent_id)
        category_id = ids.new_reference_id()
        at = _now()

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            if parent is not None and repo.category(parent) is None:
                raise NotFound(f"parent category {parent} not found")
            repo.create_category(category_id, clean_name, clean_description, parent, at)

        self._units.write(None, work)
        return category_id

    def create_course(
        self,
        *,
        code: str,
        title: str,
        instructor_id: uuid.UUID,
        description: str | None = None,
        category_id: uuid.UUID | None = None,
        level: str = "beginner",
        price: Decimal = Decimal("0"),
        currency: str = "USD",
        duration_hours: Decimal | None = None,
        max_enrollments: int | None = None,
        language: str = "English",
    ) -> uuid.UUID:
        """Create a draft course on every shard (one two-phase commit); return its id.

        The course's home region is its instructor's: the seat ledger lives there.

        Raises:
            NotFound: no such instructor or category.
            InvalidInput: the user is not an instructor, price < 0, unknown level,
                malformed code or currency.
            Duplicate: the code exists.
        """
        clean_code = validation.required_text("code", code, max_length=32)
        # ASCII before upper(): "straße".upper() is "STRASSE", another code.
        clean_code = clean_code.upper() if clean_code.isascii() else clean_code
        if not CODE_PATTERN.fullmatch(clean_code):
            raise InvalidInput(
                f"code must be 2-32 letters, digits, '-', '_' or '.': {code!r}"[:200]
            )
        instructor = validation.identifier("instructor_id", instructor_id)
        region = ids.owner_region(instructor)
        clean_currency = validation.currency("currency", currency)
        values: dict[str, Any] = {
            "code": clean_code,
            "title": validation.required_text("title", title, max_length=200),
            "instructor_id": instructor,
            "description": validation.text(
                "description", description, max_length=20000, required=False
            ),
            "category_id": None if category_id is None else catalog_id("category_id", category_id),
            "level": validation.choice("level", level, LEVELS),
            "price": validation.money("price", price),
            "currency": clean_currency,
            "duration_hours": validation.money(
                "duration_hours", duration_hours, required=False, maximum=Decimal("99999.9")
            ),
            "max_enrollments": validation.integer(
                "max_enrollments", max_enrollments, minimum=1, maximum=10_000_000, required=False
            ),
            "language": validation.required_text("language", language, max_length=50),
        }
        course_id = ids.new_reference_id(region)
        values["id"] = course_id
        home = self._router.shard_of_region(region)
        at = _now()

        def work(uow: UnitOfWork) -> None:
            # Lock the instructor's row for the rest of the transaction: a
            # concurrent role change cannot slip in between check and create.
            row = UsersRepository(uow).lock_role(instructor)
            if row is None:
                raise NotFound(f"instructor {instructor} not found")
            if row[0] != "instructor":
                raise InvalidInput(f"user {instructor} is not an instructor (role {row[0]})")
            if row[1] != "active":
                raise InvalidInput(f"instructor {instructor} is not active")
            repo = CatalogRepository(uow)
            if values["category_id"] is not None and repo.category(values["category_id"]) is None:
                raise NotFound(f"category {values['category_id']} not found")
            repo.create_course(values, home, at)

        self._units.write(home, work)
        return course_id

    def add_module(
        self, course_id: uuid.UUID, *, title: str, order: int, description: str | None = None
    ) -> uuid.UUID:
        """Add a module to a course on every shard; return its id.

        Raises:
            NotFound: no such course.
            Duplicate: the course has a module with this order.
        """
        course = catalog_id("course_id", course_id)
        clean_title = validation.required_text("title", title, max_length=200)
        clean_order = validation.required_integer("order", order, minimum=1, maximum=100_000)
        clean_description = validation.text(
            "description", description, max_length=5000, required=False
        )
        module_id = ids.new_reference_id()
        at = _now()

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            if not repo.course_rows([course]):
                raise NotFound(f"course {course} not found")
            repo.add_module(
                module_id,
                course,
                title=clean_title,
                order=clean_order,
                description=clean_description,
                at=at,
            )

        self._units.write(None, work)
        return module_id

    def add_lesson(
        self,
        module_id: uuid.UUID,
        *,
        title: str,
        order: int,
        lesson_type: str,
        content_id: str | None = None,
        duration_minutes: int | None = None,
        is_preview: bool = False,
    ) -> uuid.UUID:
        """Add a lesson to a module on every shard; return its id.

        A ``content_id`` that names no content document yet is recorded as
        ``pending`` (the lesson says so in ``curriculum()``); it becomes ``ready``
        when the content is added.

        Raises:
            NotFound: no such module.
            Duplicate: the module has a lesson with this order.
            InvalidInput: lesson type not video/reading/quiz/assignment.
        """
        module = catalog_id("module_id", module_id)
        clean_content = validation.text("content_id", content_id, max_length=64, required=False)
        values: dict[str, Any] = {
            "module_id": module,
            "title": validation.required_text("title", title, max_length=200),
            "lesson_order": validation.required_integer("order", order, minimum=1, maximum=100_000),
            "lesson_type": validation.choice("lesson_type", lesson_type, LESSON_TYPES),
            "content_id": clean_content,
            "duration_minutes": validation.integer(
                "duration_minutes", duration_minutes, minimum=0, maximum=100_000, required=False
            ),
            "is_preview": validation.flag("is_preview", is_preview),
        }
        if clean_content is None:
            values["content_status"] = "none"
        else:
            ready = self._content_ready(clean_content)
            values["content_status"] = "ready" if ready else "pending"
        lesson_id = ids.new_reference_id()
        values["id"] = lesson_id
        at = _now()

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            values["course_id"] = repo.module_course(module)
            repo.add_lesson(values, at)

        self._units.write(None, work)
        return lesson_id

    def publish(self, course_id: uuid.UUID) -> None:
        """Publish a course on every shard.

        Raises:
            NotFound: no such course.
            InvalidState: the course has no lessons, or is archived.
        """
        course = catalog_id("course_id", course_id)
        at = _now()
        self._units.write(None, lambda uow: CatalogRepository(uow).publish(course, at))

    def archive(self, course_id: uuid.UUID) -> None:
        """Archive a course on every shard (it leaves search; enrollments stay).

        Raises:
            NotFound: no such course.
        """
        course = catalog_id("course_id", course_id)
        at = _now()
        self._units.write(None, lambda uow: CatalogRepository(uow).archive(course, at))

    def set_capacity(self, course_id: uuid.UUID, max_enrollments: int | None) -> None:
        """Set (or with None remove) a course's capacity, on every shard and its seat ledger.

        The capacity counts the live (active or completed) enrollments of every
        shard, including those made while the course had no capacity; a limit
        below them is refused. One two-phase commit: every catalog copy and the
        ledger change together.

        Raises:
            NotFound: no such course.
            InvalidInput: not a positive integer, or below the live enrollments.
        """
        course = catalog_id("course_id", course_id)
        capacity = validation.integer(
            "max_enrollments", max_enrollments, minimum=1, maximum=10_000_000, required=False
        )
        at = _now()
        self._units.write(
            None, lambda uow: CatalogRepository(uow).set_capacity(course, capacity, at)
        )

    def delete_course(self, course_id: uuid.UUID) -> None:
        """Delete a course that nobody enrolled in or paid for, on every shard, and its content.

        The content documents are deleted through the outbox: if the content store
        is down, ``db.process_outbox()`` finishes the job later.

        Raises:
            NotFound: no such course.
            InvalidState: enrollments or transactions reference the course (archive it).
        """
        course = catalog_id("course_id", course_id)

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            repo.delete_course(course)
            repo.enqueue_content_deletion(course)

        self._units.write(None, work)
        self._outbox.relay_outbox([self._router.local_shard])

    # ------------------------------------------------------------------ reads

    def get_course(self, course_id: uuid.UUID) -> CourseView:
        """Return a course with its global rating and counts (merged over shards).

        Raises:
            NotFound: no such course.
        """
        course = catalog_id("course_id", course_id)
        with self._units.reader() as uow:
            return CatalogRepository(uow).view(course)

    def curriculum(self, course_id: uuid.UUID) -> list[ModuleView]:
        """Return the course's modules and lessons, in order.

        Raises:
            NotFound: no such course.
        """
        course = catalog_id("course_id", course_id)
        with self._units.reader() as uow:
            return CatalogRepository(uow).curriculum(course)

    def search(
        self,
        text: str | None = None,
        *,
        category_id: uuid.UUID | None = None,
        level: str | None = None,
        min_rating: Decimal | float | int | None = None,
        max_price: Decimal | None = None,
        limit: int = 20,
    ) -> list[CourseView]:
        """Full-text search of published courses, best match first (input is data).

        ``min_rating`` filters on the global rating among the best 100 matches.

        Raises:
            InvalidInput: a bad level, limit outside 1..100, negative price,
                rating outside 0..5.
        """
        query = validation.text("text", text, max_length=500, required=False)
        clean_limit = validation.required_integer(
            "limit", limit, minimum=1, maximum=MAX_SEARCH_LIMIT
        )
        rating_floor: Decimal | None = None
        if min_rating is not None:
            if isinstance(min_rating, bool) or not isinstance(min_rating, Decimal | float | int):
                raise InvalidInput(f"min_rating must be a number: {min_rating!r}")
            rating_floor = Decimal(str(min_rating))
            if not rating_floor.is_finite() or not 0 <= rating_floor <= 5:
                raise InvalidInput(f"min_rating must be between 0 and 5: {min_rating!r}")
        params = {
            "query": query,
            "category_id": None if category_id is None else catalog_id("category_id", category_id),
            "level": None if level is None else validation.choice("level", level, LEVELS),
            "max_price": validation.money("max_price", max_price, required=False),
            "limit": MAX_SEARCH_LIMIT if rating_floor is not None else clean_limit,
        }

        def work(uow: UnitOfWork) -> list[CourseView]:
            repo = CatalogRepository(uow)
            found = repo.views(repo.search_candidates(params))
            if rating_floor is not None:
                found = [c for c in found if c.rating is not None and c.rating >= rating_floor]
            return found[:clean_limit]

        with self._units.reader() as uow:
            return work(uow)

    def popular(self, limit: int = 10) -> list[CourseView]:
        """Return published courses by global enrollments (merged over shards), most first.

        The ranking is the threshold top N of
        :func:`~elearn_data.analytics.merge.threshold_top_n` over every shard's
        partial counts (it cannot miss a course that is popular everywhere but
        first nowhere), read with the views in one snapshot per shard. Ties go
        to the lower course id; when fewer than ``limit`` courses have
        enrollments, courses without any fill the list (lowest ids first).

        Raises:
            InvalidInput: limit is not an integer in 1..1000.
        """
        clean_limit = validation.required_integer("limit", limit, minimum=1, maximum=1000)

        def work(uow: UnitOfWork) -> list[CourseView]:
            repo = CatalogRepository(uow)
            rounds = repo.popular_rounds()
            top = threshold_top_n(
                clean_limit,
                len(rounds.shards),
                rounds.local_top,
                rounds.above,
                rounds.exact,
                fill=rounds.fill,
            )
            return repo.views([course for course, _ in top.ranked])

        with self._units.reader(None, snapshot=True) as uow:
            return work(uow)

    # ---------------------------------------------------------------- helpers

    def _content_ready(self, content_id: str) -> bool:
        """Return True when the content document exists (False if the store is down)."""
        try:
            return content_id in self._content.content_store.content.exists([content_id])
        except ElearnDataError as exc:
            log.warning("content store unavailable, lesson content marked pending: %s", exc)
            return False
