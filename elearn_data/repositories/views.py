"""Immutable views returned by every read (API.md): no live ORM object escapes a unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


class _View:
    def to_dict(self) -> dict[str, Any]:
        """Return the view as a plain dict (nested views included)."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True, slots=True)
class UserView(_View):
    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    role: str
    region: str
    status: str
    created_at: datetime
    last_login: datetime | None
    country: str | None
    city: str | None
    phone: str | None
    bio: str | None
    timezone: str | None
    language: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> UserView:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class CategoryView(_View):
    id: uuid.UUID
    name: str
    description: str | None
    parent_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class CourseView(_View):
    id: uuid.UUID
    code: str
    title: str
    description: str | None
    instructor_id: uuid.UUID
    category_id: uuid.UUID | None
    level: str
    price: Decimal
    currency: str
    status: str
    max_enrollments: int | None
    duration_hours: Decimal | None
    language: str
    rating: Decimal | None
    rating_count: int
    enrollment_count: int
    published_at: datetime | None
    lesson_count: int = 0


@dataclass(frozen=True, slots=True)
class LessonView(_View):
    id: uuid.UUID
    title: str
    order: int
    lesson_type: str
    content_id: str | None
    content_status: str
    duration_minutes: int | None
    is_preview: bool


@dataclass(frozen=True, slots=True)
class ModuleView(_View):
    id: uuid.UUID
    title: str
    order: int
    lessons: tuple[LessonView, ...]


@dataclass(frozen=True, slots=True)
class EnrollmentView(_View):
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    status: str
    progress: Decimal
    enrolled_at: datetime
    completed_at: datetime | None
    certificate_url: str | None


@dataclass(frozen=True, slots=True)
class LessonProgressView(_View):
    lesson_id: uuid.UUID
    module_title: str
    lesson_title: str
    completed: bool
    completed_at: datetime | None
    time_spent_minutes: int


@dataclass(frozen=True, slots=True)
class ProgressView(_View):
    enrollment_id: uuid.UUID
    percentage: Decimal
    completed_lessons: int
    total_lessons: int
    lessons: tuple[LessonProgressView, ...]
    status: str = "active"


@dataclass(frozen=True, slots=True)
class ReviewView(_View):
    id: uuid.UUID
    enrollment_id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    rating: int
    text: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentMethodView(_View):
    id: uuid.UUID
    user_id: uuid.UUID
    method_type: str
    card_last_four: str | None
    card_brand: str | None
    expiry_month: int | None
    expiry_year: int | None
    is_default: bool


@dataclass(frozen=True, slots=True)
class TransactionView(_View):
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount: Decimal
    currency: str
    type: str
    status: str
    gateway_transaction_id: str | None
    refund_of: uuid.UUID | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class InvoiceView(_View):
    id: uuid.UUID
    transaction_id: uuid.UUID
    number: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    currency: str
    status: str
    issued_on: date


@dataclass(frozen=True, slots=True)
class QuestionView(_View):
    """A question as a learner sees it: never the answer key."""

    id: uuid.UUID
    order: int
    kind: str
    prompt: str
    points: Decimal
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AssessmentView(_View):
    id: uuid.UUID
    course_id: uuid.UUID
    title: str
    kind: str
    passing_percent: Decimal
    max_attempts: int | None
    time_limit_minutes: int | None
    required: bool
    status: str
    questions: tuple[QuestionView, ...]
    lesson_id: uuid.UUID | None = None
    total_points: Decimal = Decimal("0")
    published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptView(_View):
    """One attempt; ``passed`` is None while an essay waits for its grader."""

    id: uuid.UUID
    enrollment_id: uuid.UUID
    assessment_id: uuid.UUID
    number: int
    status: str
    score: Decimal | None
    max_score: Decimal | None
    percent: Decimal | None
    passed: bool | None
    started_at: datetime
    submitted_at: datetime | None
    deadline_at: datetime | None = None
    graded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BadgeAwardView(_View):
    badge_id: uuid.UUID
    code: str
    name: str
    awarded_at: datetime


@dataclass(frozen=True, slots=True)
class PointsView(_View):
    user_id: uuid.UUID
    points: int
    level: int
    # The total at which the next level starts (None at the highest level).
    next_level_points: int | None
    streak_days: int
    longest_streak: int
    badges: tuple[BadgeAwardView, ...]


@dataclass(frozen=True, slots=True)
class PointEventView(_View):
    event: str
    points: int
    source_id: str
    awarded_at: datetime


@dataclass(frozen=True, slots=True)
class LeaderEntryView(_View):
    rank: int
    user_id: uuid.UUID
    first_name: str
    region: str
    points: int
