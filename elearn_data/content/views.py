"""Immutable views of the content store's documents.

Read methods return these frozen dataclasses, never live mongoengine documents,
so a caller can keep, share and hash them without touching the database again.
:class:`Subtitle` and :class:`QuizQuestion` double as the input types of
``add_video`` and ``add_quiz`` (mappings with the same keys are accepted too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

ContentType = Literal["video", "document", "quiz"]


@dataclass(frozen=True, slots=True)
class Subtitle:
    """A subtitle track of a video: its BCP 47 language tag and where to fetch it."""

    language: str
    url: str


@dataclass(frozen=True, slots=True)
class QuizQuestion:
    """A multiple-choice question; ``correct_option`` indexes ``options``."""

    question: str
    options: tuple[str, ...]
    correct_option: int
    points: int = 1


@dataclass(frozen=True, slots=True)
class ContentView:
    """One piece of lesson material.

    The common fields are always set; the type-specific ones are set for their
    ``content_type`` only (None or empty for the others).
    """

    content_id: str
    content_type: ContentType
    course_id: UUID
    lesson_id: UUID
    title: str
    views: int
    downloads: int
    created_at: datetime
    updated_at: datetime
    # video
    video_url: str | None = None
    duration_seconds: int | None = None
    thumbnail_url: str | None = None
    subtitles: tuple[Subtitle, ...] = ()
    quality_options: tuple[str, ...] = ()
    # document
    document_url: str | None = None
    document_type: str | None = None
    file_size_bytes: int | None = None
    page_count: int | None = None
    # quiz
    questions: tuple[QuizQuestion, ...] = ()


@dataclass(frozen=True, slots=True)
class LearningView:
    """What a learner wants to learn, and how (None: not chosen yet)."""

    preferred_categories: tuple[str, ...]
    preferred_languages: tuple[str, ...]
    difficulty_level: str | None
    learning_pace: str | None


@dataclass(frozen=True, slots=True)
class NotificationsView:
    """Which messages a learner agreed to receive."""

    email: bool
    push: bool
    course_updates: bool
    promotional: bool


@dataclass(frozen=True, slots=True)
class PreferencesView:
    """Everything a learner chose.

    ``wishlist`` keeps the order courses were added in; ``recently_viewed`` is
    newest first, without duplicates, at most 20 courses.
    """

    user_id: UUID
    learning: LearningView
    notifications: NotificationsView
    wishlist: tuple[UUID, ...]
    recently_viewed: tuple[UUID, ...]
    created_at: datetime
    updated_at: datetime


__all__ = [
    "ContentType",
    "ContentView",
    "LearningView",
    "NotificationsView",
    "PreferencesView",
    "QuizQuestion",
    "Subtitle",
]
