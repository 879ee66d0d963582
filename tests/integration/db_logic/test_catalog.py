"""Catalog functions: create, details, popular, search, publish, archive, curriculum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    connection,
    enroll,
    make_category,
    make_course,
    make_user,
    one,
    rows,
    scalar,
    sqlstate,
    unique,
)

CREATE = (
    "SELECT create_course(:id, :code, :title, :instructor, p_price => :price, p_level => :level,"
    " p_currency => :currency, p_max_enrollments => :capacity,"
    " p_with_seat_ledger => :ledger, p_at => :at)"
)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _create(db: Database, **overrides: object) -> object:
    params: dict[str, object] = {
        "id": ids.new_reference_id(Region.EUROPE),
        "code": unique("py-"),
        "title": "Python",
        "instructor": ids.new_id(Region.EUROPE),
        "price": Decimal("10.00"),
        "level": "beginner",
        "currency": "usd",
        "capacity": None,
        "ledger": False,
        "at": AT,
    }
    params.update(overrides)
    return scalar(db, EU, CREATE, **params)


def test_create_course_upper_cases_the_code_and_stamps_the_given_time(db: Database) -> None:
    code = unique("py-")
    course_id = _create(db, code=f" {code} ", level="Advanced")
    course = one(db, EU, "SELECT * FROM courses WHERE id = :id", id=course_id)
    assert course.code == code.upper()
    assert (course.status, course.level, course.currency) == ("draft", "advanced", "USD")
    assert course.created_at == course.updated_at == AT
    assert course.lesson_count == 0


def test_create_course_writes_a_seat_ledger_only_when_asked(db: Database) -> None:
    plain = _create(db, capacity=30)
    assert rows(db, EU, "SELECT 1 FROM course_seats WHERE course_id = :id", id=plain) == []
    ledgered = _create(db, capacity=30, ledger=True)
    seats = one(db, EU, "SELECT * FROM course_seats WHERE course_id = :id", id=ledgered)
    assert (seats.capacity, seats.taken, seats.updated_at) == (30, 0, AT)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", Decimal("-0.01"), r"price must not be negative: -0\.01"),
        ("level", "expert", "invalid level 'expert'"),
        ("code", "py 101!", "invalid course code 'py 101!'"),
        ("code", "-X", "invalid course code '-X'"),
        ("title", "  ", "course title must have 1 to 200 characters"),
        ("currency", "dollars", "invalid currency code 'dollars'"),
        ("capacity", 0, "max_enrollments must be positive: 0"),
        ("id", None, "a course id is required"),
        ("instructor", None, "an instructor id is required"),
    ],
)
def test_create_course_rejects_bad_input_with_a_clear_message(
    db: Database, field: str, value: object, message: str
) -> None:
    with sqlstate("EL400", InvalidInput, match=message):
        _create(db, **{field: value})


def test_create_course_refuses_an_id_that_is_not_a_catalog_id(db: Database) -> None:
    learner_id = ids.new_id(Region.EUROPE)
    with sqlstate("EL400", InvalidInput, match=f"{learner_id} is not a catalog"):
        _create(db, id=learner_id)


def test_create_course_with_a_taken_code_is_a_duplicate(db: Database) -> None:
    code = unique("dup-")
    _create(db, code=code)
    with sqlstate("EL412", Duplicate, match=f"course code {code.upper()} is already taken"):
        _create(db, code=code.lower())


def test_create_course_in_a_missing_category_is_not_found(db: Database) -> None:
    missing = ids.new_reference_id()
    with sqlstate("EL404", NotFound, match=f"category {missing} not found"):
        scalar(
            db,
            EU,
            "SELECT create_course(:id, :code, 'T', :i, p_category_id => :c)",
            id=ids.new_reference_id(),
            code=unique("X"),
            i=ids.new_id(Region.EUROPE),
            c=missing,
        )


def test_get_course_details_returns_the_course_and_this_shards_partials(db: Database) -> None:
    category = make_category(db)
    course = make_course(db, layout=(2, 1), category_id=category, price=25)
    for _ in range(2):
        enroll(db, make_user(db), course.id)
    details = one(db, EU, "SELECT * FROM get_course_details(:id)", id=course.id)
    assert (details.course_id, details.code, details.status) == (
        course.id,
        course.code,
        "published",
    )
    assert details.category_name.startswith("Category ")
    assert (details.lesson_count, details.module_count, details.price) == (3, 2, Decimal("25.00"))
    assert (details.local_enrollment_count, details.local_active_count) == (2, 2)
    assert (details.local_rating_sum, details.local_rating_count) == (0, 0)
    # The course was written to eu only.
    assert scalar(db, "na", "SELECT count(*) FROM courses WHERE id = :id", id=course.id) == 0


def test_get_course_details_of_a_missing_course_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT * FROM get_course_details(:id)", id=ids.new_reference_id())


def test_get_popular_courses_orders_published_courses_by_local_enrollments(
    fresh: Database,
) -> None:
    db = fresh
    quiet, busy, middle = (make_course(db) for _ in range(3))
    make_course(db, publish=False)  # drafts are never popular
    for course, learners in ((busy, 3), (middle, 2), (quiet, 0)):
        for _ in range(learners):
            enroll(db, make_user(db), course.id)
    top = rows(db, EU, "SELECT * FROM get_popular_courses(2)")
    assert [(r.course_id, r.enrollment_count) for r in top] == [(busy.id, 3), (middle.id, 2)]
    everything = rows(db, EU, "SELECT * FROM get_popular_courses(NULL)")
    assert [r.course_id for r in everything] == [busy.id, middle.id, quiet.id]
    assert rows(db, EU, "SELECT * FROM get_popular_courses(0)") == []
    with sqlstate("EL400", InvalidInput):
        rows(db, EU, "SELECT * FROM get_popular_courses(-1)")


def test_search_courses_ranks_matches_and_applies_filters(db: Database) -> None:
    cat = make_category(db)
    title_hit = make_course(db, category_id=cat, title="Practical Python Programming", price=50)
    desc_hit = make_course(
        db,
        category_id=cat,
        title="Data Wrangling",
        description="Uses python for pipelines",
        price=5,
        level="advanced",
    )
    make_course(db, category_id=cat, title="Cooking Pasta")
    make_course(db, category_id=cat, title="Python Draft", publish=False)
    found = rows(db, EU, "SELECT * FROM search_courses('python', :c)", c=cat)
    assert [r.course_id for r in found] == [title_hit.id, desc_hit.id]
    assert found[0].rank > found[1].rank > 0
    cheap = rows(db, EU, "SELECT course_id FROM search_courses('python', :c, NULL, 10)", c=cat)
    assert [r.course_id for r in cheap] == [desc_hit.id]
    advanced = rows(db, EU, "SELECT course_id FROM search_courses('python', :c, 'ADVANCED')", c=cat)
    assert [r.course_id for r in advanced] == [desc_hit.id]
    by_code = rows(db, EU, "SELECT course_id FROM search_courses(:q, :c)", q=title_hit.code, c=cat)
    assert [r.course_id for r in by_code] == [title_hit.id]


def test_search_courses_without_a_query_lists_published_courses_newest_first(
    db: Database,
) -> None:
    cat = make_category(db)
    old = make_course(db, category_id=cat, at=datetime.now(UTC) - timedelta(days=2))
    new = make_course(db, category_id=cat)
    make_course(db, category_id=cat, publish=False)
    for query in (None, "", "  \t "):
        found = rows(db, EU, "SELECT * FROM search_courses(:q, :c)", q=query, c=cat)
        assert [(r.course_id, r.rank) for r in found] == [(new.id, 0.0), (old.id, 0.0)]
    assert len(rows(db, EU, "SELECT * FROM search_courses(NULL, :c, p_limit => 1)", c=cat)) == 1


@pytest.mark.parametrize("limit", [0, 101, None, -5])
def test_search_courses_limit_must_be_between_1_and_100(db: Database, limit: int | None) -> None:
    with sqlstate("EL400", InvalidInput, match="limit must be between 1 and 100"):
        rows(db, EU, "SELECT * FROM search_courses('x', p_limit => :l)", l=limit)


def test_search_courses_rejects_an_unknown_level_and_a_negative_price(db: Database) -> None:
    with sqlstate("EL400", InvalidInput, match="invalid level 'guru'"):
        rows(db, EU, "SELECT * FROM search_courses('x', NULL, 'guru')")
    with sqlstate("EL400", InvalidInput, match="max price must not be negative"):
        rows(db, EU, "SELECT * FROM search_courses('x', NULL, NULL, -1)")


@pytest.mark.parametrize(
    "query",
    [
        "python' OR 1=1 --",
        '"python',
        "back\\slash\\",
        "&|!():*",
        "!!! ((( ))) :* <-> <2> & |",
        "'; DROP TABLE courses; --",
        "$$ $body$ %s %(x)s :name ::uuid",
        "the and of",  # stop words only
        "python " * 20_000,
        "x" * 300_000,
        "ünïcödé 中文 🙂",
    ],
)
def test_search_courses_treats_hostile_input_as_data(db: Database, query: str) -> None:
    cat = make_category(db)
    course = make_course(db, category_id=cat, title="Python Basics")
    found = rows(db, EU, "SELECT course_id FROM search_courses(:q, :c)", q=query, c=cat)
    assert {r.course_id for r in found} <= {course.id}
    assert scalar(db, EU, "SELECT count(*) FROM courses WHERE id = :id", id=course.id) == 1


def test_quoted_and_punctuated_queries_still_find_their_words(db: Database) -> None:
    cat = make_category(db)
    course = make_course(db, category_id=cat, title="Python Basics")
    for query in ('"python basics"', "python' OR 1=1 --", "(python)", "python:*", "PYTHON!"):
        found = rows(db, EU, "SELECT course_id FROM search_courses(:q, :c)", q=query, c=cat)
        assert [r.course_id for r in found] == [course.id], query


def test_publish_course_without_lessons_is_an_invalid_state(db: Database) -> None:
    course = make_course(db, layout=(), publish=False)
    with sqlstate("EL409", InvalidState, match="has no lessons"):
        scalar(db, EU, "SELECT publish_course(:id)", id=course.id)


def test_publish_course_is_idempotent_and_keeps_the_first_time(db: Database) -> None:
    course = make_course(db, publish=False)
    first = scalar(db, EU, "SELECT publish_course(:id, :at)", id=course.id, at=AT)
    again = scalar(db, EU, "SELECT publish_course(:id, :at)", id=course.id, at=AT + timedelta(1))
    assert first == again == AT
    row = one(
        db, EU, "SELECT status, published_at, updated_at FROM courses WHERE id = :id", id=course.id
    )
    assert tuple(row) == ("published", AT, AT)


def test_publish_course_of_a_missing_course_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        scalar(db, EU, "SELECT publish_course(:id)", id=ids.new_reference_id())


def test_archived_course_cannot_be_published_and_leaves_search(db: Database) -> None:
    cat = make_category(db)
    course = make_course(db, category_id=cat)
    rows(db, EU, "SELECT archive_course(:id, :at)", id=course.id, at=AT)
    rows(db, EU, "SELECT archive_course(:id, :at)", id=course.id, at=AT)  # idempotent
    assert tuple(
        one(db, EU, "SELECT status, updated_at FROM courses WHERE id = :id", id=course.id)
    ) == ("archived", AT)
    assert rows(db, EU, "SELECT * FROM search_courses(NULL, :c)", c=cat) == []
    with sqlstate("EL409", InvalidState, match="archived"):
        scalar(db, EU, "SELECT publish_course(:id)", id=course.id)


def test_archive_course_of_a_missing_course_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT archive_course(:id)", id=ids.new_reference_id())


def test_get_course_curriculum_lists_modules_and_lessons_in_order(db: Database) -> None:
    course = make_course(db, layout=(2, 0, 1))
    found = rows(db, EU, "SELECT * FROM get_course_curriculum(:id)", id=course.id)
    assert [(r.module_order, r.lesson_order) for r in found] == [(1, 1), (1, 2), (2, None), (3, 1)]
    assert [r.lesson_id for r in found if r.lesson_id] == course.lessons
    assert found[2].module_id == course.modules[1] and found[2].lesson_title is None
    assert (found[0].lesson_type, found[0].content_status, found[0].is_preview) == (
        "video",
        "none",
        False,
    )


def test_get_course_curriculum_of_a_missing_course_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT * FROM get_course_curriculum(:id)", id=ids.new_reference_id())


def test_catalog_writes_with_one_time_are_identical_on_every_shard(db: Database) -> None:
    shards = db.router.shards
    course = make_course(db, shards, at=AT)
    seen = set()
    for shard in shards:
        with connection(db, shard) as conn:
            row = conn.execute(
                text(
                    "SELECT code, status, lesson_count, published_at, created_at, updated_at"
                    " FROM courses WHERE id = :id"
                ),
                {"id": course.id},
            ).one()
            seen.add(tuple(row))
    assert seen == {(course.code, "published", 2, AT, AT, AT)}
