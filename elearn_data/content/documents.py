"""mongoengine documents of the content store: their schema, validation and indexes.

Two collections:

- ``course_content``: one collection for every kind of lesson material, with
  mongoengine inheritance (``_cls``) telling a video from a document or a quiz.
  One collection keeps "everything of a lesson" a single indexed query.
- ``user_preferences``: one document per learner (learning preferences,
  notification switches, wishlist, recently viewed courses).

The documents describe and validate; they are deliberately bound to no
connection. A :class:`~elearn_data.content.store.ContentStore` reads and writes
them through its own pymongo collection (``collection_of(Document, db)``), so
several stores live side by side in one process, in any number of threads,
without ``switch_db`` (which swaps a class-wide collection and is therefore not
thread-safe). Using ``Document.objects`` or ``Document.save()`` directly would
look for mongoengine's *default* alias, which this package never registers:
such a mistake fails loudly instead of writing somewhere unexpected.
"""

# mongoengine ships no type information, so its base classes are ``Any`` to mypy;
# subclassing them is the whole point of this module.
# mypy: disallow-subclassing-any=False

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from mongoengine import (
    BooleanField,
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    StringField,
    URLField,
    UUIDField,
    ValidationError,
)
from pymongo.collection import Collection
from pymongo.database import Database

CONTENT_COLLECTION: Final = "course_content"
PREFERENCES_COLLECTION: Final = "user_preferences"

URL_SCHEMES: Final = ("http", "https")
DOCUMENT_TYPES: Final = ("pdf", "slides", "epub", "html", "text")
DIFFICULTY_LEVELS: Final = ("beginner", "intermediate", "advanced")
LEARNING_PACES: Final = ("slow", "moderate", "fast")
RECENTLY_VIEWED_LIMIT: Final = 20
# "720p", "1080p", "2160p", or the marketing names "4k"/"8k".
QUALITY_PATTERN: Final = r"^(\d{3,4}p|[1-9]\d?[kK])$"


def utc_now() -> datetime:
    """Return the current UTC time at BSON precision (milliseconds).

    Truncating here means a value read back compares equal to the one written.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _url(**kwargs: Any) -> Any:
    # http(s) only: ftp/javascript/data URLs are never served to a browser by us.
    return URLField(schemes=list(URL_SCHEMES), max_length=2048, **kwargs)


# ------------------------------------------------------------------ course content


def _same_creation_time(doc: Any, values: dict[str, Any]) -> None:
    """Give a new document one timestamp: ``updated_at`` is its ``created_at``.

    The two field defaults are two clock readings, which can fall in two
    milliseconds; a document loaded from the store passes both and is untouched.
    """
    if "updated_at" not in values and doc.created_at is not None:
        doc.updated_at = doc.created_at


class SubtitleTrack(EmbeddedDocument):
    """One subtitle file of a video."""

    # BCP 47 tags: "en", "pt-BR", "zh-Hant-TW".
    language = StringField(required=True, min_length=2, max_length=35)
    url = _url(required=True)


class QuizQuestionDoc(EmbeddedDocument):
    """One multiple-choice question of a quiz."""

    question = StringField(required=True, min_length=1)
    options = ListField(StringField(min_length=1), required=True)
    correct_option = IntField(required=True, min_value=0)
    points = IntField(required=True, min_value=0, default=1)

    def clean(self) -> None:
        """Reject a question with fewer than two options or an answer outside them."""
        options = self.options or []
        if len(options) < 2:
            raise ValidationError(
                f"a question needs at least 2 options, got {len(options)}: {self.question!r}"
            )
        correct = self.correct_option
        if isinstance(correct, int) and not 0 <= correct < len(options):
            raise ValidationError(
                f"correct_option {correct} is outside the {len(options)} options "
                f"of {self.question!r}"
            )


class CourseContent(Document):
    """Base of every piece of lesson material; never stored on its own."""

    CONTENT_TYPE: ClassVar[str] = ""

    content_id = StringField(required=True, min_length=1, max_length=128)
    course_id = UUIDField(required=True, binary=True)
    lesson_id = UUIDField(required=True, binary=True)
    title = StringField(required=True, min_length=1, max_length=300)
    views = IntField(required=True, min_value=0, default=0)
    downloads = IntField(required=True, min_value=0, default=0)
    created_at = DateTimeField(required=True, default=utc_now)
    updated_at = DateTimeField(required=True, default=utc_now)

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        _same_creation_time(self, values)

    meta: ClassVar[dict[str, Any]] = {
        "collection": CONTENT_COLLECTION,
        "allow_inheritance": True,
        # Indexes are created by the store on its own collection, never implicitly.
        "auto_create_index": False,
        # Every query filters on content_id, course_id or lesson_id; a _cls index
        # would only cost writes.
        "index_cls": False,
        "indexes": [
            {"fields": ["content_id"], "unique": True, "name": "content_id_unique"},
            # Serves for_course() through its prefix as well, so a separate
            # course_id index would be pure write overhead.
            {"fields": ["course_id", "lesson_id"], "name": "course_lesson"},
            {"fields": ["lesson_id"], "name": "lesson"},
        ],
    }


class VideoContent(CourseContent):
    """A video, with its subtitles and the qualities it is encoded in."""

    CONTENT_TYPE: ClassVar[str] = "video"

    video_url = _url(required=True)
    duration_seconds = IntField(required=True, min_value=0)
    thumbnail_url = _url(null=True)
    subtitles = ListField(EmbeddedDocumentField(SubtitleTrack))
    quality_options = ListField(StringField(regex=QUALITY_PATTERN))


class DocumentContent(CourseContent):
    """A downloadable or readable document (PDF, slides, e-book, HTML page)."""

    CONTENT_TYPE: ClassVar[str] = "document"

    document_url = _url(required=True)
    document_type = StringField(required=True, choices=DOCUMENT_TYPES)
    file_size_bytes = IntField(required=True, min_value=0)
    page_count = IntField(min_value=0, null=True)


class QuizContent(CourseContent):
    """A multiple-choice quiz."""

    CONTENT_TYPE: ClassVar[str] = "quiz"

    questions = ListField(EmbeddedDocumentField(QuizQuestionDoc), required=True)

    def clean(self) -> None:
        """Reject a quiz without questions."""
        if not self.questions:
            raise ValidationError(f"quiz {self.content_id!r} has no questions")


CONTENT_CLASSES: Final[tuple[type[CourseContent], ...]] = (
    VideoContent,
    DocumentContent,
    QuizContent,
)


# ---------------------------------------------------------------- user preferences


class LearningPreferences(EmbeddedDocument):
    """What a learner wants to learn, and how."""

    preferred_categories = ListField(StringField(min_length=1, max_length=100))
    preferred_languages = ListField(StringField(min_length=1, max_length=35))
    difficulty_level = StringField(choices=DIFFICULTY_LEVELS, null=True)
    learning_pace = StringField(choices=LEARNING_PACES, null=True)


class NotificationSettings(EmbeddedDocument):
    """Which messages a learner agreed to receive.

    Service messages are on by default; marketing is opt-in (consent rules in
    most regions require it).
    """

    email = BooleanField(required=True, default=True)
    push = BooleanField(required=True, default=False)
    course_updates = BooleanField(required=True, default=True)
    promotional = BooleanField(required=True, default=False)


class RecentlyViewed(EmbeddedDocument):
    """One entry of the recently viewed list."""

    course_id = UUIDField(required=True, binary=True)
    viewed_at = DateTimeField(required=True)


class UserPreferences(Document):
    """Everything a learner chose, one document per user."""

    user_id = UUIDField(required=True, binary=True)
    learning = EmbeddedDocumentField(LearningPreferences, default=LearningPreferences)
    notifications = EmbeddedDocumentField(NotificationSettings, default=NotificationSettings)
    # A set (kept with $addToSet), in the order the courses were added.
    wishlist = ListField(UUIDField(binary=True))
    # Newest first, one entry per course, at most RECENTLY_VIEWED_LIMIT entries.
    recently_viewed = ListField(
        EmbeddedDocumentField(RecentlyViewed), max_length=RECENTLY_VIEWED_LIMIT
    )
    created_at = DateTimeField(required=True, default=utc_now)
    updated_at = DateTimeField(required=True, default=utc_now)

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        _same_creation_time(self, values)

    meta: ClassVar[dict[str, Any]] = {
        "collection": PREFERENCES_COLLECTION,
        "auto_create_index": False,
        "indexes": [{"fields": ["user_id"], "unique": True, "name": "user_id_unique"}],
    }


DOCUMENT_CLASSES: Final[tuple[type[Document], ...]] = (CourseContent, UserPreferences)


# ---------------------------------------------------------------------- plumbing


def collection_of(
    document: type[Document], database: Database[dict[str, Any]]
) -> Collection[dict[str, Any]]:
    """Return ``document``'s collection inside ``database`` (a store's own database)."""
    name: str = document._get_collection_name()
    return database[name]


def index_models(document: type[Document]) -> list[tuple[list[tuple[str, int]], dict[str, Any]]]:
    """Return ``(keys, options)`` for each index declared in ``document``'s meta.

    The declarations stay in the documents (one source of truth); the store
    creates them on its own collection with these arguments.
    """
    models: list[tuple[list[tuple[str, int]], dict[str, Any]]] = []
    for spec in document._meta["index_specs"]:
        options = {k: v for k, v in spec.items() if k not in ("fields", "cls")}
        models.append((list(spec["fields"]), options))
    return models


__all__ = [
    "CONTENT_CLASSES",
    "CONTENT_COLLECTION",
    "DIFFICULTY_LEVELS",
    "DOCUMENT_CLASSES",
    "DOCUMENT_TYPES",
    "LEARNING_PACES",
    "PREFERENCES_COLLECTION",
    "RECENTLY_VIEWED_LIMIT",
    "URL_SCHEMES",
    "CourseContent",
    "DocumentContent",
    "LearningPreferences",
    "NotificationSettings",
    "QuizContent",
    "QuizQuestionDoc",
    "RecentlyViewed",
    "SubtitleTrack",
    "UserPreferences",
    "VideoContent",
    "collection_of",
    "index_models",
    "utc_now",
]
