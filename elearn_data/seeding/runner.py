"""``seed()``: generate a deterministic data set and bulk-load it into every shard.

Order of a run (one transaction per shard, committed together at the end):

1. connect to every primary as the schema owner and open the transactions;
2. ``ALTER TABLE ... DISABLE TRIGGER USER`` on every table the run writes (this
   also locks them: a concurrent seeder waits, then fails on ``lock_timeout``);
3. ``--reset``: ``TRUNCATE`` every data table (``shard_meta`` and the two-phase
   decision log stay); otherwise a shard that holds data stops the run;
4. the phases, each streaming COPY batches to the shards: users, catalog,
   enrollments (and seat ledgers), progress, reviews, payments;
5. set-based finishing touches: every shard's ``course_stats`` partials are
   computed from its enrollments and reviews, ``invoice_number_seq`` moves past
   the numbers used, and the derived columns the triggers maintain
   (``courses.lesson_count``, ``enrollments.completed_lessons`` and
   ``progress_percent``, a completed enrollment's status) are checked against
   the raw rows -- a mismatch aborts the run;
6. ``ENABLE TRIGGER USER`` and ``ANALYZE``;
7. the content phase (content store);
8. two-phase commit with a decision record.

Triggers are off during the load because per-row triggers cost more than the
load itself and would stamp ``now()`` into rows (``completed_at``), which would
break determinism; the generator writes derived values consistent by
construction and step 5 proves it before anything is committed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from elearn_data.config import Settings
from elearn_data.content import ContentStore
from elearn_data.content.documents import CourseContent, UserPreferences
from elearn_data.errors import ConfigurationError, InvalidInput, InvalidState
from elearn_data.regions import Region
from elearn_data.security import Passwords
from elearn_data.seeding import (
    assessments,
    billing,
    catalog,
    documents,
    gamification,
    learning,
    people,
)
from elearn_data.seeding.bulk import ShardWriter, commit_all
from elearn_data.seeding.columns import timestamps
from elearn_data.seeding.fakes import build_region_pool, build_text_pool
from elearn_data.seeding.passwords import SEED_PASSWORD, seed_user_password_hash
from elearn_data.seeding.plan import DAY_MS, WORLD_NOW_MS, Batch, World
from elearn_data.seeding.scales import Scale, get_scale
from elearn_data.sharding import twophase
from elearn_data.sharding.routing import Router

log = logging.getLogger(__name__)


ProgressCallback = Callable[[str, int, int], None]

# From this many enrollments on, indexes are dropped for the load and rebuilt.
DEFER_FROM: Final = 20_000

# Tables a run writes, in load order (foreign keys point backwards).
SEEDED_TABLES: Final = (
    "course_categories",
    "courses",
    "course_modules",
    "course_lessons",
    "assessments",
    "assessment_questions",
    "course_seats",
    "course_stats",
    "users",
    "user_profiles",
    "email_directory",
    "enrollments",
    "lesson_progress",
    "course_reviews",
    "assessment_attempts",
    "attempt_answers",
    "payment_methods",
    "transactions",
    "invoices",
)
# --reset empties these; shard_meta (the shard's identity) and twophase_decisions
# (which may decide an in-doubt transaction still prepared somewhere) stay.
# login_throttles (revision 0005) references users and is never seeded.
# The gamification tables (revision 0009) are derived from the seeded activity at the end.
RESET_TABLES: Final = (
    *SEEDED_TABLES,
    *gamification.DERIVED_TABLES,
    "badges",
    "login_throttles",
    "content_outbox",
)

_COURSE_STATS = """
WITH written AS (
INSERT INTO course_stats (
    course_id, enrollment_count, active_count, completed_count, dropped_count,
    rating_sum, rating_count, updated_at
)
SELECT c.id,
       coalesce(e.active, 0) + coalesce(e.completed, 0),
       coalesce(e.active, 0), coalesce(e.completed, 0), coalesce(e.dropped, 0),
       coalesce(r.rating_sum, 0), coalesce(r.rating_count, 0),
       %s
FROM courses c
LEFT JOIN (
    SELECT course_id,
           count(*) FILTER (WHERE status = 'active')::int AS active,
           count(*) FILTER (WHERE status = 'completed')::int AS completed,
           count(*) FILTER (WHERE status = 'dropped')::int AS dropped
    FROM enrollments GROUP BY course_id
) e ON e.course_id = c.id
LEFT JOIN (
    SELECT course_id, sum(rating)::bigint AS rating_sum, count(*)::int AS rating_count
    FROM course_reviews GROUP BY course_id
) r ON r.course_id = c.id
RETURNING 1
)
SELECT count(*) FROM written
"""

# Derived columns that disagree with the raw rows (each query counts offenders).
CHECKS: Final[dict[str, str]] = {
    "courses.lesson_count": """
        SELECT count(*) FROM courses c
        LEFT JOIN (SELECT course_id, count(*) AS n FROM course_lessons GROUP BY course_id) l
          ON l.course_id = c.id
        WHERE c.lesson_count <> coalesce(l.n, 0)
    """,
    "enrollments progress": """
        SELECT count(*) FROM enrollments e
        JOIN courses c ON c.id = e.course_id
        LEFT JOIN (
            SELECT enrollment_id, count(*) FILTER (WHERE completed) AS done
            FROM lesson_progress GROUP BY enrollment_id
        ) p ON p.enrollment_id = e.id
        WHERE e.completed_lessons <> coalesce(p.done, 0)
           OR (e.status <> 'dropped' AND e.progress_percent <> CASE
                   WHEN c.lesson_count > 0
                   THEN least(100, round(coalesce(p.done, 0) * 100.0 / c.lesson_count, 2))
                   ELSE 0 END)
           OR (e.status <> 'dropped'
               AND (e.status = 'completed')
                   <> (c.lesson_count > 0 AND coalesce(p.done, 0) >= c.lesson_count
                       AND elearn_assessments_passed(e.id, e.course_id)))
    """,
    "assessments totals": """
        SELECT count(*) FROM assessments a
        LEFT JOIN (
            SELECT assessment_id, count(*) AS n, sum(points) AS points
            FROM assessment_questions GROUP BY assessment_id
        ) q ON q.assessment_id = a.id
        WHERE a.question_count <> coalesce(q.n, 0) OR a.total_points <> coalesce(q.points, 0)
    """,
    "objective answer points": """
        SELECT count(*) FROM attempt_answers x
        JOIN assessment_questions q ON q.id = x.question_id
        WHERE q.kind <> 'essay' AND x.points_awarded IS DISTINCT FROM CASE
            WHEN elearn_answer_correct(q.kind, q.correct, x.response) THEN q.points ELSE 0 END
    """,
    "attempt scores": """
        SELECT count(*) FROM assessment_attempts t
        JOIN assessments a ON a.id = t.assessment_id
        LEFT JOIN (
            SELECT attempt_id, count(*) AS n, coalesce(sum(points_awarded), 0) AS score,
                   count(*) FILTER (WHERE points_awarded IS NULL) AS waiting
            FROM attempt_answers GROUP BY attempt_id
        ) x ON x.attempt_id = t.id
        WHERE (t.status = 'in_progress') <> (x.n IS NULL)
           OR (t.status <> 'in_progress' AND (
                x.n <> a.question_count OR t.score <> x.score OR t.max_score <> a.total_points
                OR t.percent <> round(x.score * 100 / a.total_points, 2)
                OR (t.status = 'graded') <> (x.waiting = 0)
                OR t.passed IS DISTINCT FROM CASE
                    WHEN x.waiting = 0 THEN t.percent >= a.passing_percent END))
    """,
    **gamification.CHECKS,
}


@dataclass(frozen=True)
class SeedReport:
    """What a seeding run wrote, and how fast."""

    scale: str
    seed: int
    reset: bool
    counts: dict[str, dict[str, int]]  # shard -> table -> rows
    # phase -> seconds: the seven phases plus prepare, indexes, finish and commit.
    phases: dict[str, float]
    elapsed_s: float
    content_documents: int
    preference_documents: int
    content_backend: str
    password: str = SEED_PASSWORD
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> int:
        """Rows written to PostgreSQL, every shard counted (reference rows once per shard)."""
        return sum(sum(tables.values()) for tables in self.counts.values())

    @property
    def rows_per_s(self) -> float:
        """PostgreSQL rows per second over the whole run."""
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def table_totals(self) -> dict[str, int]:
        """Rows per table summed over shards."""
        totals: dict[str, int] = {}
        for tables in self.counts.values():
            for table, rows in tables.items():
                totals[table] = totals.get(table, 0) + rows
        return totals

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "scale": self.scale,
            "seed": self.seed,
            "reset": self.reset,
            "counts": self.counts,
            "tables": self.table_totals(),
            "phases": self.phases,
            "elapsed_s": self.elapsed_s,
            "rows": self.rows,
            "rows_per_s": self.rows_per_s,
            "content_documents": self.content_documents,
            "preference_documents": self.preference_documents,
            "content_backend": self.content_backend,
            "password": self.password,
            "notes": list(self.notes),
        }


def seed_password_hash(settings: Settings, seed: int) -> str:
    """Return a sample seeded hash, checked to verify with the settings' hasher."""
    encoded = seed_user_password_hash(seed, "0" * 32)
    if not Passwords(settings).verify(encoded, SEED_PASSWORD):  # pragma: no cover
        raise ConfigurationError("the seed password hash does not verify with the settings")
    return encoded


def _resolve(target: object) -> tuple[Settings, Any]:
    from elearn_data.database import Database  # noqa: PLC0415 - avoids an import cycle

    if isinstance(target, Database):
        return target.settings, target
    if isinstance(target, Settings):
        return target, None
    raise InvalidInput(f"seed() needs a Database or Settings, got {type(target).__name__}")


class _Progress:
    """Per-phase counters; ``advance`` may be called from the shard writers' threads."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._done: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, phase: str, total: int) -> None:
        with self._lock:
            self._done[phase] = 0
            self._totals[phase] = max(total, 0)
            if self._callback is not None:
                self._callback(phase, 0, self._totals[phase])

    def advance(self, phase: str, amount: int) -> None:
        if not amount:
            return
        with self._lock:
            self._done[phase] = min(self._done[phase] + amount, self._totals[phase])
            if self._callback is not None:
                self._callback(phase, self._done[phase], self._totals[phase])

    def step(self, phase: str) -> Callable[[], None]:
        """Return a callable that advances ``phase`` by one (a writer's progress marker)."""
        return lambda: self.advance(phase, 1)

    def finish(self, phase: str) -> None:
        with self._lock:
            self._done[phase] = self._totals[phase]
            if self._callback is not None:
                self._callback(phase, self._totals[phase], self._totals[phase])


def seed(
    db_or_settings: object,
    scale: str | Scale = "small",
    seed: int = 0,
    reset: bool = False,
    progress: ProgressCallback | None = None,
    *,
    content_limit: int | None = None,
    defer_indexes: bool | None = None,
) -> SeedReport:
    """Fill every shard (and the content store) with a deterministic, realistic data set.

    Args:
        db_or_settings: a ``connect()`` Database (its readers then see the seeded
            rows at once) or Settings.
        scale: ``small`` (the reference figures), ``medium`` or ``large``.
        seed: the same seed gives the same rows, ids included.
        reset: empty the data tables and the content store first. Without it a
            database that holds data is refused.
        progress: called as ``progress(phase, done, total)``, possibly from
            worker threads; phases, in order: prepare (shards), users,
            catalog, enrollments, progress, reviews, payments (rows), indexes
            (statements rebuilding deferred keys and indexes), finish
            (checks, triggers and ANALYZE per shard), content (documents),
            commit (shards).
        content_limit: write at most this many lesson documents (lessons past it
            say ``pending``); default: one for every video and reading lesson.
        defer_indexes: drop keys, foreign keys and indexes during the load and
            rebuild them afterwards; default: for scales of 20,000 enrollments
            or more (below that, the drop and rebuild cost more than they save).

    Returns:
        The counts per shard and table, the time of each phase, and rows/s.

    Raises:
        InvalidState: the database holds data and ``reset`` is false.
        InvalidInput: unknown scale, negative seed.
        ConfigurationError: no email hash key, or the schema owner cannot connect.
        ShardUnavailable: a shard primary cannot be reached (nothing is written).
    """
    settings, db = _resolve(db_or_settings)
    chosen = get_scale(scale)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, got {seed!r}")
    if content_limit is not None and content_limit < 0:
        raise InvalidInput(f"content_limit must not be negative, got {content_limit}")
    if settings.email_hash_key is None:
        raise ConfigurationError(
            "email_hash_key is not set (ELEARN_EMAIL_HASH_KEY); the email directory needs it"
        )
    started = time.perf_counter()
    timings: dict[str, float] = {}
    tracker = _Progress(progress)
    router = Router(settings)

    clock = time.perf_counter()
    tracker.start("prepare", len(router.shards) + 1)
    world = World(
        seed=seed,
        scale=chosen,
        router=router,
        regions=tuple(Region),
        pools={region: build_region_pool(region, seed) for region in Region},
        texts=build_text_pool(seed),
        password_hash=seed_password_hash(settings, seed),
        email_key=settings.email_hash_key.get_secret_value().encode("utf-8"),
        tax_rate=settings.tax_rate,
        content_limit=content_limit,
    )
    tracker.advance("prepare", 1)
    timings["prepare"] = time.perf_counter() - clock

    coordinator = router.local_shard
    gid = twophase.new_gid(coordinator)
    writers: dict[str, ShardWriter] = {}
    store: ContentStore | None = None
    own_store = False
    try:
        for shard in router.shards:
            writers[shard] = ShardWriter(shard, settings, gid)
        clock = time.perf_counter()
        deferred = chosen.enrollments >= DEFER_FROM if defer_indexes is None else defer_indexes
        _prepare_tables(writers, reset, SEEDED_TABLES if deferred else ())
        tracker.finish("prepare")
        timings["prepare"] += time.perf_counter() - clock

        phases: list[tuple[str, int, Callable[[World], Iterator[Batch]]]] = [
            ("users", chosen.students + chosen.instructors, people.user_batches),
            ("catalog", chosen.courses, catalog.catalog_batches),
            ("enrollments", chosen.enrollments, _enrollments_and_seats),
            ("progress", chosen.enrollments, learning.progress_batches),
            ("reviews", chosen.enrollments, learning.review_batches),
            ("assessments", chosen.enrollments, assessments.assessment_batches),
            ("payments", chosen.transactions, billing.payment_batches),
        ]
        for phase, total, batches in phases:
            clock = time.perf_counter()
            tracker.start(phase, total)
            for batch in batches(world):
                writers[batch.shard].copy(batch)
                tracker.advance(phase, batch.advance)
            for writer in writers.values():
                writer.flush()
            tracker.finish(phase)
            timings[phase] = time.perf_counter() - clock

        clock = time.perf_counter()
        tracker.start("indexes", sum(w.deferred_statements for w in writers.values()))
        for writer in writers.values():
            writer.restore_indexes(done=tracker.step("indexes"))
        for writer in writers.values():
            writer.flush()
        tracker.finish("indexes")
        timings["indexes"] = time.perf_counter() - clock
        clock = time.perf_counter()
        stats_rows = _finish(writers, world, tracker)
        tracker.finish("finish")
        timings["finish"] = time.perf_counter() - clock

        clock = time.perf_counter()
        if db is not None:
            store = db.content_store
        else:
            store, own_store = ContentStore(settings), True
        n_content, n_preferences = _content(store, world, reset, tracker)
        timings["content"] = time.perf_counter() - clock

        clock = time.perf_counter()
        counts = {
            shard: {**dict(writer.rows), "course_stats": stats_rows[shard]}
            for shard, writer in writers.items()
        }
        tracker.start("commit", len(writers))
        token = commit_all(writers, coordinator, gid)
        tracker.finish("commit")
        timings["commit"] = time.perf_counter() - clock
    except BaseException:
        for writer in writers.values():
            writer.rollback()
        raise
    else:
        for writer in writers.values():
            writer.close()
    finally:
        if own_store and store is not None:
            store.close()
    if db is not None:
        db.observe(token)

    notes = []
    if world.content_limit is not None:
        notes.append(
            f"content documents were written for the first {world.content_limit} video/reading "
            "lessons; the others are 'pending'"
        )
    total_students = chosen.students
    if n_preferences < total_students:
        notes.append(
            f"preferences documents for {n_preferences} of {total_students} learners; "
            "the others get theirs on first use"
        )
    if store is not None and store.backend == "mongomock" and own_store:
        notes.append(
            "the content store is in-process (mongomock): its documents end with this process; "
            "set ELEARN_MONGO_URI to keep them"
        )
    report = SeedReport(
        scale=chosen.name,
        seed=seed,
        reset=reset,
        counts=counts,
        phases=timings,
        elapsed_s=time.perf_counter() - started,
        content_documents=n_content,
        preference_documents=n_preferences,
        content_backend=store.backend if store is not None else "none",
        notes=tuple(notes),
    )
    log.info(
        "seeded scale %s (seed %d): %d rows in %.1f s",
        chosen.name,
        seed,
        report.rows,
        report.elapsed_s,
    )
    return report


def _enrollments_and_seats(world: World) -> Iterator[Batch]:
    yield from learning.enrollment_batches(world)
    yield from catalog.seat_batches(world)


def _prepare_tables(
    writers: dict[str, ShardWriter], reset: bool, deferred: tuple[str, ...]
) -> None:
    for writer in writers.values():
        for table in (*SEEDED_TABLES, *gamification.DERIVED_TABLES):
            writer.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        if reset:
            writer.execute(f"TRUNCATE {', '.join(RESET_TABLES)} RESTART IDENTITY")
    if reset:
        for writer in writers.values():
            writer.defer_indexes(deferred)
            writer.flush()
        return
    probe = " UNION ALL ".join(
        f"(SELECT '{table}' FROM {table} LIMIT 1)"  # noqa: S608 - names from this tuple
        for table in ("users", "courses", "enrollments")
    )
    found = {shard: writer.query(probe) for shard, writer in writers.items()}
    for shard, future in found.items():
        rows = future.result()
        writers[shard].flush()
        if rows:
            raise InvalidState(
                f"shard {shard} already holds data (table {rows[0][0]}); seed an empty database, "
                "or pass --reset (reset=True) to replace everything"
            )
    for writer in writers.values():
        writer.defer_indexes(deferred)
        writer.flush()


def _finish(writers: dict[str, ShardWriter], world: World, tracker: _Progress) -> dict[str, int]:
    """Compute the partials, move the invoice sequences, verify, re-enable the triggers."""
    # Steps per shard: the partials, each check, and each table's triggers + ANALYZE.
    finished = (*SEEDED_TABLES, *gamification.DERIVED_TABLES)
    tracker.start("finish", len(writers) * (2 + len(CHECKS) + len(finished)))
    step = tracker.step("finish")
    stamp = str(timestamps(np.array([WORLD_NOW_MS - DAY_MS]))[0])
    stats = {s: w.query(_COURSE_STATS, (stamp,)) for s, w in writers.items()}
    for shard, writer in writers.items():
        writer.notify(step)
        used = world.invoice_counters.get(shard, 0)
        writer.execute("SELECT setval('invoice_number_seq', %s, %s)", (max(used, 1), used > 0))
    for writer in writers.values():
        # What the (disabled) gamification triggers would have paid for the seeded activity.
        writer.execute(gamification.LEDGER)
        writer.execute(gamification.SUMMARIES)
        writer.execute(gamification.AWARDS)
        writer.notify(step)
    checks: dict[tuple[str, str], Any] = {}
    for shard, writer in writers.items():
        for name, sql in CHECKS.items():
            checks[(shard, name)] = writer.query(sql)
            writer.notify(step)
    for (shard, name), future in checks.items():
        wrong = future.result()[0][0]
        if wrong:
            raise InvalidState(
                f"seeded data is inconsistent on shard {shard}: {wrong} rows of {name} disagree "
                "with the raw rows (a bug in the generator; nothing was committed)"
            )
    for writer in writers.values():
        for table in finished:
            writer.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            writer.execute(f"ANALYZE {table}")
            writer.notify(step)
    for writer in writers.values():
        writer.flush()
    return {shard: int(future.result()[0][0]) for shard, future in stats.items()}


def _content(store: ContentStore, world: World, reset: bool, tracker: _Progress) -> tuple[int, int]:
    catalog_plan = world.must_catalog()
    n_content = int(catalog_plan.lesson_has_document.sum())
    n_students = sum(len(world.users[r].students) for r in world.regions)
    n_preferences = min(n_students, world.scale.preferences_limit)
    tracker.start("content", n_content + n_preferences)
    # The enrollment plan is the largest thing in memory and PostgreSQL has it
    # now: keep what the preferences need, let the rest go before the content
    # store (in process, with mongomock) fills up.
    sample = documents.preference_sample(world)
    world.enrollments.clear()
    gc.collect()
    if reset:
        store.clear()

    def advance(amount: int) -> None:
        tracker.advance("content", amount)

    written = documents.bulk_insert(
        store, CourseContent, documents.content_documents(world), advance
    )
    preferences = documents.bulk_insert(
        store, UserPreferences, documents.preference_documents(world, sample), advance
    )
    tracker.finish("content")
    return written, preferences
