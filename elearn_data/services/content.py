"""``db.content`` and ``db.preferences``: the content store, kept consistent with PostgreSQL.

Cross-store rules (see docs/architecture.md, "Cross-store consistency"):

* A lesson's ``content_id`` names an existing content document (``ready``) or
  says it is ``pending``. Adding content marks the lessons that name it ready;
  deleting a course's content first marks its lessons pending (PostgreSQL), then
  deletes the documents (MongoDB) through the outbox -- so a lesson never says
  ``ready`` for a document that is gone.
* A user's preferences document is created from the registration's outbox
  entry; a learner whose entry has not been applied yet (MongoDB was down) gets
  the document on first use.
* A course deleted in PostgreSQL leaves an outbox entry that deletes its content
  documents, retried until MongoDB accepts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from elearn_data import validation
from elearn_data.content import (
    ContentRepository,
    ContentView,
    PreferencesRepository,
    PreferencesView,
)
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.repositories.catalog import CatalogRepository
from elearn_data.repositories.users import UsersRepository
from elearn_data.services.base import ContentSource, OutboxRelay, Units
from elearn_data.services.catalog import catalog_id
from elearn_data.services.learning import owned_id
from elearn_data.sharding.routing import Router
from elearn_data.sharding.unit_of_work import UnitOfWork

T = TypeVar("T")

# Found by tests/integration/test_fuzz_api.py: arguments the content store let
# through as driver errors instead of InvalidInput. mongoengine's URLField calls
# value.split() and a StringField with choices puts the value in a set before
# any type check (TypeError/AttributeError for bytes, int or dict values); BSON
# refuses ints beyond 64 bits (OverflowError) and mongoengine has no upper bound
# on these fields; a content id with a NUL character was stored in MongoDB and
# then failed in PostgreSQL (psycopg2's ValueError) when the lessons naming it
# were marked ready. Only types, the int64 range and NULs are checked here; the
# store's documents validate the values themselves.
_CONTENT_STRINGS = ("video_url", "thumbnail_url", "document_url", "document_type")
_CONTENT_INTS = ("duration_seconds", "file_size_bytes", "page_count")
_LEARNING_STRINGS = ("difficulty_level", "learning_pace")
_INT64 = range(-(2**63), 2**63)
_MAX_CONTENT_ID = 128  # CourseContent.content_id


def _require_strings(fields: dict[str, Any], names: tuple[str, ...]) -> None:
    """Raise InvalidInput when one of ``names`` is given and is not a string (None passes)."""
    for name in names:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")


def _require_int64(name: str, value: object) -> None:
    if isinstance(value, int) and value not in _INT64:
        raise InvalidInput(f"{name} is out of range: {value}")


def _check_content(fields: dict[str, Any]) -> None:
    validation.text("content_id", fields.get("content_id"), max_length=_MAX_CONTENT_ID, strip=False)
    _require_strings(fields, _CONTENT_STRINGS)
    for name in _CONTENT_INTS:
        _require_int64(name, fields.get(name))
    subtitles = fields.get("subtitles", ())
    if isinstance(subtitles, str | bytes | Mapping) or not isinstance(subtitles, Iterable):
        raise InvalidInput(f"subtitles must be a list of subtitles, not {type(subtitles).__name__}")
    for item in subtitles if isinstance(subtitles, list | tuple) else ():
        url = item.get("url") if isinstance(item, Mapping) else getattr(item, "url", None)
        if url is not None and not isinstance(url, str):
            raise InvalidInput(f"subtitle url must be a string, not {type(url).__name__}")
    questions = fields.get("questions", ())
    for item in questions if isinstance(questions, list | tuple) else ():
        points = item.get("points") if isinstance(item, Mapping) else getattr(item, "points", None)
        _require_int64("points", points)


class Content:
    """The content part of the API (documents in the content store).

    Args:
        units: runs the PostgreSQL side of each call (lessons' content status).
        router: names the shard whose outbox a deletion writes (the local one).
        content: the content store.
        outbox: applies the deletions recorded in the outbox.
    """

    def __init__(
        self, units: Units, router: Router, *, content: ContentSource, outbox: OutboxRelay
    ) -> None:
        self._units = units
        self._router = router
        self._content = content
        self._outbox = outbox

    @property
    def _store(self) -> ContentRepository:
        return self._content.content_store.content

    def _check_lesson(self, course_id: uuid.UUID, lesson_id: uuid.UUID) -> None:
        with self._units.reader() as uow:
            found = CatalogRepository(uow).lesson_course(lesson_id)
        if found is None:
            raise NotFound(f"lesson {lesson_id} not found")
        if found != course_id:
            raise InvalidInput(f"lesson {lesson_id} is not in course {course_id}")

    def _mark_ready(self, content_id: str) -> None:
        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            repo.set_content_status(repo.lessons_with_content(content_id), "ready")

        self._units.write(None, work)

    def _add(self, kind: Callable[..., str], fields: dict[str, Any]) -> str:
        _check_content(fields)
        course = catalog_id("course_id", fields["course_id"])
        lesson = catalog_id("lesson_id", fields["lesson_id"])
        self._check_lesson(course, lesson)
        fields = {**fields, "course_id": course, "lesson_id": lesson}
        # MongoDB first: once the document exists, marking lessons ready can only
        # make a true statement. If that second step fails, the lessons stay
        # "pending" (stale, not dangling) until sync_lessons() runs.
        content_id = kind(**fields)
        self._mark_ready(content_id)
        return content_id

    def add_video(self, **fields: Any) -> str:
        """Store a video for a lesson; return its content id.

        Raises:
            NotFound: no such course or lesson.
            InvalidInput: the lesson is in another course, a bad URL, a negative duration.
            Duplicate: the content id exists.
        """
        return self._add(self._store.add_video, fields)

    def add_document(self, **fields: Any) -> str:
        """Store a document for a lesson; return its content id (errors as add_video)."""
        return self._add(self._store.add_document, fields)

    def add_quiz(self, **fields: Any) -> str:
        """Store a quiz for a lesson; return its content id (errors as add_video)."""
        return self._add(self._store.add_quiz, fields)

    def get(self, content_id: str) -> ContentView:
        """Return one content document. Raises NotFound."""
        return self._store.get(content_id)

    def for_course(self, course_id: uuid.UUID) -> list[ContentView]:
        """Return the content documents of a course."""
        return self._store.for_course(catalog_id("course_id", course_id))

    def for_lesson(self, lesson_id: uuid.UUID) -> list[ContentView]:
        """Return the content documents of a lesson."""
        return self._store.for_lesson(catalog_id("lesson_id", lesson_id))

    def record_view(self, content_id: str) -> None:
        """Count one view (an atomic increment). Raises NotFound."""
        self._store.record_view(content_id)

    def record_download(self, content_id: str) -> None:
        """Count one download (an atomic increment). Raises NotFound."""
        self._store.record_download(content_id)

    def delete_for_course(self, course_id: uuid.UUID) -> None:
        """Delete a course's content: its lessons become pending first, then the documents go.

        The deletion itself is an outbox entry: if MongoDB fails, it is retried by
        ``db.process_outbox()`` and the lessons stay pending meanwhile.
        """
        course = catalog_id("course_id", course_id)

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            lessons = [lesson for lesson, _, _ in repo.content_lessons(course)]
            repo.set_content_status(lessons, "pending")
            repo.enqueue_content_deletion(course)

        self._units.write(None, work)
        self._outbox.relay_outbox([self._router.local_shard])

    def sync_lessons(self, course_id: uuid.UUID) -> int:
        """Recompute ready/pending for a course's lessons from the content store; return changes."""
        course = catalog_id("course_id", course_id)

        with self._units.reader() as uow:
            current = CatalogRepository(uow).content_lessons(course)
        present = self._store.exists([content for _, content, _ in current])
        ready = [
            lid for lid, content, status in current if content in present and status != "ready"
        ]
        pending = [
            lid
            for lid, content, status in current
            if content not in present and status != "pending"
        ]

        def work(uow: UnitOfWork) -> None:
            repo = CatalogRepository(uow)
            repo.set_content_status(ready, "ready")
            repo.set_content_status(pending, "pending")

        if ready or pending:
            self._units.write(None, work)
        return len(ready) + len(pending)


class Preferences:
    """The preferences part of the API (one document per learner).

    Args:
        units: runs the PostgreSQL checks (the user and the course exist).
        router: names the learner's home shard.
        content: the content store, which holds the documents.
    """

    def __init__(self, units: Units, router: Router, *, content: ContentSource) -> None:
        self._units = units
        self._router = router
        self._content = content

    @property
    def _store(self) -> PreferencesRepository:
        return self._content.content_store.preferences

    def _user_exists(self, user_id: uuid.UUID) -> bool:
        with self._units.reader(self._router.shard_of_owner(user_id)) as uow:
            return UsersRepository(uow).exists(user_id)

    def _course_exists(self, course_id: uuid.UUID) -> None:
        with self._units.reader() as uow:
            found = bool(CatalogRepository(uow).course_rows([course_id]))
        if not found:
            raise NotFound(f"course {course_id} not found")

    def _with_document(self, user_id: object, action: Callable[[uuid.UUID], T]) -> T:
        """Run ``action``; a user whose preferences document is missing gets one first."""
        uid = owned_id("user_id", user_id)
        try:
            return action(uid)
        except NotFound:
            if not self._user_exists(uid):
                raise NotFound(f"user {uid} not found") from None
            self._store.ensure(uid)
            return action(uid)

    def get(self, user_id: uuid.UUID) -> PreferencesView:
        """Return the learner's preferences. Raises NotFound (no such user)."""
        return self._with_document(user_id, self._store.get)

    def set_learning(self, user_id: uuid.UUID, **fields: Any) -> None:
        """Update only the given learning preferences (notifications, wishlist untouched)."""
        validation.no_extra(
            "learning",
            fields,
            ("preferred_categories", "preferred_languages", "difficulty_level", "learning_pace"),
        )
        _require_strings(fields, _LEARNING_STRINGS)
        self._with_document(user_id, lambda uid: self._store.set_learning(uid, **fields))

    def set_notifications(self, user_id: uuid.UUID, **fields: Any) -> None:
        """Update only the given notification switches."""
        validation.no_extra(
            "notification", fields, ("email", "push", "course_updates", "promotional")
        )
        self._with_document(user_id, lambda uid: self._store.set_notifications(uid, **fields))

    def add_to_wishlist(self, user_id: uuid.UUID, course_id: uuid.UUID) -> None:
        """Add a course to the wishlist (a set: adding twice keeps one). Raises NotFound."""
        course = catalog_id("course_id", course_id)
        self._course_exists(course)
        self._with_document(user_id, lambda uid: self._store.add_to_wishlist(uid, course))

    def remove_from_wishlist(self, user_id: uuid.UUID, course_id: uuid.UUID) -> None:
        """Remove a course from the wishlist (no error if absent)."""
        course = catalog_id("course_id", course_id)
        self._with_document(user_id, lambda uid: self._store.remove_from_wishlist(uid, course))

    def record_viewed(self, user_id: uuid.UUID, course_id: uuid.UUID) -> None:
        """Record a course view: newest first, no duplicates, the newest 20 kept."""
        course = catalog_id("course_id", course_id)
        self._course_exists(course)
        self._with_document(user_id, lambda uid: self._store.record_viewed(uid, course))
