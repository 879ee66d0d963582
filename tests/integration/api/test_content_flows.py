"""Content and preferences with PostgreSQL: references stay true when MongoDB fails half way."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from elearn_data.database import Database
from elearn_data.errors import InvalidInput, InvalidState, NotFound
from elearn_data.models import ContentOutbox, Course
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import published_course, register


def pending_outbox(db: Database) -> int:
    stmt = select(func.count()).where(ContentOutbox.processed_at.is_(None))
    with db.writer() as uow:
        return int(sum_over_shards(uow, stmt))


def lesson_statuses(db: Database, course: uuid.UUID) -> list[str]:
    return [lesson.content_status for m in db.catalog.curriculum(course) for lesson in m.lessons]


def test_a_lesson_video_is_pending_until_its_content_exists_and_views_are_counted(
    clean: Database,
) -> None:
    instructor = register(clean, "europe", role="instructor")
    course = clean.catalog.create_course(code="VID-1", title="Video", instructor_id=instructor)
    module = clean.catalog.add_module(course, title="M", order=1)
    lesson = clean.catalog.add_lesson(
        module, title="Intro", order=1, lesson_type="video", content_id="vid-intro"
    )
    assert lesson_statuses(clean, course) == ["pending"]
    clean.content.add_video(
        content_id="vid-intro",
        course_id=course,
        lesson_id=lesson,
        title="Introduction",
        video_url="https://videos.example.org/intro.mp4",
        duration_seconds=900,
    )
    assert lesson_statuses(clean, course) == ["ready"]
    for _ in range(3):
        clean.content.record_view("vid-intro")
    assert clean.content.get("vid-intro").views == 3
    assert [c.content_id for c in clean.content.for_course(course)] == ["vid-intro"]
    # A lesson added after its content exists is ready at once.
    later = clean.catalog.add_lesson(
        module, title="Again", order=2, lesson_type="video", content_id="vid-intro"
    )
    assert later is not None
    assert lesson_statuses(clean, course) == ["ready", "ready"]


def test_content_must_belong_to_a_lesson_of_its_course(clean: Database) -> None:
    course, lessons = published_course(clean)
    other, _ = published_course(clean)
    with pytest.raises(InvalidInput):
        clean.content.add_document(
            content_id="doc-1",
            course_id=other,
            lesson_id=lessons[0],
            title="Notes",
            document_url="https://docs.example.org/notes.pdf",
            document_type="pdf",
            file_size_bytes=1024,
        )
    with pytest.raises(InvalidInput):
        clean.content.add_document(
            content_id="doc-1",
            course_id=course,
            lesson_id=lessons[0],
            title="Notes",
            document_url="ftp://docs.example.org/notes.pdf",
            document_type="pdf",
            file_size_bytes=1024,
        )
    assert clean.content.for_course(course) == []


def test_registration_creates_preferences_and_partial_updates_keep_the_rest(
    clean: Database,
) -> None:
    course, _ = published_course(clean)
    user = register(clean, "asia")
    prefs = clean.preferences.get(user)
    assert prefs.wishlist == () and prefs.recently_viewed == ()
    clean.preferences.add_to_wishlist(user, course)
    clean.preferences.add_to_wishlist(user, course)
    clean.preferences.set_notifications(user, push=True)
    clean.preferences.set_learning(user, preferred_categories=["programming"], learning_pace="fast")
    clean.preferences.record_viewed(user, course)
    prefs = clean.preferences.get(user)
    assert prefs.wishlist == (course,)
    assert prefs.notifications.push is True
    assert prefs.learning.preferred_categories == ("programming",)
    assert prefs.learning.learning_pace == "fast"
    assert prefs.recently_viewed == (course,)
    with pytest.raises(NotFound):
        clean.preferences.get(uuid.uuid4())
    with pytest.raises(NotFound):
        clean.preferences.add_to_wishlist(user, uuid.uuid4())


def test_registration_survives_a_content_store_failure_and_the_outbox_repairs_it(
    clean: Database,
) -> None:
    clean.content_store.faults.fail_next(5, operation="preferences.ensure")
    user = register(clean, "africa")
    clean.wait_idle()  # the relay's first attempt met the failure
    assert pending_outbox(clean) == 1
    clean.content_store.faults.clear()
    assert clean.process_outbox() == 1
    assert pending_outbox(clean) == 0
    assert clean.preferences.get(user).user_id == user


def test_deleting_a_course_deletes_its_content_even_after_a_content_store_failure(
    clean: Database,
) -> None:
    instructor = register(clean, "europe", role="instructor")
    course = clean.catalog.create_course(code="DEL-1", title="Deleted", instructor_id=instructor)
    module = clean.catalog.add_module(course, title="M", order=1)
    lesson = clean.catalog.add_lesson(module, title="L", order=1, lesson_type="quiz")
    clean.content.add_quiz(
        content_id="quiz-1",
        course_id=course,
        lesson_id=lesson,
        title="Quiz",
        questions=[{"question": "2+2?", "options": ["3", "4"], "correct_option": 1, "points": 1}],
    )
    clean.content_store.faults.fail_next(3, operation="content.delete_for_course")
    clean.catalog.delete_course(course)
    with clean.writer() as uow:
        left = sum_over_shards(uow, select(func.count()).where(Course.id == course))
    assert left == 0
    assert pending_outbox(clean) == 1
    clean.content_store.faults.clear()
    clean.process_outbox()
    assert clean.content_store.content.exists(["quiz-1"]) == set()
    assert pending_outbox(clean) == 0


def test_a_course_with_enrollments_cannot_be_deleted(clean: Database) -> None:
    course, _ = published_course(clean)
    clean.enrollments.enroll(register(clean, "europe"), course)
    with pytest.raises(InvalidState):
        clean.catalog.delete_course(course)


def test_delete_for_course_marks_lessons_pending_before_the_documents_go(
    clean: Database,
) -> None:
    instructor = register(clean, "oceania", role="instructor")
    course = clean.catalog.create_course(code="PEND-1", title="P", instructor_id=instructor)
    module = clean.catalog.add_module(course, title="M", order=1)
    lesson = clean.catalog.add_lesson(
        module, title="L", order=1, lesson_type="video", content_id="v-9"
    )
    clean.content.add_video(
        content_id="v-9",
        course_id=course,
        lesson_id=lesson,
        title="v",
        video_url="https://v.example.org/9.mp4",
        duration_seconds=10,
    )
    assert lesson_statuses(clean, course) == ["ready"]
    clean.content_store.faults.fail_next(1, operation="content.delete_for_course")
    clean.content.delete_for_course(course)
    # MongoDB refused: the document is still there, but no lesson claims it is ready.
    assert clean.content_store.content.exists(["v-9"]) == {"v-9"}
    assert lesson_statuses(clean, course) == ["pending"]
    clean.process_outbox()
    assert clean.content_store.content.exists(["v-9"]) == set()
    assert pending_outbox(clean) == 0
