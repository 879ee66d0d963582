"""Builders for API tests: users, instructors and published courses through the public API."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

from elearn_data.database import Database

_n = itertools.count(1)
PASSWORD = "correct horse battery"


def register(
    db: Database, region: str = "europe", role: str = "student", **overrides: object
) -> uuid.UUID:
    n = next(_n)
    fields: dict[str, object] = {
        "email": f"person{n}.{uuid.uuid4().hex[:6]}@example.org",
        "password": PASSWORD,
        "first_name": "Ada",
        "last_name": f"Lovelace {n}",
        "region": region,
        "role": role,
    }
    fields.update(overrides)
    return db.users.register(**fields)  # type: ignore[arg-type]


def published_course(
    db: Database,
    *,
    instructor_region: str = "europe",
    lessons: int = 3,
    max_enrollments: int | None = None,
    price: Decimal = Decimal("49.99"),
    title: str | None = None,
    description: str | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Create and publish a course with one module of ``lessons`` lessons."""
    instructor = register(db, instructor_region, role="instructor")
    n = next(_n)
    course = db.catalog.create_course(
        code=f"C-{n}-{uuid.uuid4().hex[:6]}",
        title=title or f"Course {n}",
        description=description,
        instructor_id=instructor,
        price=price,
        max_enrollments=max_enrollments,
    )
    module = db.catalog.add_module(course, title="Basics", order=1)
    lesson_ids = [
        db.catalog.add_lesson(module, title=f"Lesson {i}", order=i, lesson_type="video")
        for i in range(1, lessons + 1)
    ]
    db.catalog.publish(course)
    return course, lesson_ids
