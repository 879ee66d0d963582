"""Repositories of the content store: lesson material and learner preferences.

Each public method is one MongoDB operation on one document (or one
``delete_many``), so each is atomic on its own: counters use ``$inc``, the
wishlist ``$addToSet``/``$pull``, preference changes ``$set`` only the fields
given, and the recently viewed list is rewritten by a single pipeline update.
No method reads a document, changes it in Python and writes it back; that
pattern loses concurrent updates (the reference implementation replaced the
whole preferences document and so wiped the wishlist when learning preferences
changed).

Inputs are validated by the mongoengine documents before anything is sent;
a rejected value raises :class:`~elearn_data.errors.InvalidInput` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from mongoengine import EmbeddedDocument, ValidationError
from mongoengine.queryset import QuerySet
from pymongo.errors import DuplicateKeyError

from elearn_data.content.documents import (
    RECENTLY_VIEWED_LIMIT,
    CourseContent,
    DocumentContent,
    LearningPreferences,
    NotificationSettings,
    QuizContent,
    QuizQuestionDoc,
    SubtitleTrack,
    UserPreferences,
    VideoContent,
    utc_now,
)
from elearn_data.content.views import (
    ContentType,
    ContentView,
    LearningView,
    NotificationsView,
    PreferencesView,
    QuizQuestion,
    Subtitle,
)
from elearn_data.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from elearn_data.content.store import Gateway

# The names a FaultInjector accepts: one per write method.
WRITE_OPERATIONS: Final = frozenset(
    {
        "content.add_video",
        "content.add_document",
        "content.add_quiz",
        "content.record_view",
        "content.record_download",
        "content.delete_for_course",
        "content.delete",
        "preferences.ensure",
        "preferences.set_learning",
        "preferences.set_notifications",
        "preferences.add_to_wishlist",
        "preferences.remove_from_wishlist",
        "preferences.record_viewed",
        "preferences.delete",
    }
)

_QUESTION_KEYS: Final = frozenset({"question", "options", "correct_option", "points"})
_SUBTITLE_KEYS: Final = frozenset({"language", "url"})


# --------------------------------------------------------------------- validation


def _uuid(value: object, name: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a UUID, got {value!r}")


def _content_id(value: object) -> str:
    # A dict here would be a query operator ({"$gt": ""}) matching other documents.
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"content_id must be a non-empty string, got {value!r}")
    return value


def _integer(value: object, name: str) -> object:
    # mongoengine would turn 12.7 into 12 and "12" into 12; a caller passing
    # either has a bug worth reporting. The range is the documents' to check.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInput(f"{name} must be an integer, got {value!r}")
    return value


def _strings(values: object, name: str) -> list[str]:
    # A bare string is a Sequence[str] too; taking it letter by letter is never meant.
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{name} must be a list of strings, got {values!r}")
    return list(values)


def _entry_values(
    item: object, allowed: frozenset[str], required: frozenset[str], name: str
) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"each of {name} must be a mapping or a view object, got {item!r}")
    unknown = set(item) - allowed
    missing = required - set(item)
    if unknown or missing:
        raise InvalidInput(
            f"{name} entry {dict(item)!r}: unknown keys {sorted(unknown)}, "
            f"missing keys {sorted(missing)}"
        )
    return dict(item)


def _subtitle(item: Subtitle | Mapping[str, Any]) -> SubtitleTrack:
    if isinstance(item, Subtitle):
        return SubtitleTrack(language=item.language, url=item.url)
    values = _entry_values(item, _SUBTITLE_KEYS, _SUBTITLE_KEYS, "subtitles")
    return SubtitleTrack(language=values["language"], url=values["url"])


def _question(item: QuizQuestion | Mapping[str, Any]) -> QuizQuestionDoc:
    if isinstance(item, QuizQuestion):
        values: dict[str, Any] = {
            "question": item.question,
            "options": item.options,
            "correct_option": item.correct_option,
            "points": item.points,
        }
    else:
        values = _entry_values(item, _QUESTION_KEYS, _QUESTION_KEYS - {"points"}, "questions")
    values["options"] = _strings(values["options"], "options")
    for name in ("correct_option", "points"):
        if name in values:
            _integer(values[name], name)
    return QuizQuestionDoc(**values)


def _errors(
    tree: Mapping[Any, Any], path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str]]:
    for key, value in tree.items():
        here = (*path, str(key))
        if isinstance(value, Mapping):
            yield from _errors(value, here)
        else:
            yield here, str(value)


def _value_at(document: object, path: tuple[str, ...]) -> object:
    value = document
    for part in path:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = getattr(value, part, None)
    return value


def _validated(document: Any, label: str) -> None:
    """Run the document's validation, naming every offending field and value."""
    try:
        document.validate()
    except ValidationError as exc:
        problems = []
        for path, message in _errors(exc.to_dict(), ()):
            if path[-1] == "__all__":  # a rule over several fields (Document.clean)
                problems.append(message)
            else:
                problems.append(f"{'.'.join(path)}={_value_at(document, path)!r}: {message}")
        raise InvalidInput(f"invalid {label}: {'; '.join(problems) or exc}") from exc


# -------------------------------------------------------------------------- views


def _utc(value: datetime) -> datetime:
    # mongomock returns its own UTC tzinfo and a naive value is UTC by BSON's rules.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _content_view(doc: CourseContent) -> ContentView:
    content_type: ContentType
    extra: dict[str, Any]
    if isinstance(doc, VideoContent):
        content_type = "video"
        extra = {
            "video_url": doc.video_url,
            "duration_seconds": doc.duration_seconds,
            "thumbnail_url": doc.thumbnail_url,
            "subtitles": tuple(Subtitle(s.language, s.url) for s in doc.subtitles),
            "quality_options": tuple(doc.quality_options),
        }
    elif isinstance(doc, DocumentContent):
        content_type = "document"
        extra = {
            "document_url": doc.document_url,
            "document_type": doc.document_type,
            "file_size_bytes": doc.file_size_bytes,
            "page_count": doc.page_count,
        }
    elif isinstance(doc, QuizContent):
        content_type = "quiz"
        extra = {
            "questions": tuple(
                QuizQuestion(q.question, tuple(q.options), q.correct_option, q.points)
                for q in doc.questions
            )
        }
    else:  # pragma: no cover - only the three subclasses are ever written
        raise TypeError(f"unexpected content class {type(doc).__name__}")
    return ContentView(
        content_id=doc.content_id,
        content_type=content_type,
        course_id=doc.course_id,
        lesson_id=doc.lesson_id,
        title=doc.title,
        views=doc.views,
        downloads=doc.downloads,
        created_at=_utc(doc.created_at),
        updated_at=_utc(doc.updated_at),
        **extra,
    )


def _preferences_view(doc: UserPreferences) -> PreferencesView:
    learning = doc.learning or LearningPreferences()
    notifications = doc.notifications or NotificationSettings()
    return PreferencesView(
        user_id=doc.user_id,
        learning=LearningView(
            preferred_categories=tuple(learning.preferred_categories),
            preferred_languages=tuple(learning.preferred_languages),
            difficulty_level=learning.difficulty_level,
            learning_pace=learning.learning_pace,
        ),
        notifications=NotificationsView(
            email=notifications.email,
            push=notifications.push,
            course_updates=notifications.course_updates,
            promotional=notifications.promotional,
        ),
        wishlist=tuple(doc.wishlist),
        recently_viewed=tuple(entry.course_id for entry in doc.recently_viewed),
        created_at=_utc(doc.created_at),
        updated_at=_utc(doc.updated_at),
    )


# -------------------------------------------------------------------- repositories


class ContentRepository:
    """Lesson material (videos, documents, quizzes), keyed by a caller-chosen content id.

    Obtain it as ``store.content``; every method is one unit of work.
    """

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._collection = gateway.collection(CourseContent)

    def _objects(self) -> Any:
        # A QuerySet over this store's collection: mongoengine's query language,
        # no class-level connection state.
        return QuerySet(CourseContent, self._collection)

    # -- writes

    def add_video(
        self,
        *,
        content_id: str,
        course_id: UUID,
        lesson_id: UUID,
        title: str,
        video_url: str,
        duration_seconds: int,
        thumbnail_url: str | None = None,
        subtitles: Iterable[Subtitle | Mapping[str, Any]] = (),
        quality_options: Iterable[str] = (),
    ) -> str:
        """Store a video and return its content id.

        Raises:
            Duplicate: ``content_id`` exists already.
            InvalidInput: a URL is not http(s), the duration is negative, a
                subtitle or quality option is malformed.
            ContentUnavailable: MongoDB cannot be reached.
        """
        document = VideoContent(
            content_id=_content_id(content_id),
            course_id=_uuid(course_id, "course_id"),
            lesson_id=_uuid(lesson_id, "lesson_id"),
            title=title,
            video_url=video_url,
            duration_seconds=_integer(duration_seconds, "duration_seconds"),
            thumbnail_url=thumbnail_url,
            subtitles=[_subtitle(item) for item in subtitles],
            quality_options=_strings(quality_options, "quality_options"),
        )
        return self._insert("content.add_video", document)

    def add_document(
        self,
        *,
        content_id: str,
        course_id: UUID,
        lesson_id: UUID,
        title: str,
        document_url: str,
        document_type: str,
        file_size_bytes: int,
        page_count: int | None = None,
    ) -> str:
        """Store a document (pdf, slides, epub, html, text) and return its content id.

        Raises:
            Duplicate: ``content_id`` exists already.
            InvalidInput: the URL is not http(s), the type is unknown, the size
                or page count is negative.
            ContentUnavailable: MongoDB cannot be reached.
        """
        document = DocumentContent(
            content_id=_content_id(content_id),
            course_id=_uuid(course_id, "course_id"),
            lesson_id=_uuid(lesson_id, "lesson_id"),
            title=title,
            document_url=document_url,
            document_type=document_type,
            file_size_bytes=_integer(file_size_bytes, "file_size_bytes"),
            page_count=_integer(page_count, "page_count"),
        )
        return self._insert("content.add_document", document)

    def add_quiz(
        self,
        *,
        content_id: str,
        course_id: UUID,
        lesson_id: UUID,
        title: str,
        questions: Iterable[QuizQuestion | Mapping[str, Any]],
    ) -> str:
        """Store a quiz and return its content id.

        Each question is a :class:`QuizQuestion` or a mapping with the keys
        ``question``, ``options`` (2 or more), ``correct_option`` (an index into
        the options) and optionally ``points`` (>= 0, default 1).

        Raises:
            Duplicate: ``content_id`` exists already.
            InvalidInput: no questions, fewer than two options, an answer index
                outside the options, negative points.
            ContentUnavailable: MongoDB cannot be reached.
        """
        if isinstance(questions, str | bytes | Mapping) or not isinstance(questions, Iterable):
            raise InvalidInput(f"questions must be a list of questions, got {questions!r}")
        document = QuizContent(
            content_id=_content_id(content_id),
            course_id=_uuid(course_id, "course_id"),
            lesson_id=_uuid(lesson_id, "lesson_id"),
            title=title,
            questions=[_question(item) for item in questions],
        )
        return self._insert("content.add_quiz", document)

    def _insert(self, operation: str, document: CourseContent) -> str:
        _validated(document, f"{document.CONTENT_TYPE} {document.content_id!r}")
        raw = document.to_mongo().to_dict()
        duplicate = f"content {document.content_id!r} exists already"
        with self._gateway.writing(operation, duplicate=duplicate):
            self._collection.insert_one(raw)
        content_id: str = document.content_id
        return content_id

    def record_view(self, content_id: str) -> None:
        """Add one to the content's view counter (atomic ``$inc``).

        Raises:
            NotFound: no content has this id.
        """
        self._increment("content.record_view", content_id, "views")

    def record_download(self, content_id: str) -> None:
        """Add one to the content's download counter (atomic ``$inc``).

        Raises:
            NotFound: no content has this id.
        """
        self._increment("content.record_download", content_id, "downloads")

    def _increment(self, operation: str, content_id: str, counter: str) -> None:
        key = _content_id(content_id)
        with self._gateway.writing(operation):
            result = self._collection.update_one({"content_id": key}, {"$inc": {counter: 1}})
        if result.matched_count == 0:
            raise NotFound(f"no content with id {key!r}")

    def delete_for_course(self, course_id: UUID) -> int:
        """Delete every piece of content of a course and return how many there were.

        Idempotent: a second call (or a course without content) returns 0.
        """
        key = _uuid(course_id, "course_id")
        with self._gateway.writing("content.delete_for_course"):
            result = self._collection.delete_many({"course_id": key})
        deleted: int = result.deleted_count
        return deleted

    def delete(self, content_id: str) -> bool:
        """Delete one piece of content; return False when it did not exist (idempotent)."""
        key = _content_id(content_id)
        with self._gateway.writing("content.delete"):
            result = self._collection.delete_one({"content_id": key})
        return bool(result.deleted_count)

    # -- reads

    def get(self, content_id: str) -> ContentView:
        """Return one piece of content.

        Raises:
            NotFound: no content has this id.
        """
        key = _content_id(content_id)
        with self._gateway.reading("content.get"):
            document = self._objects().filter(content_id=key).first()
        if document is None:
            raise NotFound(f"no content with id {key!r}")
        return _content_view(document)

    def for_course(self, course_id: UUID) -> list[ContentView]:
        """Return a course's content, oldest first (an empty list for an unknown course)."""
        key = _uuid(course_id, "course_id")
        with self._gateway.reading("content.for_course"):
            documents = list(self._objects().filter(course_id=key).order_by("created_at", "id"))
        return [_content_view(document) for document in documents]

    def for_lesson(self, lesson_id: UUID) -> list[ContentView]:
        """Return a lesson's content, oldest first (an empty list for an unknown lesson)."""
        key = _uuid(lesson_id, "lesson_id")
        with self._gateway.reading("content.for_lesson"):
            documents = list(self._objects().filter(lesson_id=key).order_by("created_at", "id"))
        return [_content_view(document) for document in documents]

    def exists(self, content_ids: Iterable[str]) -> set[str]:
        """Return which of ``content_ids`` exist (to check references from lessons)."""
        keys = sorted({_content_id(item) for item in _strings(content_ids, "content_ids")})
        if not keys:
            return set()
        with self._gateway.reading("content.exists"):
            found = self._collection.distinct("content_id", {"content_id": {"$in": keys}})
        return set(found)


class PreferencesRepository:
    """One preferences document per learner.

    :meth:`ensure` creates the default document (registration calls it); every
    other method needs the document to exist and raises NotFound otherwise, so
    that a mistyped or foreign user id never creates an orphan document.
    """

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._collection = gateway.collection(UserPreferences)

    def _objects(self) -> Any:
        return QuerySet(UserPreferences, self._collection)

    def get(self, user_id: UUID) -> PreferencesView:
        """Return a learner's preferences.

        Raises:
            NotFound: no preferences are stored for this user.
        """
        key = _uuid(user_id, "user_id")
        with self._gateway.reading("preferences.get"):
            document = self._objects().filter(user_id=key).first()
        if document is None:
            raise NotFound(f"no preferences stored for user {key}")
        return _preferences_view(document)

    def ensure(self, user_id: UUID) -> bool:
        """Create the default preferences of a learner unless they exist.

        One upsert with ``$setOnInsert``: existing preferences are never touched,
        and concurrent calls create one document (the unique index on user_id
        settles a race; the loser's duplicate-key error is the "exists" answer).

        Returns:
            True when this call created the document.
        """
        key = _uuid(user_id, "user_id")
        defaults = UserPreferences(user_id=key).to_mongo().to_dict()
        # user_id comes from the filter on insert; $setOnInsert must not repeat it.
        defaults.pop("user_id")
        with self._gateway.writing("preferences.ensure"):
            try:
                result = self._collection.update_one(
                    {"user_id": key}, {"$setOnInsert": defaults}, upsert=True
                )
            except DuplicateKeyError:
                return False
        return result.upserted_id is not None

    def set_learning(
        self,
        user_id: UUID,
        *,
        preferred_categories: Sequence[str] | None = None,
        preferred_languages: Sequence[str] | None = None,
        difficulty_level: str | None = None,
        learning_pace: str | None = None,
    ) -> None:
        """Change the given learning preferences; None leaves a field as it is.

        Only the given fields are sent (``$set`` of ``learning.<field>``):
        notifications, wishlist and recently viewed are never touched.

        Raises:
            InvalidInput: difficulty_level is not beginner/intermediate/advanced,
                learning_pace is not slow/moderate/fast, a list is malformed.
            NotFound: no preferences are stored for this user.
        """
        given: dict[str, Any] = {}
        if preferred_categories is not None:
            given["preferred_categories"] = _strings(preferred_categories, "preferred_categories")
        if preferred_languages is not None:
            given["preferred_languages"] = _strings(preferred_languages, "preferred_languages")
        if difficulty_level is not None:
            given["difficulty_level"] = difficulty_level
        if learning_pace is not None:
            given["learning_pace"] = learning_pace
        self._set_group(
            "preferences.set_learning", user_id, "learning", LearningPreferences(**given), given
        )

    def set_notifications(
        self,
        user_id: UUID,
        *,
        email: bool | None = None,
        push: bool | None = None,
        course_updates: bool | None = None,
        promotional: bool | None = None,
    ) -> None:
        """Switch the given notification channels; None leaves a channel as it is.

        Raises:
            InvalidInput: a value is not a bool.
            NotFound: no preferences are stored for this user.
        """
        values = {
            "email": email,
            "push": push,
            "course_updates": course_updates,
            "promotional": promotional,
        }
        given = {name: value for name, value in values.items() if value is not None}
        for name, value in given.items():
            # mongoengine would store bool("no") == True.
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be True or False, got {value!r}")
        self._set_group(
            "preferences.set_notifications",
            user_id,
            "notifications",
            NotificationSettings(**given),
            given,
        )

    def _set_group(
        self,
        operation: str,
        user_id: UUID,
        group: str,
        embedded: EmbeddedDocument,
        given: Mapping[str, Any],
    ) -> None:
        key = _uuid(user_id, "user_id")
        # The fields not given hold defaults in ``embedded``; they are valid and
        # they are not sent.
        _validated(embedded, f"{group} preferences of user {key}")
        changes = {
            f"{group}.{name}": embedded._fields[name].to_mongo(getattr(embedded, name))
            for name in given
        }
        self._update(operation, key, {"$set": {**changes, "updated_at": utc_now()}})

    def add_to_wishlist(self, user_id: UUID, course_id: UUID) -> None:
        """Add a course to the wishlist (a set: adding it twice keeps one entry).

        Raises:
            NotFound: no preferences are stored for this user.
        """
        key = _uuid(user_id, "user_id")
        course = _uuid(course_id, "course_id")
        self._update(
            "preferences.add_to_wishlist",
            key,
            {"$addToSet": {"wishlist": course}, "$set": {"updated_at": utc_now()}},
        )

    def remove_from_wishlist(self, user_id: UUID, course_id: UUID) -> None:
        """Remove a course from the wishlist (a course not in it is ignored).

        Raises:
            NotFound: no preferences are stored for this user.
        """
        key = _uuid(user_id, "user_id")
        course = _uuid(course_id, "course_id")
        self._update(
            "preferences.remove_from_wishlist",
            key,
            {"$pull": {"wishlist": course}, "$set": {"updated_at": utc_now()}},
        )

    def record_viewed(self, user_id: UUID, course_id: UUID) -> None:
        """Put a course at the front of the recently viewed list.

        One update with an aggregation pipeline (MongoDB 4.2+) drops the
        course's previous entry, prepends the new one and keeps the newest 20.
        The classic ``$pull`` + ``$push {$position: 0, $slice: 20}`` cannot share
        one update (both touch the same array) and as two updates lets two
        concurrent views of the same course both pass the pull and both push,
        leaving a duplicate. A single-document update is atomic, so concurrent
        calls are applied one after the other: the list never holds a duplicate
        or more than 20 entries, and its order is the order the server applied
        the views in.

        Raises:
            NotFound: no preferences are stored for this user.
        """
        key = _uuid(user_id, "user_id")
        course = _uuid(course_id, "course_id")
        now = utc_now()
        others = {
            "$filter": {
                "input": {"$ifNull": ["$recently_viewed", []]},
                "as": "seen",
                "cond": {"$ne": ["$$seen.course_id", course]},
            }
        }
        newest = {"$concatArrays": [[{"course_id": course, "viewed_at": now}], others]}
        pipeline = [
            {
                "$set": {
                    "recently_viewed": {"$slice": [newest, RECENTLY_VIEWED_LIMIT]},
                    "updated_at": now,
                }
            }
        ]
        self._update("preferences.record_viewed", key, pipeline)

    def delete(self, user_id: UUID) -> bool:
        """Delete a learner's preferences; return False when there were none (idempotent)."""
        key = _uuid(user_id, "user_id")
        with self._gateway.writing("preferences.delete"):
            result = self._collection.delete_one({"user_id": key})
        return bool(result.deleted_count)

    def _update(
        self, operation: str, user_id: UUID, update: Mapping[str, Any] | list[dict[str, Any]]
    ) -> None:
        with self._gateway.writing(operation):
            result = self._collection.update_one({"user_id": user_id}, update)
        if result.matched_count == 0:
            raise NotFound(f"no preferences stored for user {user_id}")


__all__ = ["WRITE_OPERATIONS", "ContentRepository", "PreferencesRepository"]
