"""db.catalog: replicated writes, local reads, global statistics, search."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.models import Course, CourseLesson, CourseModule
from elearn_data.regions import Region
from tests.integration.api.helpers import published_course, register


def rows_per_shard(db: Database, model: type, **where: object) -> dict[str, int]:
    stmt = select(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    with db.writer() as uow:
        return {shard: len(uow.execute(stmt, shard=shard).all()) for shard in db.router.shards}


def test_course_module_and_lesson_exist_identically_on_every_shard(clean: Database) -> None:
    course, _ = published_course(clean, instructor_region="africa", lessons=2)
    assert rows_per_shard(clean, Course, id=course) == {"na": 1, "eu": 1, "apac": 1}
    assert rows_per_shard(clean, CourseLesson, course_id=course) == {"na": 2, "eu": 2, "apac": 2}
    snapshots = set()
    with clean.writer() as uow:
        for shard in clean.router.shards:
            row = uow.execute(
                select(Course.code, Course.status, Course.published_at, Course.created_at).where(
                    Course.id == course
                ),
                shard=shard,
            ).one()
            snapshots.add(tuple(row))
    assert len(snapshots) == 1  # same values, timestamps included


def test_a_catalog_write_that_fails_on_one_shard_leaves_no_shard_changed(
    clean: Database, cluster: LocalCluster
) -> None:
    instructor = register(clean, "europe", role="instructor")
    # Plant a conflicting code on one shard only: that shard's insert fails.
    state = cluster.state()
    conn = cluster.admin_connect(state.primary_of("na"), dbname="elearn")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO courses (id, code, title, instructor_id) VALUES (%s, 'CLASH-1', 't', %s)",
            (str(ids.new_reference_id()), str(instructor)),
        )
    conn.close()
    with pytest.raises(Duplicate):
        clean.catalog.create_course(code="clash-1", title="Atomic", instructor_id=instructor)
    counts = rows_per_shard(clean, Course, code="CLASH-1")
    assert counts == {"na": 1, "eu": 0, "apac": 0}


def test_create_course_validates_the_instructor_and_the_values(clean: Database) -> None:
    student = register(clean, "europe")
    instructor = register(clean, "europe", role="instructor")
    with pytest.raises(NotFound):
        clean.catalog.create_course(code="X-1", title="t", instructor_id=ids.new_id(Region.ASIA))
    with pytest.raises(InvalidInput, match="not an instructor"):
        clean.catalog.create_course(code="X-1", title="t", instructor_id=student)
    with pytest.raises(InvalidInput, match="price"):
        clean.catalog.create_course(
            code="X-1", title="t", instructor_id=instructor, price=Decimal("-1")
        )
    with pytest.raises(InvalidInput, match="level"):
        clean.catalog.create_course(code="X-1", title="t", instructor_id=instructor, level="guru")
    with pytest.raises(InvalidInput, match="code"):
        clean.catalog.create_course(
            code="'; DROP TABLE courses", title="t", instructor_id=instructor
        )
    clean.catalog.create_course(code="X-1", title="t", instructor_id=instructor)
    with pytest.raises(Duplicate):
        clean.catalog.create_course(code="x-1", title="again", instructor_id=instructor)


def test_modules_and_lessons_are_ordered_and_unique(clean: Database) -> None:
    instructor = register(clean, "asia", role="instructor")
    course = clean.catalog.create_course(code="ORD-1", title="Order", instructor_id=instructor)
    m2 = clean.catalog.add_module(course, title="Second", order=2)
    m1 = clean.catalog.add_module(course, title="First", order=1)
    with pytest.raises(Duplicate):
        clean.catalog.add_module(course, title="Clash", order=1)
    with pytest.raises(NotFound):
        clean.catalog.add_module(ids.new_reference_id(), title="x", order=1)
    clean.catalog.add_lesson(m1, title="B", order=2, lesson_type="reading")
    clean.catalog.add_lesson(m1, title="A", order=1, lesson_type="quiz", duration_minutes=5)
    with pytest.raises(Duplicate):
        clean.catalog.add_lesson(m1, title="Again", order=1, lesson_type="video")
    with pytest.raises(InvalidInput, match="lesson_type"):
        clean.catalog.add_lesson(m2, title="x", order=1, lesson_type="podcast")
    with pytest.raises(NotFound):
        clean.catalog.add_lesson(ids.new_reference_id(), title="x", order=1, lesson_type="video")
    curriculum = clean.catalog.curriculum(course)
    assert [(m.title, m.order) for m in curriculum] == [("First", 1), ("Second", 2)]
    assert [lesson.title for lesson in curriculum[0].lessons] == ["A", "B"]
    assert curriculum[1].lessons == ()
    assert rows_per_shard(clean, CourseModule, course_id=course) == {"na": 2, "eu": 2, "apac": 2}


def test_publishing_needs_lessons_and_archiving_hides_the_course(clean: Database) -> None:
    instructor = register(clean, "europe", role="instructor")
    course = clean.catalog.create_course(code="EMPTY-1", title="Empty", instructor_id=instructor)
    with pytest.raises(InvalidState):
        clean.catalog.publish(course)
    with pytest.raises(NotFound):
        clean.catalog.publish(ids.new_reference_id())
    published, _ = published_course(clean, title="Visible things")
    assert clean.catalog.get_course(published).status == "published"
    assert clean.catalog.get_course(published).published_at is not None
    assert [c.id for c in clean.catalog.search("visible")] == [published]
    clean.catalog.archive(published)
    assert clean.catalog.get_course(published).status == "archived"
    assert clean.catalog.search("visible") == []


def test_get_course_reports_global_rating_and_counts(clean: Database) -> None:
    course, _ = published_course(clean, instructor_region="europe")
    ratings = {"north_america": [5, 4], "europe": [3], "asia": [5, 5, 2]}
    for region, values in ratings.items():
        for rating in values:
            learner = register(clean, region)
            enrollment = clean.enrollments.enroll(learner, course)
            clean.reviews.add(enrollment, rating, "fine")
    view = clean.catalog.get_course(course)
    everything = [r for values in ratings.values() for r in values]
    assert view.rating_count == len(everything) == 6
    assert view.enrollment_count == 6
    # Sum of sums over count of counts: 24 / 6 = 4.00 (a mean of the three regional
    # means would say 3.83).
    assert view.rating == Decimal("4.00")


def test_search_ranks_filters_and_treats_input_as_data(clean: Database) -> None:
    python, _ = published_course(
        clean,
        title="Python for Beginners",
        description="Learn Python programming",
        price=Decimal("10"),
    )
    data, _ = published_course(
        clean, title="Data Science", description="pandas and python notebooks", price=Decimal("90")
    )
    published_course(clean, title="Cooking", description="Knives and onions")
    found = clean.catalog.search("python")
    assert [c.id for c in found] == [python, data]
    assert [c.id for c in clean.catalog.search("python", max_price=Decimal("50"))] == [python]
    assert clean.catalog.search("python", level="advanced") == []
    for hostile in [
        "'; DROP TABLE courses; --",
        "a & | ! ( ) : *",
        "\\",
        '"unterminated',
        "x" * 500,
    ]:
        assert isinstance(clean.catalog.search(hostile), list)
    with pytest.raises(InvalidInput):
        clean.catalog.search("python", limit=0)
    with pytest.raises(InvalidInput):
        clean.catalog.search("python", min_rating=6)
    with pytest.raises(InvalidInput):
        clean.catalog.search("nul\x00byte")


def test_search_min_rating_uses_the_global_rating(clean: Database) -> None:
    good, _ = published_course(clean, title="Rust good")
    bad, _ = published_course(clean, title="Rust bad")
    for course, rating, region in [(good, 5, "asia"), (good, 4, "europe"), (bad, 2, "africa")]:
        enrollment = clean.enrollments.enroll(register(clean, region), course)
        clean.reviews.add(enrollment, rating)
    assert [c.id for c in clean.catalog.search("rust", min_rating=4)] == [good]


def test_popular_ranks_by_global_enrollments(clean: Database) -> None:
    a, _ = published_course(clean, title="A")
    b, _ = published_course(clean, title="B")
    # b: 3 learners, all in one region; a: 4 learners spread over three shards.
    for region in ["north_america", "europe", "asia", "asia"]:
        clean.enrollments.enroll(register(clean, region), a)
    for _ in range(3):
        clean.enrollments.enroll(register(clean, "europe"), b)
    ranked = clean.catalog.popular(limit=2)
    assert [c.id for c in ranked] == [a, b]
    assert [c.enrollment_count for c in ranked] == [4, 3]


def test_categories_are_unique_and_nest(clean: Database) -> None:
    root = clean.catalog.create_category("Programming", "Code")
    child = clean.catalog.create_category("Python", parent_id=root)
    assert child != root
    with pytest.raises(Duplicate):
        clean.catalog.create_category("Programming")
    with pytest.raises(NotFound):
        clean.catalog.create_category("Orphan", parent_id=ids.new_reference_id())
    with pytest.raises(NotFound):
        clean.catalog.get_course(uuid.uuid4())
