"""Every course is found by its own code (issue: `search("AWS-101")` found nothing).

The stored vector parses ``code`` with the ``simple`` configuration; a query
parsed only with ``english`` stems ``aws`` to ``aw`` and misses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.models import Course
from elearn_data.seeding import seed
from tests.integration.api.helpers import register
from tests.support import truncate_all

# Codes whose letters the english stemmer changes (aws -> aw, analytics -> analyt,
# devops -> devop, ...) next to ones it keeps.
CODES = ("AWS-101", "DEVOPS-210", "ANALYTICS-3", "PY-101", "ML-200", "K8S-101", "DATA.SCI-7")


def test_a_course_is_found_by_its_code_whatever_the_stemmer_makes_of_it(clean: Database) -> None:
    instructor = register(clean, "europe", role="instructor")
    made: dict[str, uuid.UUID] = {}
    for code in CODES:
        course = clean.catalog.create_course(
            code=code, title=f"Course {code}", instructor_id=instructor
        )
        module = clean.catalog.add_module(course, title="Basics", order=1)
        clean.catalog.add_lesson(module, title="One", order=1, lesson_type="video")
        clean.catalog.publish(course)
        made[code] = course

    for code, course in made.items():
        for query in (code, code.lower()):
            found = [c.id for c in clean.catalog.search(query)]
            assert found[:1] == [course], (query, found)
    # English words still match through the english parse (stemmed).
    assert {c.id for c in clean.catalog.search("courses")} == set(made.values())


@pytest.fixture(scope="module")
def seeded(cluster: LocalCluster, db: Database) -> Iterator[Database]:
    truncate_all(cluster)
    db.content_store.clear()
    seed(db, "small", seed=0)
    yield db
    truncate_all(cluster)
    db.content_store.clear()


def test_every_seeded_published_course_is_found_by_its_code(seeded: Database) -> None:
    with seeded.reader(seeded.settings.home_shard) as uow:
        courses = uow.session.execute(
            select(Course.id, Course.code).where(Course.status == "published")
        ).all()
    assert len(courses) > 20
    missed = [
        code for cid, code in courses if cid not in {c.id for c in seeded.catalog.search(code)}
    ]
    assert missed == []
