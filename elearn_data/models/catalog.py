"""The catalog: categories, courses, modules, lessons (reference tables), and seat ledgers.

Reference tables hold the same rows on every shard, so foreign keys from a
learner's enrollments and progress to courses and lessons stay real and local,
and catalog reads and search are local in every region.

A course's seat ledger (``course_seats``) is the one authoritative place for its
capacity: a single row on the shard of the course's home region (the
instructor's), which every enrollment, from any region, reserves a seat in.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from elearn_data.models.base import (
    CONTENT_STATUSES,
    COURSE_STATUSES,
    LESSON_TYPES,
    LEVELS,
    Base,
    Placement,
    created_at,
    currency,
    one_of,
    placed,
    updated_at,
    uuid_pk,
)

# Title and code weigh more than the description; the code is indexed with the
# 'simple' configuration so that "PY-101" is not stemmed.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(code, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
)


class CourseCategory(Base):
    """A node of the category tree."""

    __tablename__ = "course_categories"
    __table_args__ = (
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        Index("ix_course_categories_parent_id", "parent_id"),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("course_categories.id", ondelete="SET NULL")
    )
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class Course(Base):
    """A course; the same row on every shard."""

    __tablename__ = "courses"
    __table_args__ = (
        CheckConstraint(one_of("level", LEVELS), name="level"),
        CheckConstraint(one_of("status", COURSE_STATUSES), name="status"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        CheckConstraint("code ~ '^[A-Z0-9][A-Z0-9_.-]{1,31}$'", name="code_shape"),
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        CheckConstraint("max_enrollments IS NULL OR max_enrollments > 0", name="capacity"),
        CheckConstraint("duration_hours IS NULL OR duration_hours >= 0", name="duration"),
        CheckConstraint("lesson_count >= 0", name="lesson_count"),
        CheckConstraint("status <> 'published' OR published_at IS NOT NULL", name="published_at"),
        Index("ix_courses_search_vector", "search_vector", postgresql_using="gin"),
        Index("ix_courses_instructor_id", "instructor_id"),
        Index("ix_courses_category_id", "category_id"),
        Index("ix_courses_status_level", "status", "level"),
        Index("ix_courses_status_price", "status", "price"),
        Index(
            "ix_courses_published_at",
            text("published_at DESC"),
            postgresql_where=text("status = 'published'"),
        ),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # No foreign key: the instructor lives on one shard, the course on all.
    instructor_id: Mapped[uuid.UUID]
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("course_categories.id", ondelete="SET NULL")
    )
    level: Mapped[str] = mapped_column(String(20), server_default="beginner")
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2), server_default="0")
    currency: Mapped[currency]
    status: Mapped[str] = mapped_column(String(20), server_default="draft")
    max_enrollments: Mapped[int | None]
    duration_hours: Mapped[Decimal | None] = mapped_column(Numeric(6, 1))
    language: Mapped[str] = mapped_column(String(50), server_default="English")
    # Maintained by a trigger on course_lessons; progress is completed / lesson_count.
    lesson_count: Mapped[int] = mapped_column(Integer, server_default="0")
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True)
    )
    published_at: Mapped[datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    modules: Mapped[list[CourseModule]] = relationship(
        back_populates="course", lazy="raise", order_by="CourseModule.module_order"
    )


class CourseModule(Base):
    """An ordered section of a course."""

    __tablename__ = "course_modules"
    __table_args__ = (
        CheckConstraint("module_order > 0", name="order_positive"),
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        UniqueConstraint("course_id", "module_order"),
        # Target of the lessons' (module_id, course_id) key.
        UniqueConstraint("id", "course_id"),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    module_order: Mapped[int]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    course: Mapped[Course] = relationship(back_populates="modules", lazy="raise")
    lessons: Mapped[list[CourseLesson]] = relationship(
        back_populates="module",
        lazy="raise",
        order_by="CourseLesson.lesson_order",
        overlaps="course",
    )


class CourseLesson(Base):
    """An ordered lesson of a module; ``course_id`` is kept for one-lookup membership checks."""

    __tablename__ = "course_lessons"
    __table_args__ = (
        CheckConstraint(one_of("lesson_type", LESSON_TYPES), name="lesson_type"),
        CheckConstraint(one_of("content_status", CONTENT_STATUSES), name="content_status"),
        CheckConstraint("lesson_order > 0", name="order_positive"),
        CheckConstraint("duration_minutes IS NULL OR duration_minutes >= 0", name="duration"),
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        CheckConstraint(
            "(content_id IS NULL) = (content_status = 'none')", name="content_status_matches"
        ),
        UniqueConstraint("module_id", "lesson_order"),
        ForeignKeyConstraint(
            ["module_id", "course_id"],
            ["course_modules.id", "course_modules.course_id"],
            ondelete="CASCADE",
            name="fk_course_lessons_module_course",
        ),
        Index("ix_course_lessons_course_id", "course_id"),
        Index(
            "ix_course_lessons_content_id",
            "content_id",
            postgresql_where=text("content_id IS NOT NULL"),
        ),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    module_id: Mapped[uuid.UUID]
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    lesson_order: Mapped[int]
    lesson_type: Mapped[str] = mapped_column(String(20))
    content_id: Mapped[str | None] = mapped_column(String(64))
    # 'pending' until the content document exists in the content store.
    content_status: Mapped[str] = mapped_column(String(16), server_default="none")
    duration_minutes: Mapped[int | None]
    is_preview: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    module: Mapped[CourseModule] = relationship(
        back_populates="lessons", lazy="raise", overlaps="course"
    )


class CourseSeats(Base):
    """The seat ledger of one course: the only place its capacity is enforced."""

    __tablename__ = "course_seats"
    __table_args__ = (
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        CheckConstraint("taken >= 0", name="taken_not_negative"),
        CheckConstraint("capacity IS NULL OR taken <= capacity", name="within_capacity"),
        placed(Placement.HOME, "course_id"),
    )

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True
    )
    capacity: Mapped[int | None]
    taken: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[updated_at]
