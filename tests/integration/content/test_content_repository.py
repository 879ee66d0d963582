"""ContentRepository: videos, documents and quizzes of lessons, and their counters."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from elearn_data.content import ContentStore, ContentView, QuizQuestion, Subtitle
from elearn_data.errors import Duplicate, InvalidInput, NotFound
from tests.integration.content.factories import add_document, add_quiz, add_video

# ------------------------------------------------------------------------- adding


def test_add_video_returns_its_id_and_get_reads_every_field_back(store: ContentStore) -> None:
    course_id, lesson_id = uuid4(), uuid4()
    before = datetime.now(UTC) - timedelta(seconds=1)

    content_id = store.content.add_video(
        content_id="intro-video",
        course_id=course_id,
        lesson_id=lesson_id,
        title="Introduction",
        video_url="https://videos.example.com/intro.mp4",
        duration_seconds=900,
        thumbnail_url="https://images.example.com/thumb.jpg",
        subtitles=[
            {"language": "en", "url": "https://subs.example.com/en.vtt"},
            Subtitle("pt-BR", "https://subs.example.com/pt.vtt"),
        ],
        quality_options=["720p", "1080p", "4k"],
    )
    view = store.content.get(content_id)

    assert content_id == "intro-video"
    assert isinstance(view, ContentView)
    assert view.content_type == "video"
    assert (view.course_id, view.lesson_id, view.title) == (course_id, lesson_id, "Introduction")
    assert view.video_url == "https://videos.example.com/intro.mp4"
    assert view.duration_seconds == 900
    assert view.thumbnail_url == "https://images.example.com/thumb.jpg"
    assert view.subtitles == (
        Subtitle("en", "https://subs.example.com/en.vtt"),
        Subtitle("pt-BR", "https://subs.example.com/pt.vtt"),
    )
    assert view.quality_options == ("720p", "1080p", "4k")
    assert (view.views, view.downloads) == (0, 0)
    assert view.created_at.tzinfo is not None and view.created_at.utcoffset() == timedelta(0)
    assert before <= view.created_at <= datetime.now(UTC)
    assert view.updated_at == view.created_at
    assert (view.document_url, view.questions) == (None, ())


def test_add_document_stores_type_size_and_page_count(store: ContentStore) -> None:
    content_id = add_document(
        store, document_type="slides", file_size_bytes=0, page_count=50, content_id="notes"
    )

    view = store.content.get(content_id)

    assert view.content_type == "document"
    assert view.document_url == "https://docs.example.com/notes.pdf"
    assert (view.document_type, view.file_size_bytes, view.page_count) == ("slides", 0, 50)
    assert (view.video_url, view.duration_seconds) == (None, None)


def test_add_document_without_page_count_reads_back_none(store: ContentStore) -> None:
    view = store.content.get(add_document(store, document_type="html"))

    assert view.page_count is None


def test_add_quiz_accepts_mappings_and_question_views(store: ContentStore) -> None:
    content_id = add_quiz(
        store,
        questions=[
            {"question": "Capital of France?", "options": ["Paris", "Rome"], "correct_option": 0},
            QuizQuestion("Largest planet?", ("Mars", "Jupiter", "Venus"), 1, points=3),
        ],
    )

    view = store.content.get(content_id)

    assert view.content_type == "quiz"
    assert view.questions == (
        QuizQuestion("Capital of France?", ("Paris", "Rome"), 0, 1),
        QuizQuestion("Largest planet?", ("Mars", "Jupiter", "Venus"), 1, 3),
    )


def test_adding_an_existing_content_id_raises_duplicate_even_for_another_type(
    store: ContentStore,
) -> None:
    add_video(store, content_id="shared-id", title="First")

    with pytest.raises(Duplicate, match="shared-id"):
        add_video(store, content_id="shared-id", title="Second")
    with pytest.raises(Duplicate, match="shared-id"):
        add_document(store, content_id="shared-id")

    assert store.content.get("shared-id").title == "First"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"video_url": "ftp://videos.example.com/a.mp4"}, "ftp"),
        ({"video_url": "javascript:alert(1)"}, "javascript"),
        ({"video_url": "not a url"}, "not a url"),
        ({"thumbnail_url": "file:///etc/passwd"}, "file"),
        ({"subtitles": [{"language": "en", "url": "ftp://x.example.com/en.vtt"}]}, "ftp"),
        ({"duration_seconds": -1}, "-1"),
        ({"duration_seconds": 12.5}, "12.5"),
        ({"quality_options": ["best"]}, "best"),
        ({"subtitles": [{"lang": "en"}]}, "lang"),
        ({"course_id": "not-a-uuid"}, "not-a-uuid"),
        ({"content_id": ""}, "content_id"),
        ({"title": ""}, "title"),
    ],
)
def test_invalid_video_raises_invalid_input_naming_the_value_and_writes_nothing(
    store: ContentStore, overrides: dict[str, Any], named: str
) -> None:
    course_id = uuid4()
    overrides = {"course_id": course_id, **overrides}

    with pytest.raises(InvalidInput, match=named):
        add_video(store, **overrides)

    if isinstance(overrides["course_id"], UUID):
        assert store.content.for_course(overrides["course_id"]) == []


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"document_url": "ftp://docs.example.com/a.pdf"}, "ftp"),
        ({"file_size_bytes": -5}, "-5"),
        ({"file_size_bytes": "100"}, "'100'"),
        ({"page_count": -1}, "-1"),
        ({"document_type": "exe"}, "exe"),
    ],
)
def test_invalid_document_raises_invalid_input_naming_the_value_and_writes_nothing(
    store: ContentStore, overrides: dict[str, Any], named: str
) -> None:
    course_id = uuid4()

    with pytest.raises(InvalidInput, match=named):
        add_document(store, course_id=course_id, **overrides)

    assert store.content.for_course(course_id) == []


@pytest.mark.parametrize(
    ("questions", "named"),
    [
        ([], "no questions"),
        ([{"question": "Q?", "options": ["only"], "correct_option": 0}], "at least 2 options"),
        ([{"question": "Q?", "options": ["a", "b"], "correct_option": 2}], "outside"),
        ([{"question": "Q?", "options": ["a", "b"], "correct_option": -1}], "-1"),
        ([{"question": "Q?", "options": ["a", "b"], "correct_option": 0, "points": -2}], "-2"),
        ([{"question": "", "options": ["a", "b"], "correct_option": 0}], "question"),
        ([{"question": "Q?", "options": "ab", "correct_option": 0}], "options"),
        ([{"question": "Q?", "correct_option": 0}], "missing keys"),
        ({"question": "Q?"}, "list of questions"),
    ],
)
def test_bad_quiz_raises_invalid_input_and_writes_nothing(
    store: ContentStore, questions: Any, named: str
) -> None:
    course_id = uuid4()

    with pytest.raises(InvalidInput, match=named):
        add_quiz(store, course_id=course_id, questions=questions)

    assert store.content.for_course(course_id) == []


# -------------------------------------------------------------------------- reads


def test_get_of_an_unknown_content_id_raises_not_found(store: ContentStore) -> None:
    with pytest.raises(NotFound, match="no-such-content"):
        store.content.get("no-such-content")


def test_a_query_operator_in_place_of_a_content_id_is_rejected(store: ContentStore) -> None:
    add_video(store)

    with pytest.raises(InvalidInput):
        store.content.get({"$gt": ""})  # type: ignore[arg-type]


def test_for_course_and_for_lesson_return_only_their_content_oldest_first(
    store: ContentStore,
) -> None:
    course_id, lesson_a, lesson_b = uuid4(), uuid4(), uuid4()
    first = add_video(store, course_id=course_id, lesson_id=lesson_a)
    second = add_document(store, course_id=course_id, lesson_id=lesson_a)
    third = add_quiz(store, course_id=course_id, lesson_id=lesson_b)
    add_video(store)  # another course

    by_course = store.content.for_course(course_id)
    by_lesson = store.content.for_lesson(lesson_a)

    assert [v.content_id for v in by_course] == [first, second, third]
    assert [v.content_type for v in by_course] == ["video", "document", "quiz"]
    assert [v.content_id for v in by_lesson] == [first, second]
    assert store.content.for_lesson(uuid4()) == []
    assert store.content.for_course(uuid4()) == []


def test_exists_returns_the_subset_of_ids_that_exist(store: ContentStore) -> None:
    video = add_video(store)
    quiz = add_quiz(store)

    assert store.content.exists([video, "missing", quiz, video]) == {video, quiz}
    assert store.content.exists([]) == set()
    assert store.content.exists(["missing"]) == set()


# ----------------------------------------------------------------------- counters


def test_record_view_and_record_download_increment_their_own_counter(
    store: ContentStore,
) -> None:
    content_id = add_document(store)

    store.content.record_view(content_id)
    store.content.record_view(content_id)
    store.content.record_download(content_id)
    view = store.content.get(content_id)

    assert (view.views, view.downloads) == (2, 1)


def test_record_view_or_download_of_unknown_content_raises_not_found(
    store: ContentStore,
) -> None:
    with pytest.raises(NotFound, match="ghost"):
        store.content.record_view("ghost")
    with pytest.raises(NotFound, match="ghost"):
        store.content.record_download("ghost")


def test_record_view_from_20_threads_counts_every_view(store: ContentStore) -> None:
    content_id = add_video(store)
    threads_count, per_thread = 20, 25
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def view_many() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                store.content.record_view(content_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=view_many) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.content.get(content_id).views == threads_count * per_thread


# ------------------------------------------------------------------------ deletes


def test_delete_for_course_removes_only_that_course_and_returns_the_count(
    store: ContentStore,
) -> None:
    course_id = uuid4()
    add_video(store, course_id=course_id)
    add_document(store, course_id=course_id)
    add_quiz(store, course_id=course_id)
    other = add_video(store)

    assert store.content.delete_for_course(course_id) == 3
    assert store.content.for_course(course_id) == []
    assert store.content.get(other).content_id == other
    assert store.content.delete_for_course(course_id) == 0


def test_delete_removes_one_content_and_is_idempotent(store: ContentStore) -> None:
    content_id = add_video(store)
    kept = add_video(store)

    assert store.content.delete(content_id) is True
    assert store.content.delete(content_id) is False
    with pytest.raises(NotFound):
        store.content.get(content_id)
    assert store.content.exists([content_id, kept]) == {kept}


def test_a_deleted_content_id_can_be_used_again(store: ContentStore) -> None:
    add_video(store, content_id="reused")
    store.content.delete("reused")

    add_document(store, content_id="reused")

    assert store.content.get("reused").content_type == "document"
