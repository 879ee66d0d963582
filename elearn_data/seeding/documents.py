"""The content phase: lesson documents and learner preferences in the content store.

Every video lesson gets a :class:`VideoContent` and every reading lesson a
:class:`DocumentContent` whose ``content_id`` is the one the lesson row names
(up to the run's content limit; lessons past it say ``pending``). Preferences
documents are written for a deterministic sample of learners (at most
``Scale.preferences_limit``): a learner without one gets it on first use, as
after a registration whose outbox entry has not been applied yet.

Documents are built in their stored (raw) form -- what the mongoengine classes
of :mod:`elearn_data.content.documents` would store -- and a sample of every run
is parsed, validated and round-tripped through those classes. Timestamps come
from the seeded world (milliseconds, BSON's precision), so two runs with one
seed store equal documents.

mongomock (the in-process store) checks a unique index by scanning the whole
collection on every insert, which makes bulk inserts quadratic (4,000
documents took 24 s); for the in-process backend the collection's indexes are
dropped for the bulk insert and rebuilt afterwards (``ContentStore.ensure_indexes``).
A real MongoDB keeps its indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from mongoengine import Document

from elearn_data.content import ContentStore
from elearn_data.content.documents import (
    DIFFICULTY_LEVELS,
    LEARNING_PACES,
    CourseContent,
    DocumentContent,
    UserPreferences,
    VideoContent,
)
from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.plan import World

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
INSERT_BATCH: Final = 2_000
DOCUMENT_TYPES: Final = ("pdf", "html", "epub", "slides")
QUALITIES: Final = ("480p", "720p", "1080p", "2160p")


def at(ms: int) -> datetime:
    """Return Unix milliseconds as an aware UTC datetime (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=int(ms))


def _checked(document: type[Document], raw: dict[str, Any], position: int) -> dict[str, Any]:
    """Validate a sample of raw documents through mongoengine (and that they round-trip).

    Building every document through mongoengine costs ~0.4 ms each (a minute at
    the large scale); the raw form is built directly and the classes check the
    first documents of every run and every 500th after them.
    """
    if position < 200 or position % 500 == 0:
        parsed = document._from_son(raw)
        parsed.validate()
        if parsed.to_mongo().to_dict() != raw:  # pragma: no cover - a generator bug
            raise ValueError(f"a seeded {document.__name__} does not round-trip: {raw!r}")
    return raw


def content_documents(world: World) -> Iterator[dict[str, Any]]:
    """Yield the raw (validated) content documents of every lesson that has one."""
    catalog = world.must_catalog()
    rng = world.rng("content")
    lessons = np.flatnonzero(catalog.lesson_has_document)
    course_of = np.repeat(np.arange(len(catalog.lesson_count)), catalog.lesson_count)
    lesson_ms = (catalog.lesson_hi >> np.uint64(16)).astype(np.int64)
    n = len(lessons)
    views = np.minimum(rng.zipf(1.6, size=n), 1_000_000)
    quality_count = 1 + rng.integers(0, len(QUALITIES), size=n)
    spanish = rng.random(n) < 0.3
    seconds_off = rng.integers(0, 60, size=n)
    kinds = rng.integers(0, len(DOCUMENT_TYPES), size=n)
    pages = rng.integers(2, 60, size=n)
    sizes = rng.integers(20_000, 8_000_000, size=n)
    download_share = rng.random(n)
    for position, lesson in enumerate(lessons.tolist()):
        course = int(course_of[lesson])
        created = at(lesson_ms[lesson])
        key = f"{int(catalog.lesson_hi[lesson]):016x}{int(catalog.lesson_lo[lesson]):016x}"
        view_count = int(views[position])
        raw: dict[str, Any]
        if catalog.lesson_type[lesson] == 0:
            subtitles = [{"language": "en", "url": f"https://cdn.example.com/subs/{key}.en.vtt"}]
            if spanish[position]:
                subtitles.append(
                    {"language": "es", "url": f"https://cdn.example.com/subs/{key}.es.vtt"}
                )
            document: type[Document] = VideoContent
            raw = {
                "_cls": "CourseContent.VideoContent",
                "content_id": f"video-{key}",
                "course_id": col.uuid_of(catalog.course_hi[course], catalog.course_lo[course]),
                "lesson_id": col.uuid_of(catalog.lesson_hi[lesson], catalog.lesson_lo[lesson]),
                "title": catalog.lesson_titles[lesson],
                "views": view_count,
                "downloads": 0,
                "created_at": created,
                "updated_at": created,
                "video_url": f"https://cdn.example.com/videos/{key}.mp4",
                "duration_seconds": int(catalog.lesson_minutes[lesson]) * 60
                - int(seconds_off[position]),
                "thumbnail_url": f"https://cdn.example.com/thumbs/{key}.jpg",
                "subtitles": subtitles,
                "quality_options": list(QUALITIES[: int(quality_count[position])]),
            }
        else:
            kind = DOCUMENT_TYPES[int(kinds[position])]
            document = DocumentContent
            raw = {
                "_cls": "CourseContent.DocumentContent",
                "content_id": f"doc-{key}",
                "course_id": col.uuid_of(catalog.course_hi[course], catalog.course_lo[course]),
                "lesson_id": col.uuid_of(catalog.lesson_hi[lesson], catalog.lesson_lo[lesson]),
                "title": catalog.lesson_titles[lesson],
                "views": view_count,
                "downloads": int(view_count * download_share[position] / 3),
                "created_at": created,
                "updated_at": created,
                "document_url": f"https://cdn.example.com/docs/{key}.{kind}",
                "document_type": kind,
                "file_size_bytes": int(sizes[position]),
                "page_count": None if kind == "html" else int(pages[position]),
            }
        yield _checked(document, raw, position)


@dataclass
class PreferenceSample:
    """What the preferences of the sampled learners need (the rest of the plan can go)."""

    regions: list[tuple[Region, np.ndarray]]  # sampled user indexes per region
    courses: dict[Region, list[np.ndarray]]  # each sampled user's enrolled courses
    last_seen: dict[Region, list[np.ndarray]]  # ... and when they last touched each


def preference_sample(world: World) -> PreferenceSample:
    """Pick the learners who get a preferences document (deterministic, bounded)."""
    rng = world.rng("preferences-sample")
    students = [(region, world.users[region].students) for region in world.regions]
    total = sum(len(s) for _, s in students)
    limit = min(total, world.scale.preferences_limit)
    chosen = np.sort(rng.choice(total, size=limit, replace=False)) if limit < total else None
    sample = PreferenceSample([], {}, {})
    offset = 0
    for region, indexes in students:
        if chosen is None:
            pick = indexes
        else:
            local = chosen[(chosen >= offset) & (chosen < offset + len(indexes))] - offset
            pick = indexes[local]
        offset += len(indexes)
        plan = world.enrollments[region]
        by_user = np.argsort(plan.user, kind="stable")
        sorted_users = plan.user[by_user]
        starts = np.searchsorted(sorted_users, pick, side="left")
        stops = np.searchsorted(sorted_users, pick, side="right")
        mine = [by_user[a:b] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]
        sample.regions.append((region, pick))
        sample.courses[region] = [plan.course[m].copy() for m in mine]
        sample.last_seen[region] = [plan.end_ms[m].copy() for m in mine]
    return sample


def preference_documents(world: World, sample: PreferenceSample) -> Iterator[dict[str, Any]]:
    """Yield the raw (validated) preferences of the sampled learners."""
    catalog = world.must_catalog()
    rng = world.rng("preferences")
    enrollable = np.flatnonzero(catalog.enrollable)
    position = 0
    for region, pick in sample.regions:
        users = world.users[region]
        for user, courses, seen in zip(
            pick.tolist(), sample.courses[region], sample.last_seen[region], strict=True
        ):
            categories = sorted({catalog.category_names[catalog.category[c]] for c in courses})
            if not categories:
                categories = [catalog.category_names[int(rng.choice(catalog.category))]]
            enrolled = set(courses.tolist())
            wish_size = int(rng.integers(0, 5))
            candidates = rng.choice(enrollable, size=min(len(enrollable), 6), replace=False)
            wish = [int(c) for c in candidates if int(c) not in enrolled][:wish_size]
            recent = np.argsort(-seen, kind="stable")[:5].tolist()
            viewed = [
                {
                    "course_id": col.uuid_of(
                        catalog.course_hi[courses[i]], catalog.course_lo[courses[i]]
                    ),
                    "viewed_at": at(seen[i]),
                }
                for i in recent
            ]
            created = at(users.created_ms[user])
            updated = max([created, *(at(seen[i]) for i in recent)])
            raw = {
                "user_id": col.uuid_of(users.hi[user], users.lo[user]),
                "learning": {
                    "preferred_categories": categories[:3],
                    "preferred_languages": ["en"] if rng.random() < 0.7 else ["en", "es"],
                    "difficulty_level": DIFFICULTY_LEVELS[int(rng.integers(0, 3))],
                    "learning_pace": LEARNING_PACES[int(rng.integers(0, 3))],
                },
                "notifications": {
                    "email": bool(rng.random() < 0.9),
                    "push": bool(rng.random() < 0.4),
                    "course_updates": bool(rng.random() < 0.85),
                    "promotional": bool(rng.random() < 0.15),
                },
                "wishlist": [col.uuid_of(catalog.course_hi[c], catalog.course_lo[c]) for c in wish],
                "recently_viewed": viewed,
                "created_at": created,
                "updated_at": updated,
            }
            yield _checked(UserPreferences, raw, position)
            position += 1


def _id_field(document: type[Document]) -> str:
    return "content_id" if document is CourseContent else "user_id"


def bulk_insert(
    store: ContentStore,
    document: type[Document],
    raw: Iterator[dict[str, Any]],
    progress: Callable[[int], None],
) -> int:
    """Insert raw documents into ``document``'s collection, replacing any with the same key.

    Returns the number of documents inserted.
    """
    # The store offers one-document writes only; seeding is the one bulk writer,
    # so it uses the store's gateway (its lock, fault checks and error translation).
    gateway = store._gateway
    collection = gateway.collection(document)
    field = _id_field(document)
    in_process = store.backend == "mongomock"
    with gateway.writing("seed.bulk_insert"):
        existing: set[Any] = {d[field] for d in collection.find({}, {field: 1, "_id": 0})}
        if in_process:
            collection.drop_indexes()
    inserted = 0
    try:
        batch: list[dict[str, Any]] = []
        for item in raw:
            batch.append(item)
            if len(batch) >= INSERT_BATCH:
                inserted += _insert(gateway, collection, field, batch, existing)
                progress(len(batch))
                batch = []
        if batch:
            inserted += _insert(gateway, collection, field, batch, existing)
            progress(len(batch))
    finally:
        if in_process:
            store.ensure_indexes()
    return inserted


def _insert(
    gateway: Any, collection: Any, field: str, batch: list[dict[str, Any]], existing: set[Any]
) -> int:
    with gateway.writing("seed.bulk_insert"):
        clashes = [d[field] for d in batch if d[field] in existing]
        if clashes:
            collection.delete_many({field: {"$in": clashes}})
        collection.insert_many(batch, ordered=False)
    return len(batch)


__all__ = [
    "PreferenceSample",
    "bulk_insert",
    "content_documents",
    "preference_documents",
    "preference_sample",
]
