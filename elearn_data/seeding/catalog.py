"""The catalog phase: categories, courses, modules and lessons (the same rows on every shard).

Courses are taught by the seeded instructors (a few prolific instructors teach
many courses, every instructor at least one while courses last); a course's id
is a reference id whose home is its instructor's region, which places its seat
ledger. Modules and lessons follow a curriculum shape (2-4 modules of 2-4
lessons; video, reading, quiz, assignment). Video and reading lessons name a
content document (``content_status = 'ready'``: the content phase writes it);
past the run's content limit they say ``pending`` instead, which is what the
platform says of a lesson whose document is not there yet.

Derived columns are written consistent by construction: ``courses.lesson_count``
is the number of lessons generated for the course.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np

from elearn_data import ids
from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.fakes import copy_escape
from elearn_data.seeding.plan import (
    DAY_MS,
    WORLD_NOW_MS,
    WORLD_START_MS,
    Batch,
    Catalog,
    World,
)
from elearn_data.seeding.scales import REGION_WEIGHTS, split_exact

# Category tree: parent -> children; a course belongs to a leaf ("topic").
CATEGORY_TREE: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Programming": (("Python", "PY"), ("JavaScript", "JS"), ("Java", "JAVA"), ("Go", "GO")),
    "Data Science": (
        ("Machine Learning", "ML"),
        ("Data Analysis", "DA"),
        ("Statistics", "STAT"),
        ("Deep Learning", "DL"),
    ),
    "Web Development": (("Frontend", "FE"), ("Backend", "BE"), ("Full-Stack", "FS")),
    "Cloud & DevOps": (("AWS", "AWS"), ("Kubernetes", "K8S"), ("CI/CD", "CICD")),
    "Design": (("UX Design", "UX"), ("Graphic Design", "GD"), ("Product Design", "PD")),
    "Business": (
        ("Marketing", "MKT"),
        ("Finance", "FIN"),
        ("Entrepreneurship", "ENT"),
        ("Project Management", "PM"),
    ),
    "Languages": (("English", "ENG"), ("Spanish", "SPA"), ("Japanese", "JPN")),
    "Personal Development": (
        ("Productivity", "PROD"),
        ("Public Speaking", "SPK"),
        ("Leadership", "LEAD"),
    ),
}

CATEGORY_COLUMNS: Final = ("id", "name", "description", "parent_id", "created_at", "updated_at")
COURSE_COLUMNS: Final = (
    "id",
    "code",
    "title",
    "description",
    "instructor_id",
    "category_id",
    "level",
    "price",
    "currency",
    "status",
    "max_enrollments",
    "duration_hours",
    "language",
    "lesson_count",
    "published_at",
    "created_at",
    "updated_at",
)
MODULE_COLUMNS: Final = (
    "id",
    "course_id",
    "title",
    "description",
    "module_order",
    "created_at",
    "updated_at",
)
LESSON_COLUMNS: Final = (
    "id",
    "module_id",
    "course_id",
    "title",
    "lesson_order",
    "lesson_type",
    "content_id",
    "content_status",
    "duration_minutes",
    "is_preview",
    "created_at",
    "updated_at",
)
SEAT_COLUMNS: Final = ("course_id", "capacity", "taken", "updated_at")

LEVELS: Final = ("beginner", "intermediate", "advanced")
TITLE_SHAPES: Final[tuple[tuple[str, int], ...]] = (
    ("Introduction to {t}", 0),
    ("{t} for Beginners", 0),
    ("{t} Fundamentals", 0),
    ("Practical {t}", 1),
    ("Hands-on {t}: Real Projects", 1),
    ("The Complete {t} Bootcamp", 1),
    ("{t} in Practice", 1),
    ("Mastering {t}", 2),
    ("Advanced {t}", 2),
    ("{t}: Expert Techniques", 2),
)
MODULE_TITLES: Final = (
    "Getting Started",
    "Core Concepts",
    "Working with {t}",
    "Going Further",
    "Real-World Project",
    "Best Practices",
    "Testing and Debugging",
    "Wrapping Up",
)
LESSON_VERBS: Final = (
    "Understanding",
    "Exploring",
    "Building",
    "Applying",
    "Reviewing",
    "Designing",
    "Measuring",
    "Debugging",
)
LESSON_NOUNS: Final = (
    "the basics",
    "key terminology",
    "a first project",
    "common patterns",
    "edge cases",
    "the tooling",
    "performance",
    "a case study",
    "your workflow",
    "the results",
)
LESSON_TYPES: Final = np.array(["video", "reading", "quiz", "assignment"])
LESSON_TYPE_WEIGHTS: Final = np.array([0.5, 0.25, 0.15, 0.10])
LESSON_MINUTES: Final = ((5, 25), (5, 15), (10, 20), (30, 90))
PRICES_CENTS: Final = np.array([1999, 2999, 4999, 7999, 9999, 12999, 19999])
PRICE_WEIGHTS: Final = np.array([0.18, 0.22, 0.24, 0.14, 0.12, 0.06, 0.04])
LANGUAGE_OF_REGION: Final[dict[Region, tuple[tuple[str, float], ...]]] = {
    Region.NORTH_AMERICA: (("English", 0.92), ("Spanish", 0.08)),
    Region.SOUTH_AMERICA: (("Portuguese", 0.5), ("Spanish", 0.35), ("English", 0.15)),
    Region.EUROPE: (("English", 0.6), ("German", 0.15), ("French", 0.15), ("Spanish", 0.1)),
    Region.AFRICA: (("English", 0.85), ("French", 0.15)),
    Region.ASIA: (("English", 0.7), ("Japanese", 0.15), ("Hindi", 0.15)),
    Region.OCEANIA: (("English", 1.0),),
}


def _reference_ids(
    world: World, n: int, ms: np.ndarray, homes: list[Region | None], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array([ids.id_code(h, reference=True) for h in homes], dtype=np.uint64)
    counter = np.arange(n, dtype=np.uint64)
    rand48 = rng.integers(0, 1 << 48, size=n, dtype=np.uint64)
    return col.compose_ids(codes, ms, counter, rand48)


def _all_shards(
    world: World,
    table: str,
    columns: tuple[str, ...],
    payload: bytes,
    rows: int,
    *,
    advance: int = 0,
) -> Iterator[Batch]:
    for index, shard in enumerate(world.router.shards):
        yield Batch(shard, table, columns, payload, rows, advance if index == 0 else 0)


def catalog_batches(world: World) -> Iterator[Batch]:
    """Yield categories, courses, modules and lessons for every shard."""
    rng = world.rng("catalog")
    size = world.scale.batch_rows

    # -- categories: parents first (the tree's foreign key), then leaves.
    names: list[str] = []
    parents: list[int] = []
    abbreviations: list[str] = []
    for parent, children in CATEGORY_TREE.items():
        parent_index = len(names)
        names.append(parent)
        parents.append(-1)
        abbreviations.append("")
        for child, abbreviation in children:
            names.append(child)
            parents.append(parent_index)
            abbreviations.append(abbreviation)
    n_categories = len(names)
    category_ms = WORLD_START_MS - 30 * DAY_MS + np.arange(n_categories, dtype=np.int64) * 60_000
    cat_hi, cat_lo = _reference_ids(world, n_categories, category_ms, [None] * n_categories, rng)
    cat_hex = col.hex_ids(cat_hi, cat_lo)
    parent_hex = np.array([cat_hex[p] if p >= 0 else col.NULL for p in parents])
    descriptions = [
        f"Courses about {name.lower()}." if p < 0 else f"{name} courses in {names[p]}."
        for name, p in zip(names, parents, strict=True)
    ]
    cat_time = col.timestamps(category_ms)
    yield from _all_shards(
        world,
        "course_categories",
        CATEGORY_COLUMNS,
        col.lines(
            [cat_hex, [copy_escape(n) for n in names], descriptions, parent_hex, cat_time, cat_time]
        ),
        n_categories,
    )
    leaves = np.array([i for i, p in enumerate(parents) if p >= 0])

    # -- courses
    n = world.scale.courses
    instructors: list[tuple[Region, int]] = [
        (region, int(i)) for region in world.regions for i in world.users[region].instructors
    ]
    weights = rng.pareto(1.5, size=len(instructors)) + 1.0
    first_round = rng.permutation(len(instructors))[: min(n, len(instructors))]
    rest = rng.choice(len(instructors), size=n - len(first_round), p=weights / weights.sum())
    teacher = np.concatenate([first_round, rest]).astype(np.int64)
    teacher_region = [instructors[t][0] for t in teacher]
    teacher_created = np.array(
        [world.users[r].created_ms[i] for r, i in (instructors[t] for t in teacher)],
        dtype=np.int64,
    )
    teacher_hex = np.array(
        [
            col.hex_ids(world.users[r].hi[i : i + 1], world.users[r].lo[i : i + 1])[0]
            for r, i in (instructors[t] for t in teacher)
        ]
    )
    latest = WORLD_NOW_MS - 2 * DAY_MS
    created = teacher_created + ((latest - teacher_created) * rng.beta(1.2, 1.6, size=n)).astype(
        np.int64
    )
    created = np.minimum(created, latest)
    course_hi, course_lo = _reference_ids(world, n, created, list(teacher_region), rng)
    course_hex = col.hex_ids(course_hi, course_lo)

    category = leaves[rng.integers(0, len(leaves), size=n)]
    shape = rng.integers(0, len(TITLE_SHAPES), size=n)
    topics = [names[c] for c in category]
    titles = [TITLE_SHAPES[s][0].format(t=t) for s, t in zip(shape.tolist(), topics, strict=True)]
    level = np.array(LEVELS)[[TITLE_SHAPES[s][1] for s in shape.tolist()]]
    per_topic: dict[str, int] = {}
    codes: list[str] = []
    for c in category.tolist():
        abbreviation = abbreviations[c]
        per_topic[abbreviation] = per_topic.get(abbreviation, 0) + 1
        codes.append(f"{abbreviation}-{100 + per_topic[abbreviation]}")
    sentences = world.texts.sentences
    picks = rng.integers(0, len(sentences), size=(n, 2))
    descriptions = [
        copy_escape(f"{title}. {sentences[a]} {sentences[b]}")
        for title, (a, b) in zip(titles, picks.tolist(), strict=True)
    ]
    free = rng.random(n) < 0.15
    price = np.where(free, 0, PRICES_CENTS[rng.choice(len(PRICES_CENTS), size=n, p=PRICE_WEIGHTS)])
    status_draw = rng.random(n)
    published = created + ((rng.random(n) * 45 + 1) * DAY_MS).astype(np.int64)
    never = (status_draw < 0.08) | (published > WORLD_NOW_MS - DAY_MS)
    archived = ~never & (status_draw > 0.95)
    status = np.where(never, "draft", np.where(archived, "archived", "published"))
    published_ms = np.where(never, -1, published)
    languages: list[str] = []
    language_draw = rng.random(n).tolist()
    for region, draw in zip(teacher_region, language_draw, strict=True):
        acc = 0.0
        choice = LANGUAGE_OF_REGION[region][-1][0]
        for name, share in LANGUAGE_OF_REGION[region]:
            acc += share
            if draw < acc:
                choice = name
                break
        languages.append(choice)

    # -- curriculum shape
    modules_per_course = rng.integers(2, 5, size=n)
    module_course = np.repeat(np.arange(n), modules_per_course)
    n_modules = len(module_course)
    module_order = _ranks(module_course)
    lessons_per_module = rng.integers(2, 5, size=n_modules)
    lesson_module = np.repeat(np.arange(n_modules), lessons_per_module)
    lesson_course = module_course[lesson_module]
    n_lessons = len(lesson_module)
    lesson_order = _ranks(lesson_module)
    lesson_count = np.bincount(lesson_course, minlength=n)
    lesson_start = np.concatenate([[0], np.cumsum(lesson_count)[:-1]]).astype(np.int64)
    lesson_type = rng.choice(len(LESSON_TYPES), size=n_lessons, p=LESSON_TYPE_WEIGHTS)
    low = np.array([m[0] for m in LESSON_MINUTES])[lesson_type]
    high = np.array([m[1] for m in LESSON_MINUTES])[lesson_type]
    minutes = low + (rng.random(n_lessons) * (high - low + 1)).astype(np.int64)
    course_minutes = np.bincount(lesson_course, weights=minutes, minlength=n)
    duration_tenths = np.round(course_minutes / 6).astype(np.int64)  # hours, one decimal
    duration = np.strings.add(
        np.strings.add((duration_tenths // 10).astype(str), "."), (duration_tenths % 10).astype(str)
    )

    # Capacity: some courses cap their seats near (or below) their expected demand.
    capped = rng.random(n) < 0.15
    demand = world.scale.enrollments / n
    seats = np.maximum(5, (demand * (0.5 + rng.random(n))).astype(np.int64))
    capacity = np.where(capped, seats, 0)

    # Content documents: every video/reading lesson, up to the run's content limit.
    documented = np.isin(lesson_type, (0, 1))
    if world.content_limit is not None:
        over = np.cumsum(documented) > world.content_limit
        has_document = documented & ~over
    else:
        has_document = documented

    module_created = created[module_course] + 3_600_000 * module_order
    module_hi, module_lo = _reference_ids(world, n_modules, module_created, [None] * n_modules, rng)
    module_hex = col.hex_ids(module_hi, module_lo)
    lesson_created = module_created[lesson_module] + 600_000 * lesson_order
    lesson_hi, lesson_lo = _reference_ids(world, n_lessons, lesson_created, [None] * n_lessons, rng)
    lesson_hex = col.hex_ids(lesson_hi, lesson_lo)
    verbs = np.array(LESSON_VERBS)[rng.integers(0, len(LESSON_VERBS), size=n_lessons)]
    nouns = np.array(LESSON_NOUNS)[rng.integers(0, len(LESSON_NOUNS), size=n_lessons)]
    lesson_titles = np.strings.add(np.strings.add(verbs, " "), nouns)
    prefix = np.where(lesson_type == 0, "video-", "doc-")
    content_id = np.where(documented, np.strings.add(prefix, lesson_hex), col.NULL)
    content_status = np.where(has_document, "ready", np.where(documented, "pending", "none"))

    world.catalog = Catalog(
        course_hi=course_hi,
        course_lo=course_lo,
        home=list(teacher_region),
        category=category,
        topic=topics,
        published_ms=published_ms,
        enrollable=~never,
        price_cents=price.astype(np.int64),
        capacity=capacity.astype(np.int64),
        lesson_start=lesson_start,
        lesson_count=lesson_count.astype(np.int64),
        lesson_hi=lesson_hi,
        lesson_lo=lesson_lo,
        lesson_minutes=minutes.astype(np.int64),
        lesson_type=lesson_type,
        lesson_has_document=has_document,
        lesson_titles=lesson_titles.tolist(),
        course_titles=titles,
        category_names=names,
    )
    world.catalog.quotas = _quotas(world, world.catalog)
    world.catalog.instructor_hi = np.array(
        [world.users[r].hi[i] for r, i in (instructors[t] for t in teacher)], dtype=np.uint64
    )
    world.catalog.instructor_lo = np.array(
        [world.users[r].lo[i] for r, i in (instructors[t] for t in teacher)], dtype=np.uint64
    )

    created_text = col.timestamps(created)
    updated = np.where(published_ms > 0, np.maximum(published_ms, created), created)
    published_text = col.nullable(col.timestamps(np.maximum(published_ms, 0)), published_ms > 0)
    for start in range(0, n, size):
        s = slice(start, min(start + size, n))
        rows = s.stop - s.start
        payload = col.lines(
            [
                course_hex[s],
                codes[s],
                [copy_escape(t) for t in titles[s]],
                descriptions[s],
                teacher_hex[s],
                cat_hex[category[s]],
                level[s],
                col.cents(price[s]),
                "USD",
                status[s],
                col.nullable(col.integers(capacity[s]), capacity[s] > 0),
                duration[s],
                languages[s],
                col.integers(lesson_count[s]),
                published_text[s],
                created_text[s],
                col.timestamps(updated[s]),
            ]
        )
        yield from _all_shards(world, "courses", COURSE_COLUMNS, payload, rows, advance=rows)

    module_titles = np.array(MODULE_TITLES)[(module_order - 1) % len(MODULE_TITLES)]
    module_titles = np.array(
        [t.format(t=topics[c]) for t, c in zip(module_titles.tolist(), module_course, strict=True)]
    )
    module_time = col.timestamps(module_created)
    for start in range(0, n_modules, size):
        s = slice(start, min(start + size, n_modules))
        payload = col.lines(
            [
                module_hex[s],
                course_hex[module_course[s]],
                [copy_escape(t) for t in module_titles[s].tolist()],
                col.NULL,
                col.integers(module_order[s]),
                module_time[s],
                module_time[s],
            ]
        )
        yield from _all_shards(world, "course_modules", MODULE_COLUMNS, payload, s.stop - s.start)

    lesson_time = col.timestamps(lesson_created)
    preview = (lesson_order == 1) & (module_order[lesson_module] == 1)
    for start in range(0, n_lessons, size):
        s = slice(start, min(start + size, n_lessons))
        payload = col.lines(
            [
                lesson_hex[s],
                module_hex[lesson_module[s]],
                course_hex[lesson_course[s]],
                lesson_titles[s],
                col.integers(lesson_order[s]),
                LESSON_TYPES[lesson_type[s]],
                content_id[s],
                content_status[s],
                col.integers(minutes[s]),
                col.flags(preview[s]),
                lesson_time[s],
                lesson_time[s],
            ]
        )
        yield from _all_shards(world, "course_lessons", LESSON_COLUMNS, payload, s.stop - s.start)


def _ranks(groups: np.ndarray) -> np.ndarray:
    """Return 1-based positions within runs of equal, contiguous group numbers."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(groups)) + 1])
    run_lengths = np.diff(np.concatenate([starts, [len(groups)]]))
    ranks: np.ndarray = np.arange(len(groups)) - np.repeat(starts, run_lengths) + 1
    return ranks


def _quotas(world: World, catalog: Catalog) -> dict[Region, np.ndarray]:
    """Split each capped course's seats over the regions (exact sums, deterministic).

    Regions generate their enrollments independently; a region never exceeds its
    quota, so the global seat count never exceeds the capacity.
    """
    weights = {r: REGION_WEIGHTS[r] for r in world.regions}
    quotas = {r: np.zeros(len(catalog.capacity), dtype=np.int64) for r in world.regions}
    for course in np.flatnonzero(catalog.capacity > 0).tolist():
        split = split_exact(int(catalog.capacity[course]), weights)
        for region, seats in split.items():
            quotas[region][course] = seats
    return quotas


def seat_batches(world: World) -> Iterator[Batch]:
    """Yield each course's seat ledger on its home shard (after every enrollment is planned).

    ``taken`` counts live enrollments (active or completed, any region) of a
    capacity-bound course; an unlimited course takes no seats, as in the API.
    """
    catalog = world.must_catalog()
    n = len(catalog.capacity)
    live = np.zeros(n, dtype=np.int64)
    for enrollments in world.enrollments.values():
        alive = enrollments.status != 2
        live += np.bincount(enrollments.course[alive], minlength=n)
    taken = np.where(catalog.capacity > 0, live, 0)
    course_hex = col.hex_ids(catalog.course_hi, catalog.course_lo)
    homes = np.array([world.shard_of(h) for h in catalog.home])
    updated = col.timestamps(np.full(n, WORLD_NOW_MS - DAY_MS, dtype=np.int64))
    capacity = col.nullable(col.integers(catalog.capacity), catalog.capacity > 0)
    for shard in world.router.shards:
        mask = homes == shard
        if mask.any():
            yield Batch(
                shard,
                "course_seats",
                SEAT_COLUMNS,
                col.lines(
                    [course_hex[mask], capacity[mask], col.integers(taken[mask]), updated[mask]]
                ),
                int(mask.sum()),
            )
