"""Settings and content factories of the content store suite (valid values, overridable)."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import uuid4

from elearn_data.config import Settings
from elearn_data.content import ContentStore

MONGO_URI_ENV = "ELEARN_TEST_MONGO_URI"
UNREACHABLE_URI = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"

# The content store contacts no PostgreSQL, but Settings insists on a complete
# shard topology: an unreachable dummy one satisfies it.
_DUMMY_NODE = {"primary": "postgresql://x@127.0.0.1:1/db"}
DUMMY_SHARDS = {"na": _DUMMY_NODE, "eu": _DUMMY_NODE, "apac": _DUMMY_NODE}


def make_settings(mongo_uri: str | None = None, mongo_db: str = "elearn_test") -> Settings:
    """Return Settings for a content store (mongo_uri None: in-process mongomock)."""
    return Settings(shards=DUMMY_SHARDS, mongo_uri=mongo_uri, mongo_db=mongo_db)


_ids = itertools.count(1)


def add_video(store: ContentStore, **overrides: Any) -> str:
    """Add a valid video (any field overridable) and return its content id."""
    values: dict[str, Any] = {
        "content_id": f"video-{next(_ids)}",
        "course_id": uuid4(),
        "lesson_id": uuid4(),
        "title": "Introduction",
        "video_url": "https://videos.example.com/intro.mp4",
        "duration_seconds": 900,
    }
    values.update(overrides)
    return store.content.add_video(**values)


def add_document(store: ContentStore, **overrides: Any) -> str:
    """Add a valid document (any field overridable) and return its content id."""
    values: dict[str, Any] = {
        "content_id": f"document-{next(_ids)}",
        "course_id": uuid4(),
        "lesson_id": uuid4(),
        "title": "Course notes",
        "document_url": "https://docs.example.com/notes.pdf",
        "document_type": "pdf",
        "file_size_bytes": 1_024_000,
    }
    values.update(overrides)
    return store.content.add_document(**values)


def add_quiz(store: ContentStore, **overrides: Any) -> str:
    """Add a valid one-question quiz (any field overridable) and return its content id."""
    values: dict[str, Any] = {
        "content_id": f"quiz-{next(_ids)}",
        "course_id": uuid4(),
        "lesson_id": uuid4(),
        "title": "Check yourself",
        "questions": [{"question": "2 + 2?", "options": ["3", "4"], "correct_option": 1}],
    }
    values.update(overrides)
    return store.content.add_quiz(**values)
