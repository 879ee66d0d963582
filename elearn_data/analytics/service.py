"""``db.analytics``: platform figures as pandas DataFrames, merged over every shard.

Each method is one fan-out (:class:`~elearn_data.analytics.fanout.FanOut`):
every shard answers at once, from a replica that has replayed the caller's
writes, with aggregates only (counts and sums -- never raw rows); the partials
are merged by the rules of :mod:`elearn_data.analytics.merge`. A shard that
cannot answer within ``Settings.analytics_timeout_s`` ends the call with
:class:`~elearn_data.errors.ShardUnavailable` naming it: a figure silently
computed without one region would be wrong, not partial.

Money columns hold :class:`decimal.Decimal` (exact sums; ``.astype(float)``
for plotting); counts are integers. ``DataFrame.attrs["nodes"]`` names the
node that answered for each shard. ``sql()`` answers any read-only SQL over
every shard through DuckDB (:mod:`~elearn_data.analytics.sql`).

The same partials can come from one DuckDB query instead
(:mod:`~elearn_data.analytics.on_duckdb`; ``Analytics(canned=...)``): the
merge is the same, so are the frames. By default only the analytics measured
faster on DuckDB use it, and only with analyst credentials configured.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from elearn_data import ids, validation
from elearn_data.aggregates import average
from elearn_data.analytics import gradebook, on_duckdb, queries
from elearn_data.analytics.fanout import FanOut, ShardQuery
from elearn_data.analytics.merge import (
    add,
    catalog_count,
    group_sum,
    sum_partials,
    threshold_top_n,
)
from elearn_data.analytics.sql import AnalystSQL
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.extras import need
from elearn_data.regions import Region
from elearn_data.repositories.catalog import PopularRounds

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy import Executable

    from elearn_data.services.base import CausalCluster
    from elearn_data.sharding.unit_of_work import PreparedRead

T = TypeVar("T")

# The columns of get_platform_stats(), as its statement names them.
PLATFORM_COLUMNS = queries.PLATFORM_STATS.columns
# Catalog (reference) counts: the same on every shard, taken once in the `all` row.
CATALOG_COLUMNS = ("courses", "published_courses")
REGION_COLUMNS = ("enrollments", "active", "completed", "dropped", "learners")
REVENUE_COLUMNS = ("purchases", "refunds", "revenue", "transactions")
FUNNEL_STAGES = ("enrolled", "started", "halfway", "completed", "reviewed")
POPULAR_COLUMNS = (
    "rank",
    "course_id",
    "code",
    "title",
    "instructor_id",
    "enrollments",
    "rating_sum",
    "rating_count",
    "average_rating",
)
MAX_POPULAR = 1000
# Engines of the canned figures (see Analytics).
CANNED_ENGINES = ("auto", "fanout", "duckdb")


class Analytics:
    """Read-side figures over all shards (see API.md, "Analytics").

    Args:
        db: the ``connect()`` object whose replicas (and causal token) are used
            (anything with its cluster, router, settings and causal token).
        timeout_s: per-shard budget of one call (default ``Settings.analytics_timeout_s``).
        canned: which engine answers the canned figures: ``"auto"`` (the default:
            DuckDB for the analytics in :data:`~elearn_data.analytics.on_duckdb.ON_DUCKDB`
            when analyst credentials are configured, the fan-out otherwise),
            ``"fanout"`` or ``"duckdb"`` (every analytic DuckDB can compute; the
            bench compares the two). Both give the same frames.
    """

    def __init__(
        self, db: CausalCluster, *, timeout_s: float | None = None, canned: str = "auto"
    ) -> None:
        self._db = db
        self.timeout_s = timeout_s if timeout_s is not None else db.settings.analytics_timeout_s
        if self.timeout_s <= 0:
            raise InvalidInput(f"timeout_s must be positive, not {self.timeout_s!r}")
        if canned not in CANNED_ENGINES:
            raise InvalidInput(f"canned must be one of {', '.join(CANNED_ENGINES)}, not {canned!r}")
        self.canned = canned
        self._sql: AnalystSQL | None = None
        self._sql_lock = threading.Lock()

    # ---------------------------------------------------------- analyst SQL

    @property
    def engine(self) -> AnalystSQL:
        """The DuckDB engine of :meth:`sql` (created on first use, one per object)."""
        with self._sql_lock:
            if self._sql is None:
                self._sql = AnalystSQL(self._db, timeout_s=self.timeout_s)
            return self._sql

    def sql(self, query: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run read-only SQL over every shard as if one database held them all.

        Learner-owned tables are the union of every shard's rows (with a
        ``shard`` column), catalog tables appear once; secret and personal
        columns (email, names, phone, birth date, card details) and protocol
        tables are not visible. ``params`` bind ``$name``
        placeholders. Numeric columns hold Decimal, timestamps are UTC.

        Raises:
            InvalidInput: a syntax error or a statement that is not a query (with
                the engine's message), a refused table function or table, or a
                column not visible to analysts (named as such).
            ShardUnavailable: a shard cannot be read (the error names it).
            AnalyticsTimeout: the query ran longer than ``analytics_timeout_s``.
            ConfigurationError: no analyst credentials are configured.
        """
        return self.engine.frame(query, params)

    def sql_arrow(self, query: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Like :meth:`sql`, returning a ``pyarrow.Table`` (no pandas conversion)."""
        return self.engine.arrow(query, params)

    def close(self) -> None:
        """Close the analyst SQL engine, if it was started."""
        with self._sql_lock:
            engine, self._sql = self._sql, None
        if engine is not None:
            engine.close()

    def _on_duckdb(self, analytic: str) -> bool:
        """Whether ``analytic`` is computed by DuckDB (else by the fan-out)."""
        if self.canned == "fanout" or analytic not in on_duckdb.SUPPORTED:
            return False
        if self.canned == "duckdb":
            return True
        # auto: where DuckDB was measured faster, and only with analyst credentials
        # (without them the fan-out, which needs the application role only, answers).
        return analytic in on_duckdb.ON_DUCKDB and self.engine.configured

    def _fan_out(self, *, snapshot: bool = True) -> FanOut:
        return FanOut(self._db, timeout_s=self.timeout_s, snapshot=snapshot)

    def _everywhere(self, work: Callable[[ShardQuery], T]) -> tuple[dict[str, T], dict[str, str]]:
        """Run ``work`` on every shard at once, each shard in one snapshot."""
        with self._fan_out() as fan:
            results = fan.run(work)
            return results, fan.nodes

    def _each(
        self, query: PreparedRead, *args: Any
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
        """Ask every shard the one statement ``query`` at once; its rows as dicts, by shard."""
        with self._fan_out(snapshot=False) as fan:
            found = fan.each(query, *args)
            nodes = fan.nodes
        columns = query.columns
        rows = {
            shard: [dict(zip(columns, row, strict=True)) for row in shard_rows]
            for shard, shard_rows in found.items()
        }
        return rows, nodes

    # ------------------------------------------------------------- platform

    def platform_stats(self) -> pd.DataFrame:
        """Return the platform's figures: one row per shard, then the merged ``all`` row.

        Columns: shard, users, students, instructors, courses, published_courses,
        enrollments (every enrollment, dropped ones too), active_enrollments,
        completed_enrollments, revenue (completed purchases minus refunds,
        Decimal). Learner-owned counts add up over shards; ``courses`` and
        ``published_courses`` count the catalog, which every shard holds whole,
        so the ``all`` row takes them once.

        Raises:
            ShardUnavailable: a shard did not answer (the error names it).
        """
        if self._on_duckdb("platform_stats"):
            partials, nodes = on_duckdb.platform_partials(self.engine, self._db.router.shards)
        else:
            found, nodes = self._each(queries.PLATFORM_STATS)
            partials = {shard: _single(shard, rows) for shard, rows in found.items()}
        rows: list[dict[str, Any]] = []
        for shard, partial in partials.items():
            rows.append({"shard": shard, **_platform_row(partial)})
        merged = sum_partials(rows, [c for c in PLATFORM_COLUMNS if c not in CATALOG_COLUMNS])
        for column in CATALOG_COLUMNS:
            merged[column] = catalog_count(row[column] for row in rows)
        rows.append({"shard": "all", **merged})
        return _frame(rows, ("shard", *PLATFORM_COLUMNS), nodes)

    # ----------------------------------------------------------- instructor

    def instructor_stats(self, instructor_id: uuid.UUID) -> pd.DataFrame:
        """Return one row of an instructor's figures over every shard.

        Columns: instructor_id, courses (catalog count), enrollments (live:
        active and completed), active_students (learners with an active
        enrollment; a learner lives on one shard, so the shards' counts add
        up), rating_sum, rating_count, average_rating (sum of the shards'
        rating sums over the sum of their counts, Decimal, None without
        reviews), revenue (completed purchases minus refunds of the
        instructor's courses, Decimal).

        Raises:
            NotFound: no such user (an id the platform never issued included).
            InvalidInput: the user is a learner (role ``student``), not an
                instructor (or admin).
            ShardUnavailable: a shard did not answer.
        """
        user_id = ids.as_uuid(instructor_id)
        home = self._db.router.shard_of_owner(user_id)

        def work(q: ShardQuery) -> tuple[dict[str, Any], str | None]:
            stats = q.one(queries.INSTRUCTOR_STATS, instructor_id=user_id)
            role = q.scalar(queries.USER_ROLE, user_id=user_id) if q.shard == home else None
            return stats, role

        partials: list[dict[str, Any]]
        if self._on_duckdb("instructor_stats"):
            partials, role, nodes = on_duckdb.instructor_partials(
                self.engine, user_id, self._db.router.shards
            )
        else:
            answers, nodes = self._everywhere(work)
            role = answers[home][1]
            partials = [stats for stats, _ in answers.values()]
        if role is None:
            raise NotFound(f"user {user_id} not found")
        if role not in ("instructor", "admin"):
            raise InvalidInput(f"user {user_id} is a {role}, not an instructor")
        merged = sum_partials(
            partials, ("enrollments", "active_students", "rating_sum", "rating_count", "revenue")
        )
        row = {
            "instructor_id": user_id,
            "courses": catalog_count(p["courses"] for p in partials),
            "enrollments": int(merged["enrollments"]),
            "active_students": int(merged["active_students"]),
            "rating_sum": int(merged["rating_sum"]),
            "rating_count": int(merged["rating_count"]),
            "average_rating": average(merged["rating_sum"], merged["rating_count"]),
            "revenue": Decimal(merged["revenue"]),
        }
        return _frame([row], tuple(row), nodes)

    # -------------------------------------------------------------- popular

    def popular_courses(self, limit: int = 10) -> pd.DataFrame:
        """Return the global top ``limit`` published courses by live enrollments.

        Computed with the threshold algorithm of
        :func:`~elearn_data.analytics.merge.threshold_top_n` over the shards'
        course partials (three parallel rounds in one snapshot per shard), so
        a course that is nowhere first but popular everywhere is not missed.
        Ties go to the lower course id; when fewer than ``limit`` courses have
        enrollments, courses without any fill the list (lowest ids first).

        Columns: rank, course_id, code, title, instructor_id, enrollments,
        rating_sum, rating_count, average_rating. ``attrs`` holds the
        algorithm's ``lower_bound``, ``threshold`` and ``candidates``.

        Raises:
            InvalidInput: limit is not an integer in 1..1000.
            ShardUnavailable: a shard did not answer.
        """
        n = validation.required_integer("limit", limit, minimum=1, maximum=MAX_POPULAR)
        with self._fan_out() as fan:

            def run(
                statement: Executable, params: Mapping[str, Any], shards: Sequence[str] | None
            ) -> dict[str, list[dict[str, Any]]]:
                return fan.run(lambda q: q.rows(statement, **params), shards=shards)

            rounds = PopularRounds(fan.shards, run)
            top = threshold_top_n(
                n, len(fan.shards), rounds.local_top, rounds.above, rounds.exact, fill=rounds.fill
            )
            nodes = fan.nodes
        rows: list[dict[str, Any]] = []
        for rank, (course_id, total) in enumerate(top.ranked, start=1):
            info = rounds.details[course_id]
            rows.append(
                {
                    "rank": rank,
                    "course_id": course_id,
                    "code": info["code"],
                    "title": info["title"],
                    "instructor_id": info["instructor_id"],
                    "enrollments": total,
                    "rating_sum": info["rating_sum"],
                    "rating_count": info["rating_count"],
                    "average_rating": average(info["rating_sum"], info["rating_count"]),
                }
            )
        frame = _frame(rows, POPULAR_COLUMNS, nodes)
        frame.attrs.update(
            lower_bound=top.lower_bound, threshold=top.threshold, candidates=top.candidates
        )
        return frame

    # -------------------------------------------------------------- revenue

    def revenue_by_month(self, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Return revenue per (UTC) month and currency over every shard.

        A purchase counts in the month it completed (refunded ones included),
        a refund in the month the refund completed. ``start`` and ``end`` are
        inclusive days (UTC); None leaves that side open.

        Columns: month (first day, datetime64), currency, purchases, refunds,
        revenue (purchases minus refunds; Decimal), transactions (how many
        purchases and refunds made the figures). Sorted by month, then currency.

        Raises:
            InvalidInput: start is after end, or not a date.
            ShardUnavailable: a shard did not answer.
        """
        first, last = _day(start, "start"), _day(end, "end")
        if first is not None and last is not None and first > last:
            raise InvalidInput(f"start {first} is after end {last}")
        if self._on_duckdb("revenue_by_month"):
            found, nodes = on_duckdb.revenue_rows(self.engine, first, last)
        else:
            partials, nodes = self._each(queries.REVENUE_BY_MONTH, first, last)
            found = [row for rows in partials.values() for row in rows]
        merged = group_sum(found, ("month", "currency"), REVENUE_COLUMNS)
        rows = [
            {"month": month, "currency": currency, **figures}
            for (month, currency), figures in sorted(merged.items())
        ]
        frame = _frame(rows, ("month", "currency", *REVENUE_COLUMNS), nodes)
        frame["month"] = frame["month"].astype("datetime64[s]")
        frame["transactions"] = frame["transactions"].astype("int64")
        return frame

    # -------------------------------------------------------------- regions

    def enrollments_by_region(self) -> pd.DataFrame:
        """Return enrollments per learner region (every region, zeros included).

        A learner's enrollments live on the learner's home shard whatever the
        course, so each region's figures come from exactly one shard.

        Columns: region, shard, enrollments (all, dropped included), active,
        completed, dropped, learners (distinct learners with any enrollment).

        Raises:
            ShardUnavailable: a shard did not answer.
        """
        if self._on_duckdb("enrollments_by_region"):
            found, nodes = on_duckdb.region_rows(self.engine)
        else:
            partials, nodes = self._each(queries.ENROLLMENTS_BY_REGION)
            found = [row for rows in partials.values() for row in rows]
        merged = group_sum(found, ("region",), REGION_COLUMNS)
        rows = []
        for region in Region:
            figures = merged.get((region.value,), dict.fromkeys(REGION_COLUMNS, 0))
            shard = self._db.router.shard_of_region(region)
            rows.append({"region": region.value, "shard": shard, **figures})
        frame = _frame(rows, ("region", "shard", *REGION_COLUMNS), nodes)
        return frame.astype({c: "int64" for c in REGION_COLUMNS})

    # --------------------------------------------------------- gamification

    def points_by_region(self) -> pd.DataFrame:
        """Return the points of each learner region (every region, zeros included).

        A learner's summary lives on the learner's home shard, so each region's
        figures come from one shard; the average is the sum over the count.

        Columns: region, shard, learners (learners with any paid event), points
        (their total), average_points (Decimal, None without learners).

        Raises:
            ShardUnavailable: a shard did not answer.
        """
        partials, nodes = self._each(queries.POINTS_BY_REGION)
        merged = group_sum(
            (row for rows in partials.values() for row in rows),
            ("region",),
            ("learners", "points"),
        )
        rows = []
        for region in Region:
            figures = merged.get((region.value,), {"learners": 0, "points": 0})
            rows.append(
                {
                    "region": region.value,
                    "shard": self._db.router.shard_of_region(region),
                    "learners": int(figures["learners"]),
                    "points": int(figures["points"]),
                    "average_points": average(figures["points"], figures["learners"]),
                }
            )
        frame = _frame(rows, ("region", "shard", "learners", "points", "average_points"), nodes)
        return frame.astype({"learners": "int64", "points": "int64"})

    def badge_counts(self) -> pd.DataFrame:
        """Return every badge with how many learners hold it, over every shard, by code.

        Badges are catalog rows (the same on every shard, taken once); awards are
        learner-owned, so the shards' counts add up.

        Columns: badge_id, code, name, criterion, threshold, awarded.

        Raises:
            ShardUnavailable: a shard did not answer.
        """
        partials, nodes = self._each(queries.BADGE_COUNTS)
        badges: dict[Any, dict[str, Any]] = {}
        for rows in partials.values():
            for row in rows:
                slot = badges.setdefault(row["badge_id"], {**row, "awarded": 0})
                slot["awarded"] += int(row["awarded"])
        ordered = sorted(badges.values(), key=lambda b: b["code"])
        columns = ("badge_id", "code", "name", "criterion", "threshold", "awarded")
        frame = _frame([{c: b[c] for c in columns} for b in ordered], columns, nodes)
        return frame.astype({"threshold": "int64", "awarded": "int64"})

    # --------------------------------------------------------------- funnel

    def course_funnel(self, course_id: uuid.UUID) -> pd.DataFrame:
        """Return how far the course's learners got, merged over every shard.

        Stages (over every enrollment of the course, dropped ones included):
        enrolled; started (at least one lesson completed); halfway (progress
        of 50 % or more); completed; reviewed (the enrollment has a review).

        Columns: stage, learners, share (of enrolled, 0..1; 0 when nobody enrolled).

        Raises:
            NotFound: no such course.
            ShardUnavailable: a shard did not answer.
        """
        cid = ids.as_uuid(course_id)
        if not ids.is_reference(cid):
            raise NotFound(f"course {cid} not found")

        def work(q: ShardQuery) -> dict[str, Any] | None:
            if not q.scalar(queries.COURSE_EXISTS, course_id=cid):
                return None
            return q.one(queries.COURSE_FUNNEL, course_id=cid)

        found: list[dict[str, Any]] | None
        if self._on_duckdb("course_funnel"):
            found, nodes = on_duckdb.funnel_partials(self.engine, cid)
        else:
            partials, nodes = self._everywhere(work)
            found = [p for p in partials.values() if p is not None] or None
        if found is None:
            raise NotFound(f"course {cid} not found")
        merged = sum_partials(found, FUNNEL_STAGES)
        enrolled = int(merged["enrolled"])
        rows = [
            {
                "stage": stage,
                "learners": int(merged[stage]),
                "share": (int(merged[stage]) / enrolled) if enrolled else 0.0,
            }
            for stage in FUNNEL_STAGES
        ]
        return _frame(rows, ("stage", "learners", "share"), nodes)

    # ------------------------------------------------------------ gradebook

    def gradebook(self, course_id: uuid.UUID) -> pd.DataFrame:
        """Return a course's gradebook: one row per enrollment, from every shard.

        Columns: enrollment_id, user_id, learner (first and last name), status
        (of the enrollment), completion (lesson progress percent, Decimal),
        passed (every published required assessment has a passed attempt),
        attempts (over all assessments), then one column per published
        assessment, named by its title, holding the learner's best percent
        (Decimal; None before a submitted attempt). ``attrs["assessments"]``
        maps each assessment id to its column. Rows are sorted by learner.

        Raises:
            NotFound: no such course.
            ShardUnavailable: a shard did not answer.
        """
        cid = ids.as_uuid(course_id)
        if not ids.is_reference(cid):
            raise NotFound(f"course {cid} not found")
        parts, nodes = self._everywhere(lambda q: gradebook.shard_part(q, cid))
        found = [p for p in parts.values() if p["exists"]]
        if not found:
            raise NotFound(f"course {cid} not found")
        rows, names = gradebook.pivot(found, found[0]["assessments"])
        frame = _frame(rows, (*gradebook.LEADING_COLUMNS, *names.values()), nodes)
        frame.attrs["assessments"] = dict(names)
        return frame


# ------------------------------------------------------------------ helpers


def _single(shard: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The one row a shard's ``get_platform_stats()`` returns."""
    if len(rows) != 1:
        raise RuntimeError(f"shard {shard}: get_platform_stats() returned {len(rows)} rows, not 1")
    return rows[0]


def _platform_row(partial: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {c: int(partial[c] or 0) for c in PLATFORM_COLUMNS if c != "revenue"}
    row["revenue"] = Decimal(add([partial["revenue"]]))
    return row


def _day(value: object, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a date (YYYY-MM-DD), not {value!r}")


def _frame(
    rows: list[dict[str, Any]], columns: tuple[str, ...], nodes: dict[str, str]
) -> pd.DataFrame:
    # pandas is imported on first use (the [analytics] extra): `import elearn_data`
    # stays fast, and a service installed without the extra still connects.
    need("db.analytics", "pandas")
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    frame.attrs["nodes"] = dict(nodes)
    return frame
